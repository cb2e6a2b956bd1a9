// The two functions of hypercore-crypto the release feed's keys use (infra/swarm/feed-key.ts).
declare module 'hypercore-crypto' {
  /** BLAKE2b-256 of `data` (the buffers in order). */
  export function hash(data: Buffer | Buffer[], out?: Buffer): Buffer
  /** Hypercore's discovery key of a core key. */
  export function discoveryKey(key: Buffer): Buffer
  const crypto: { hash: typeof hash; discoveryKey: typeof discoveryKey }
  export default crypto
}
