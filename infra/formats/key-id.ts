// Key ids of the signed formats (docs/formats.md): zod-free, so that a working copy opens without
// the formats' schemas (issue 13 item 1); envelope.ts re-exports it.
import { nodeCrypto } from '../node-crypto.ts'

/** hex SHA-256 of (alg, 0x00, raw public key): one length for any algorithm. */
export function keyIdOf(publicKeyHex: string, alg = 'ed25519'): string {
  return nodeCrypto().createHash('sha256').update(alg, 'utf8').update(Buffer.of(0)).update(Buffer.from(publicKeyHex, 'hex')).digest('hex')
}
