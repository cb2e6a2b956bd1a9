// The release feed's Hypercore key and discovery key of a publisher key, worked out without
// loading Hypercore (its JavaScript and RocksDB are 10-15 MiB of a daemon's resident memory, issue
// 13 item 5). Hypercore.key(publicKey) is BLAKE2b-256 of the manifest capability followed by the
// encoded version-1 manifest naming that one Ed25519 signer in the default namespace; all of it is
// constant but the key (hypercore/lib/verifier.js `manifestHash`). A test checks this against
// Hypercore itself (test/unit/feed-key.test.ts), so an upgrade cannot drift unnoticed.
import b4a from 'b4a'
import crypto from 'hypercore-crypto'

/** hypercore/lib/caps.js MANIFEST. */
const MANIFEST_CAP = b4a.from('e64b7108eacce47cfc61ac850568f55f8b15b82ec5ed78c4ec597b036e2a1498', 'hex')
/**
 * The manifest's bytes before the signer's key: version 1, flags 0 (no patch, not prologue),
 * hash 0 (BLAKE2b), quorum 1, one signer: signature 0 (Ed25519), the default namespace.
 */
const MANIFEST_HEAD = b4a.from('010000010100' + '4144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb', 'hex')

export function feedKeys(publisherPublicKey: string): { key: Buffer; discoveryKey: Buffer } {
  const key = crypto.hash(b4a.concat([MANIFEST_CAP, MANIFEST_HEAD, b4a.from(publisherPublicKey, 'hex')]) as Buffer)
  return { key, discoveryKey: crypto.discoveryKey(key) }
}
