// Private swarms (issue 10 item 9; docs/protocol.md §5): a fleet's Ed25519 key certifies the
// Noise key of each member (client machine or repository server), and a fleet topic secret makes
// the topics and tracker ids of private products underivable from the product id. Bytes here are
// the wire format: change them only with a new FLEET_CERT_VERSION.
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import b4a from 'b4a'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import c from 'compact-encoding'
import Protomux from 'protomux'
import { z } from 'zod'
import { UpswarmError, errorMessage } from '../errors.ts'
import { writeFileAtomic } from '../store/working-copy/atomic.ts'
import { topicFor, type SwarmKeyPair } from './transport.ts'

export const FLEET_CERT_VERSION = 1
/** Signed before the certificate body, so a fleet signature can never be replayed as another kind of statement. */
export const FLEET_CERT_CONTEXT = 'upswarm:fleet-cert:'
export const PRIVATE_TOPIC_PREFIX = 'upswarm:private-topic:'
export const PRIVATE_PRODUCT_PREFIX = 'upswarm:private-product:'
export const SWARM_IDENTITY_TYPE = 'upswarm-swarm-identity'
const NAME_MAX = 64
const KEY_BYTES = 32
const SIG_BYTES = 64
/** version + fleet key + name length + noise key + expires. */
const FIXED_BYTES = 1 + KEY_BYTES + 1 + KEY_BYTES + 8

// Ed25519 keys as DER: node:crypto takes raw keys only behind these fixed prefixes (RFC 8410).
const PKCS8_PREFIX = b4a.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = b4a.from('302a300506032b6570032100', 'hex')

export interface FleetKey { publicKey: Buffer; seed: Buffer }

export interface FleetCertificate {
  version: number
  /** The fleet's Ed25519 public key: also the fleet's id. */
  fleet: Buffer
  /** The member's name (client machine or server id). */
  name: string
  /** The member's Noise public key. */
  noiseKey: Buffer
  /** Unix seconds after which the certificate is void; 0 = never (repository servers). */
  expires: number
  signature: Buffer
}

export function fleetPublicKeyOf(seed: Uint8Array): Buffer {
  const der = createPublicKey(createPrivateKey({ key: b4a.concat([PKCS8_PREFIX, seed]) as Buffer, format: 'der', type: 'pkcs8' }))
    .export({ format: 'der', type: 'spki' })
  return der.subarray(SPKI_PREFIX.length) as Buffer
}

export function createFleetKey(): FleetKey {
  const seed = randomBytes(KEY_BYTES)
  return { seed, publicKey: fleetPublicKeyOf(seed) }
}

function body(c: Omit<FleetCertificate, 'signature'>): Buffer {
  const name = b4a.from(c.name, 'utf8')
  if (name.length < 1 || name.length > NAME_MAX) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `fleet certificate: name must be 1-${NAME_MAX} bytes, got ${name.length}`)
  if (c.fleet.length !== KEY_BYTES || c.noiseKey.length !== KEY_BYTES) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', 'fleet certificate: keys must be 32 bytes')
  if (!Number.isSafeInteger(c.expires) || c.expires < 0) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `fleet certificate: bad expiry ${c.expires}`)
  const out = b4a.alloc(FIXED_BYTES + name.length) as Buffer
  let o = 0
  out[o++] = c.version
  out.set(c.fleet, o); o += KEY_BYTES
  out[o++] = name.length
  out.set(name, o); o += name.length
  out.set(c.noiseKey, o); o += KEY_BYTES
  out.writeBigUInt64LE(BigInt(c.expires), o)
  return out
}

const signed = (b: Buffer): Buffer => b4a.concat([b4a.from(FLEET_CERT_CONTEXT), b]) as Buffer

/** Signs a certificate for `noiseKey` with the fleet key. */
export function issueCertificate(fleet: FleetKey, member: { name: string; noiseKey: Buffer; expires: number }): FleetCertificate {
  const unsigned = { version: FLEET_CERT_VERSION, fleet: fleet.publicKey, ...member }
  const key = createPrivateKey({ key: b4a.concat([PKCS8_PREFIX, fleet.seed]) as Buffer, format: 'der', type: 'pkcs8' })
  return { ...unsigned, signature: sign(null, signed(body(unsigned)), key) }
}

export function encodeCertificate(c: FleetCertificate): Buffer {
  return b4a.concat([body(c), c.signature]) as Buffer
}

