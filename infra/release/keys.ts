// Publisher keys: Ed25519. The key file holds the 32-byte seed and public key in hex, so the
// same key can sign manifests (node:crypto) and the release feed (sodium-style key pair).
import type { KeyObject } from 'node:crypto'
import { nodeCrypto } from '../node-crypto.ts'
import { readFile, writeFile } from 'node:fs/promises'
import { UpswarmError } from '../errors.ts'

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const HEX32 = /^[0-9a-f]{64}$/

export interface PublisherKey {
  publicKey: string // hex, 32 bytes
  seed: string // hex, 32 bytes
}

/**
 * A key file: `{ type: 'upswarm-ed25519', publicKey, seed }` (other fields ignored). Checked by
 * hand, not with zod: every command that verifies a signature imports this module, and zod
 * alone would double a short command's start-up (issue 13 item 1).
 */
function isKeyFile(v: unknown): v is PublisherKey {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const o = v as Record<string, unknown>
  return o.type === 'upswarm-ed25519' && typeof o.publicKey === 'string' && HEX32.test(o.publicKey) && typeof o.seed === 'string' && HEX32.test(o.seed)
}

export function generatePublisherKey(): PublisherKey {
  const { publicKey, privateKey } = nodeCrypto().generateKeyPairSync('ed25519')
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519_PREFIX.length)
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519_PREFIX.length)
  return { publicKey: pub.toString('hex'), seed: seed.toString('hex') }
}

export async function writeKeyFile(path: string, key: PublisherKey): Promise<void> {
  await writeFile(path, JSON.stringify({ type: 'upswarm-ed25519', ...key }, null, 2) + '\n', { mode: 0o600, flag: 'wx' })
    .catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') throw new UpswarmError('UPSWARM_E_CONFIG', `key file ${path} already exists; refusing to overwrite it`)
      throw new UpswarmError('UPSWARM_E_IO', `cannot write key file ${path}: ${err.message}`, { cause: err })
    })
}

export async function readKeyFile(path: string): Promise<PublisherKey> {
  let raw: string
  try {
    raw = await readFile(path, 'utf8')
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read key file ${path}: ${(err as Error).message}`, { cause: err })
  }
  const parsed = safeJson(raw)
  if (!isKeyFile(parsed)) throw new UpswarmError('UPSWARM_E_CONFIG', `${path} is not an upswarm key file (make one with \`upswarm keygen --out FILE\`)`)
  return { publicKey: parsed.publicKey, seed: parsed.seed }
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    return undefined
  }
}

/** The Ed25519 private key of a 32-byte seed (a key file's, or an nkey's: infra/nats/creds-auth.ts). */
export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  return nodeCrypto().createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
}

export function privateKeyObject(key: PublisherKey): KeyObject {
  return ed25519PrivateKey(Buffer.from(key.seed, 'hex'))
}

export function publicKeyObject(publicKeyHex: string): KeyObject {
  if (!HEX32.test(publicKeyHex)) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `publisher public key must be 64 hex characters (got ${JSON.stringify(publicKeyHex.slice(0, 80))})`)
  }
  return nodeCrypto().createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(publicKeyHex, 'hex')]), format: 'der', type: 'spki' })
}

export function signBytes(key: PublisherKey, data: Uint8Array): string {
  return nodeCrypto().sign(null, data, privateKeyObject(key)).toString('hex')
}

export function verifyBytes(publicKeyHex: string, data: Uint8Array, signatureHex: string): boolean {
  if (!/^[0-9a-f]{128}$/.test(signatureHex)) return false
  return nodeCrypto().verify(null, data, publicKeyObject(publicKeyHex), Buffer.from(signatureHex, 'hex'))
}

/** The sodium-style key pair (64-byte secret = seed ‖ public) that Hypercore signs with. */
export function sodiumKeyPair(key: PublisherKey): { publicKey: Buffer; secretKey: Buffer } {
  const publicKey = Buffer.from(key.publicKey, 'hex')
  return { publicKey, secretKey: Buffer.concat([Buffer.from(key.seed, 'hex'), publicKey]) }
}
