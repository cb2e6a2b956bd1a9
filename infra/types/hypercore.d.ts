// Hand-written types for hypercore 11.x (ships none): the parts upswarm uses.
declare module 'hypercore' {
  import type { EventEmitter } from 'node:events'

  export interface HypercoreKeyPair { publicKey: Buffer; secretKey: Buffer }

  export interface HypercoreOptions {
    keyPair?: HypercoreKeyPair
    createIfMissing?: boolean
    writable?: boolean
    allowFork?: boolean
    timeout?: number
    key?: Buffer
  }

  export interface HypercorePeer {
    readonly remotePublicKey: Buffer
    readonly remoteLength: number
    readonly remoteContiguousLength: number
    readonly remoteFork: number
  }

  export interface DownloadRange {
    done(): Promise<void>
    destroy(): void
  }

  export default class Hypercore extends EventEmitter {
    constructor(storage: string, key?: Buffer | null, opts?: HypercoreOptions)
    constructor(storage: string, opts?: HypercoreOptions)
    static key(manifestOrPublicKey: Buffer, opts?: { compat?: boolean; version?: number; namespace?: Buffer }): Buffer
    static discoveryKey(key: Buffer): Buffer
    readonly key: Buffer | null
    readonly discoveryKey: Buffer | null
    readonly length: number
    readonly contiguousLength: number
    readonly remoteContiguousLength: number
    readonly fork: number
    readonly writable: boolean
    readonly readable: boolean
    readonly opened: boolean
    readonly closed: boolean
    readonly peers: HypercorePeer[]
    ready(): Promise<void>
    close(opts?: { error?: Error }): Promise<void>
    append(block: Uint8Array | Uint8Array[]): Promise<{ length: number; byteLength: number }>
    get(index: number, opts?: { wait?: boolean; timeout?: number }): Promise<Buffer | null>
    has(start: number, end?: number): Promise<boolean>
    update(opts?: { wait?: boolean; force?: boolean }): Promise<boolean>
    truncate(newLength: number, opts?: number | { fork?: number }): Promise<void>
    download(range?: { start?: number; end?: number; linear?: boolean }): DownloadRange
    findingPeers(): () => void
    /** Attaches replication to a NoiseSecretStream, sharing its Protomux with other protocols. */
    replicate(stream: unknown, opts?: { keepAlive?: boolean }): unknown
  }
}