/** Parses the bytes of a certificate (not its signature: verifyCertificate does). */
export function decodeCertificate(bytes: Uint8Array): FleetCertificate {
  const bad = (why: string): never => { throw new UpswarmError('UPSWARM_E_SIGNATURE', `malformed fleet certificate: ${why}`) }
  if (bytes.length < FIXED_BYTES + 1 + SIG_BYTES) bad(`${bytes.length} bytes is too short`)
  const buf = b4a.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Buffer
  if (buf[0] !== FLEET_CERT_VERSION) bad(`version ${buf[0]}, this upswarm reads version ${FLEET_CERT_VERSION}`)
  const nameLength = buf[1 + KEY_BYTES]!
  if (nameLength < 1 || nameLength > NAME_MAX) bad(`name length ${nameLength}`)
  if (buf.length !== FIXED_BYTES + nameLength + SIG_BYTES) bad(`${buf.length} bytes, expected ${FIXED_BYTES + nameLength + SIG_BYTES}`)
  let o = 1
  const fleet = b4a.from(buf.subarray(o, o += KEY_BYTES)) as Buffer
  o += 1
  const name = b4a.toString(buf.subarray(o, o += nameLength), 'utf8')
  const noiseKey = b4a.from(buf.subarray(o, o += KEY_BYTES)) as Buffer
  const expires = buf.readBigUInt64LE(o)
  o += 8
  if (expires > BigInt(Number.MAX_SAFE_INTEGER)) bad('expiry out of range')
  return { version: FLEET_CERT_VERSION, fleet, name, noiseKey, expires: Number(expires), signature: b4a.from(buf.subarray(o)) as Buffer }
}

/**
 * Checks a peer's certificate: signed by `fleet`, for the Noise key the peer actually proved in
 * the handshake (`remoteNoiseKey`), not expired at `nowSeconds`. Returns it, or throws
 * UPSWARM_E_SIGNATURE saying which check failed.
 */
export function verifyCertificate(bytes: Uint8Array, expect: { fleet: Buffer; remoteNoiseKey: Buffer; nowSeconds?: number }): FleetCertificate {
  const cert = decodeCertificate(bytes)
  const fail = (why: string): never => { throw new UpswarmError('UPSWARM_E_SIGNATURE', `fleet certificate of "${cert.name}" refused: ${why}`) }
  if (!b4a.equals(cert.fleet, expect.fleet)) fail(`it is from another fleet (${b4a.toString(cert.fleet, 'hex').slice(0, 16)}…)`)
  const publicKey = createPublicKey({ key: b4a.concat([SPKI_PREFIX, cert.fleet]) as Buffer, format: 'der', type: 'spki' })
  if (!verify(null, signed(body(cert)), publicKey, cert.signature)) fail('bad signature')
  if (!b4a.equals(cert.noiseKey, expect.remoteNoiseKey)) fail('it certifies another Noise key than the peer\'s')
  const now = expect.nowSeconds ?? Math.floor(Date.now() / 1000)
  if (cert.expires !== 0 && cert.expires <= now) fail(`expired at ${new Date(cert.expires * 1000).toISOString()}`)
  return cert
}

/** What a fleet member holds (the swarm identity file): its Noise key pair, its certificate, the fleet's public key and topic secret. */
export interface SwarmIdentity {
  name: string
  keyPair: SwarmKeyPair
  certificate: Buffer
  fleet: Buffer
  topicSecret: Buffer
  expires: number
}

const hex = (n: number): z.ZodString => z.string().regex(new RegExp(`^[0-9a-f]{${n * 2}}$`))
const SwarmIdentityFileSchema = z.object({
  type: z.literal(SWARM_IDENTITY_TYPE),
  format: z.literal(FLEET_CERT_VERSION),
  name: z.string().min(1).max(NAME_MAX),
  seed: hex(KEY_BYTES),
  publicKey: hex(KEY_BYTES),
  certificate: z.string().regex(/^[0-9a-f]+$/),
  fleetPublicKey: hex(KEY_BYTES),
  topicSecret: hex(KEY_BYTES),
  expires: z.number().int().nonnegative(),
})

/** Makes a member's identity: a new Noise key pair and its certificate. */
export function createSwarmIdentity(fleet: FleetKey, topicSecret: Buffer, name: string, expires: number): SwarmIdentity {
  const keyPair = NoiseSecretStream.keyPair(randomBytes(KEY_BYTES))
  const cert = issueCertificate(fleet, { name, noiseKey: keyPair.publicKey, expires })
  return { name, keyPair, certificate: encodeCertificate(cert), fleet: fleet.publicKey, topicSecret, expires }
}

/** Writes the identity file (JSON, mode 0600): it holds the Noise secret and the fleet's topic secret. */
export async function writeSwarmIdentity(file: string, id: SwarmIdentity): Promise<void> {
  const json = {
    type: SWARM_IDENTITY_TYPE, format: FLEET_CERT_VERSION, name: id.name,
    seed: b4a.toString(id.keyPair.secretKey.subarray(0, KEY_BYTES), 'hex'), publicKey: b4a.toString(id.keyPair.publicKey, 'hex'),
    certificate: b4a.toString(id.certificate, 'hex'), fleetPublicKey: b4a.toString(id.fleet, 'hex'),
    topicSecret: b4a.toString(id.topicSecret, 'hex'), expires: id.expires,
  }
  await writeFileAtomic(file, `${JSON.stringify(json, null, 2)}\n`, dirname(file), 0o600)
}

