// Signed documents of format 2 (docs/formats.md §1.1): `{signatures, signed}` where the signed
// bytes are "upswarm-signed-1\n" + canonicalJson(signed), computed from the JSON as received,
// before any schema strips a field, so every field (known or not) is covered. The prefix keeps a
// format-2 signature from ever verifying as a format-1 manifest or a Hypercore signature made
// with the same key. Thresholds count distinct key ids whose signature verifies.
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { UpswarmError, errorMessage } from '../errors.ts'
import { signBytes, verifyBytes, type PublisherKey } from '../release/keys.ts'
import { canonicalJson } from '../release/manifest.ts'
import { keyIdOf } from './key-id.ts'

export { keyIdOf } from './key-id.ts'

export const SIGNED_PREFIX = 'upswarm-signed-1\n'
/** The format of every document of this family; a reader refuses a format it does not know. */
export const SIGNED_FORMAT = 2
export const HEX64 = /^[0-9a-f]{64}$/

const SignatureSchema = z.object({
  alg: z.string().max(32),
  keyid: z.string().regex(HEX64),
  sig: z.string().max(1024),
})
const EnvelopeSchema = z.strictObject({
  signatures: z.array(SignatureSchema).max(64),
  signed: z.record(z.string(), z.unknown()),
})
export type Signature = z.infer<typeof SignatureSchema>

export interface Envelope {
  signatures: Signature[]
  /** Exactly as received: unknown fields kept, so re-served bytes still verify. */
  signed: Record<string, unknown>
}

/** A key as a root lists it. */
export interface KeyDef {
  alg: string
  public: string
}


export function signedBytes(signed: Record<string, unknown>): Buffer {
  return Buffer.from(SIGNED_PREFIX + canonicalJson(signed), 'utf8')
}

/** Signs `signed` with each key (one signature per distinct key). */
export function signEnvelope(signed: Record<string, unknown>, keys: PublisherKey[]): Envelope {
  return addSignatures({ signatures: [], signed }, keys)
}

/** Adds signatures by `keys` that the envelope does not carry yet. */
export function addSignatures(env: Envelope, keys: PublisherKey[]): Envelope {
  const bytes = signedBytes(env.signed)
  const signatures = [...env.signatures]
  for (const key of keys) {
    const keyid = keyIdOf(key.publicKey)
    if (signatures.some((s) => s.keyid === keyid)) continue
    signatures.push({ alg: 'ed25519', keyid, sig: signBytes(key, bytes) })
  }
  return { signatures, signed: env.signed }
}

/** The canonical encoding of a whole envelope: what is stored and sent. */
export function encodeEnvelope(env: Envelope): Buffer {
  return Buffer.from(canonicalJson(env), 'utf8')
}

/** Parses an envelope; checks the shape and that the document is of `type` and format 2. */
export function parseEnvelope(bytes: Uint8Array | string, type: string, where: string, maxBytes: number, knownFields: readonly string[]): Envelope {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength
  if (size > maxBytes) throw new UpswarmError('UPSWARM_E_MANIFEST', `${type} document from ${where} is ${size} bytes, more than the ${maxBytes} a ${type} may have`)
  let json: unknown
  try {
    json = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'))
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `${type} document from ${where} is not valid JSON: ${errorMessage(err)}`, { cause: err })
  }
  const parsed = EnvelopeSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_MANIFEST', `${type} document from ${where} is not a signed document: ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  const env = parsed.data
  if (env.signed.type !== type) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `document from ${where} is of type ${JSON.stringify(env.signed.type)}, not ${type}`)
  }
  if (env.signed.format !== SIGNED_FORMAT) {
    throw new UpswarmError('UPSWARM_E_MANIFEST',
      `${type} document from ${where} is format ${JSON.stringify(env.signed.format)}; this upswarm reads format ${SIGNED_FORMAT}`)
  }
  const critical = env.signed.critical
  if (critical !== undefined) {
    if (!Array.isArray(critical) || critical.some((c) => typeof c !== 'string')) {
      throw new UpswarmError('UPSWARM_E_MANIFEST', `${type} document from ${where}: critical must be a list of field names`)
    }
    // A field named critical must be understood; an unknown one that is not critical is ignored (and kept).
    const unknown = critical.filter((c: string) => !knownFields.includes(c))
    if (unknown.length > 0) {
      throw new UpswarmError('UPSWARM_E_MANIFEST', `${type} document from ${where} needs a newer upswarm: it marks ${unknown.join(', ')} critical`)
    }
  }
  return env
}

/**
 * The distinct key ids among `allowed` whose signature over the envelope verifies. Signatures
 * of an unknown alg, of a key not in `keys`, duplicates and bad ones count for nothing.
 */
export function validSigners(env: Envelope, keys: Record<string, KeyDef>, allowed: readonly string[]): Set<string> {
  const bytes = signedBytes(env.signed)
  const ok = new Set<string>()
  for (const s of env.signatures) {
    if (s.alg !== 'ed25519' || ok.has(s.keyid) || !allowed.includes(s.keyid)) continue
    const def = keys[s.keyid]
    if (!def || def.alg !== 'ed25519' || keyIdOf(def.public) !== s.keyid) continue
    if (verifyBytes(def.public, bytes, s.sig)) ok.add(s.keyid)
  }
  return ok
}

/** Whether one signature by the raw key `publicKeyHex` verifies (format-1 pins endorsing a root). */
export function signedByKey(env: Envelope, publicKeyHex: string): boolean {
  const keyid = keyIdOf(publicKeyHex)
  const bytes = signedBytes(env.signed)
  return env.signatures.some((s) => s.alg === 'ed25519' && s.keyid === keyid && verifyBytes(publicKeyHex, bytes, s.sig))
}

/** RFC 3339 UTC, whole seconds: the only time form in signed documents. */
export const TimeString = z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'must be an RFC 3339 UTC time with whole seconds, e.g. 2026-01-01T00:00:00Z')
export function timeString(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')
}
