// The release feed's Hypercore key and discovery key of a publisher key, worked out without
// loading Hypercore (and with it RocksDB: 15 MiB of a daemon's resident memory, issue 13 item 5).
// Hypercore.key(publicKey) is the hash of the manifest naming that one signer; a test checks that
// this agrees with Hypercore itself (test/unit/feed-key.test.ts), so an upgrade cannot drift.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

interface Verifier {
  manifestHash(manifest: unknown): Buffer
  createManifest(manifest: { signers: { publicKey: Buffer }[] }): unknown
}

export function feedKeys(publisherPublicKey: string): { key: Buffer; discoveryKey: Buffer } {
  const { manifestHash, createManifest } = require('hypercore/lib/verifier.js') as Verifier
  const { discoveryKey } = require('hypercore-crypto') as { discoveryKey(key: Buffer): Buffer }
  const key = manifestHash(createManifest({ signers: [{ publicKey: Buffer.from(publisherPublicKey, 'hex') }] }))
  return { key, discoveryKey: discoveryKey(key) }
}