export async function loadSwarmIdentity(file: string): Promise<SwarmIdentity> {
  let parsed: z.infer<typeof SwarmIdentityFileSchema>
  try {
    parsed = SwarmIdentityFileSchema.parse(JSON.parse(await readFile(file, 'utf8')))
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read the swarm identity file ${file}: ${errorMessage(err)} (\`upswarm creds issue\` writes one)`, { cause: err })
  }
  const keyPair = NoiseSecretStream.keyPair(b4a.from(parsed.seed, 'hex') as Buffer)
  if (b4a.toString(keyPair.publicKey, 'hex') !== parsed.publicKey) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${file}: its public key does not match its seed; the file is damaged, issue a new one`)
  }
  const certificate = b4a.from(parsed.certificate, 'hex') as Buffer
  const fleet = b4a.from(parsed.fleetPublicKey, 'hex') as Buffer
  try {
    // Our own certificate must pass the checks peers will make (expiry included).
    verifyCertificate(certificate, { fleet, remoteNoiseKey: keyPair.publicKey })
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${file}: ${errorMessage(err)}; issue a new one with \`upswarm creds issue\``, { cause: err })
  }
  return { name: parsed.name, keyPair, certificate, fleet, topicSecret: b4a.from(parsed.topicSecret, 'hex') as Buffer, expires: parsed.expires }
}

/** The DHT topic of a private product (all revisions) or of one revision: SHA-256(prefix ‖ secret ‖ product [":" rev]). */
export function privateTopicFor(topicSecret: Buffer, product: string, rev?: number): Buffer {
  return createHash('sha256').update(PRIVATE_TOPIC_PREFIX).update(topicSecret).update(product + (rev === undefined ? '' : `:${rev}`)).digest()
}

/**
 * The id a private product is announced under at the tracker: the first 16 bytes of
 * SHA-256(prefix ‖ secret ‖ product), shaped as a UUID (version 8, RFC 9562 variant), so the
 * tracker takes it like any product id and its listings name no real product.
 */
export function privateProductId(topicSecret: Buffer, product: string): string {
  const h = createHash('sha256').update(PRIVATE_PRODUCT_PREFIX).update(topicSecret).update(product).digest().subarray(0, 16)
  h[6] = (h[6]! & 0x0f) | 0x80
  h[8] = (h[8]! & 0x3f) | 0x80
  const x = b4a.toString(h, 'hex')
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`
}

export const FLEET_PROTOCOL = 'upswarm/fleet'
export const FLEET_PROTOCOL_VERSION = 1

/** What a node learnt of a peer in the fleet exchange. */
export type Admission = { member: true; name: string } | { member: false; reason: string }

/**
 * The certificate exchange on a fresh connection: opens the `upswarm/fleet` channel with this
 * node's certificate (none when `identity` is null) and, when `identity` is given, resolves with
 * the verdict on the peer's: a member (valid certificate of our fleet for the peer's own Noise
 * key) or not, with the reason. A peer that opens no fleet channel within `timeoutMs` is not a
 * member. Without an identity it only presents (empty) and resolves at once: such a node admits
 * anyone.
 */
function judge(hs: Uint8Array, identity: SwarmIdentity, remoteNoiseKey: Buffer): Admission {
  if (hs.length < 1 || hs[0] !== FLEET_PROTOCOL_VERSION) return { member: false, reason: `fleet exchange version ${hs[0] ?? 'missing'}, expected ${FLEET_PROTOCOL_VERSION}` }
  if (hs.length === 1) return { member: false, reason: 'the peer presented no fleet certificate' }
  try {
    return { member: true, name: verifyCertificate(hs.subarray(1), { fleet: identity.fleet, remoteNoiseKey }).name }
  } catch (err) {
    return { member: false, reason: errorMessage(err) }
  }
}

export function exchangeCertificates(stream: NoiseSecretStream, identity: SwarmIdentity | null, timeoutMs: number): Promise<Admission> {
  const mux = Protomux.from(stream)
  return new Promise<Admission>((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const done = (a: Admission): void => {
      clearTimeout(timer)
      resolve(a)
    }
    const channel = mux.createChannel<Uint8Array>({
      protocol: FLEET_PROTOCOL,
      handshake: { preencode: c.raw.preencode, encode: c.raw.encode, decode: c.raw.decode as (state: unknown) => Uint8Array },
      onopen: (hs) => {
        if (identity) done(judge(hs, identity, stream.remotePublicKey!))
        channel?.close()
      },
      onclose: () => done({ member: false, reason: 'the connection closed during the fleet exchange' }),
    })
    if (!channel) return done({ member: false, reason: 'the connection is closed' })
    channel.open(b4a.concat([b4a.from([FLEET_PROTOCOL_VERSION]), identity?.certificate ?? b4a.alloc(0)]))
    if (!identity) return done({ member: false, reason: 'this node has no fleet identity' })
    timer = setTimeout(() => done({ member: false, reason: `no fleet certificate presented within ${timeoutMs} ms` }), timeoutMs)
  })
}

/** The DHT topic a node joins for a product (all revisions) or one revision: the private one when given the fleet's topic secret. */
export function productTopic(product: string, rev?: number, topicSecret?: Buffer | null): Buffer {
  return topicSecret ? privateTopicFor(topicSecret, product, rev) : topicFor(product, rev)
}
