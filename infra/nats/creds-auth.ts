// The creds file's answer to the server's nonce, signed with node:crypto's Ed25519 (issue 15
// item 4, issue 13). nats.js's credsAuthenticator signs with tweetnacl in JavaScript: deriving
// the key pair and signing cost a short command ~75 ms of its start-up; node:crypto takes well
// under a millisecond. Same wire answer: { jwt, nkey, sig } with sig in base64 (nkeys.encode).
import { createPublicKey, sign } from 'node:crypto'
import type { Authenticator } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'
import { ed25519PrivateKey } from '../release/keys.ts'

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
/** nkeys' prefix byte of a user public key ('U'), shifted as nkeys encodes it. */
const PREFIX_USER = 20 << 3
const CREDS_BLOCKS = /-{3,}[^\n]*-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}[^\n]*-{3,}/g

function base32Decode(text: string, where: string): Buffer {
  const out: number[] = []
  let bits = 0
  let value = 0
  for (const ch of text) {
    const v = BASE32.indexOf(ch)
    if (v < 0) throw new UpswarmError('UPSWARM_E_CONFIG', `${where}: the nkey seed is not base32`)
    value = (value << 5) | v
    bits += 5
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff)
      bits -= 8
    }
  }
  return Buffer.from(out)
}

function base32Encode(bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let value = 0
  for (const b of bytes) {
    value = (value << 8) | b
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31]
  return out
}

/** nkeys' CRC-16 (XMODEM) over the prefix and key. */
function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (const b of bytes) {
    crc ^= b << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/** A user's public nkey ("U…") from its raw Ed25519 public key. */
function userPublicKey(raw: Uint8Array): string {
  const body = Buffer.concat([Buffer.from([PREFIX_USER]), raw])
  const crc = crc16(body)
  return base32Encode(Buffer.concat([body, Buffer.from([crc & 0xff, crc >> 8])]))
}

/**
 * The authenticator of a creds file (its user JWT and nkey seed). The seed is decoded and checked
 * once, here: a damaged one is a config error naming the file, not a refused connection.
 */
export function credsAuth(creds: string, where: string): Authenticator {
  const blocks = [...creds.matchAll(CREDS_BLOCKS)].map((m) => m[1]!)
  const [jwt, seedText] = blocks
  if (!jwt || !seedText) throw new UpswarmError('UPSWARM_E_CONFIG', `${where} is not a NATS creds file (it needs a user JWT block and an nkey seed block)`)
  const decoded = base32Decode(seedText, where)
  // Two prefix bytes ("SU…": seed of a user), 32 bytes of seed, two of CRC.
  if (decoded.length !== 36 || crc16(decoded.subarray(0, 34)) !== decoded.readUInt16LE(34)) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${where}: the nkey seed is damaged (wrong length or checksum)`)
  }
  const key = ed25519PrivateKey(decoded.subarray(2, 34))
  const raw = createPublicKey(key).export({ format: 'jwk' }).x!
  const nkey = userPublicKey(Buffer.from(raw, 'base64url'))
  return (nonce?: string) => ({ jwt, nkey, sig: nonce ? sign(null, Buffer.from(nonce), key).toString('base64') : '' })
}
