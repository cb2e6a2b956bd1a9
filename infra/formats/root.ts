// The root of trust (issue 10 item 7; docs/formats.md §1.2, §3): a document signed by offline
// root keys that names, per product, the keys that may sign its releases, and the online key of
// the notary that signs freshness statements. Roots form a chain: version N+1 is valid only when a
// threshold of N's root keys and of its own root keys sign it, so keys rotate without
// reinstalling anyone. A retired publish key keeps its releases up to `lastRev` (rollback to any
// revision, R-ROLLBACK) and signs nothing after it.
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import type { PublisherKey } from '../release/keys.ts'
import { UUID_RE } from '../release/manifest.ts'
import { HEX64, SIGNED_FORMAT, TimeString, encodeEnvelope, keyIdOf, parseEnvelope, signEnvelope, signedByKey, timeString, validSigners, type Envelope } from './envelope.ts'

export const ROOT_MAX_BYTES = 1024 * 1024
/** What a root may say about freshness statements' lifetime when it does not say: 6 h. */
export const DEFAULT_FRESH_LIFETIME_S = 6 * 3600
/**
 * docs/formats.md §2.2: the release formats of a product added to a root without `--formats`.
 * Both: clients of this release read format 2 (no size cap, deltas, the light daemon), clients of
 * earlier releases keep reading format 1. A product that predates the field stays format 1.
 */
export const NEW_PRODUCT_FORMATS: readonly number[] = [1, 2]

const KeyId = z.string().regex(HEX64, 'key ids are 64 hex characters')
const Role = z.object({ keys: z.array(KeyId).min(1).max(64), threshold: z.number().int().min(1).max(64) })
const Retired = z.object({ keyid: KeyId, lastRev: z.number().int().min(0), lastRelease: z.string().regex(HEX64).optional() })
const ProductEntry = z.object({
  publish: Role,
  rollout: Role.optional(),
  halt: Role.optional(),
  retired: z.array(Retired).max(1024).optional(),
  minRev: z.number().int().min(1).optional(),
  formats: z.array(z.number().int().min(1)).min(1).optional(),
})
const RootSchema = z.object({
  type: z.literal('root'),
  format: z.literal(SIGNED_FORMAT),
  version: z.number().int().min(1),
  expires: TimeString,
  keys: z.record(KeyId, z.object({ alg: z.string().max(32), public: z.string().regex(/^[0-9a-f]{2,256}$/) })),
  roles: z.object({
    root: Role,
    fresh: Role.extend({ maxLifetime: z.number().int().min(60).max(366 * 86400).optional() }),
  }),
  products: z.record(z.string().regex(UUID_RE, 'product ids are lowercase UUIDs'), ProductEntry),
  critical: z.array(z.string()).optional(),
})
const ROOT_FIELDS = ['type', 'format', 'version', 'expires', 'keys', 'roles', 'products', 'critical']
export type Root = z.infer<typeof RootSchema>
export type RootProduct = z.infer<typeof ProductEntry>

/** A root as received and as read. */
export interface SignedRoot {
  env: Envelope
  root: Root
}

/** Parses a root document and checks it is coherent (every role's keys listed, thresholds reachable). Signatures are checked by the chain. */
export function parseRoot(bytes: Uint8Array | string, where: string): SignedRoot {
  const env = parseEnvelope(bytes, 'root', where, ROOT_MAX_BYTES, ROOT_FIELDS)
  const parsed = RootSchema.safeParse(env.signed)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_MANIFEST', `root document from ${where} is malformed at ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  const root = parsed.data
  const bad = (msg: string): never => {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `root version ${root.version} from ${where}: ${msg}`)
  }
  for (const [id, def] of Object.entries(root.keys)) {
    if (def.alg === 'ed25519' && keyIdOf(def.public) !== id) bad(`key id ${id} is not the id of the key it maps to`)
  }
  const checkRole = (name: string, role: { keys: string[]; threshold: number }): void => {
    for (const k of role.keys) if (!root.keys[k]) bad(`role ${name} names key ${k}, which is not in keys`)
    if (role.threshold > new Set(role.keys).size) bad(`role ${name} needs ${role.threshold} signatures but lists ${new Set(role.keys).size} keys`)
  }
  checkRole('root', root.roles.root)
  checkRole('fresh', root.roles.fresh)
  for (const [product, p] of Object.entries(root.products)) {
    checkRole(`${product}.publish`, p.publish)
    if (p.rollout) checkRole(`${product}.rollout`, p.rollout)
    if (p.halt) checkRole(`${product}.halt`, p.halt)
    for (const r of p.retired ?? []) {
      if (p.publish.keys.includes(r.keyid)) bad(`product ${product} lists key ${r.keyid} both as a publish key and as retired`)
      if (!root.keys[r.keyid]) bad(`product ${product} retires key ${r.keyid}, which is not in keys`)
    }
  }
  return { env, root }
}

function meetsRole(signed: SignedRoot, of: Root, role: 'root'): boolean {
  const r = of.roles[role]
  return validSigners(signed.env, of.keys, r.keys).size >= r.threshold
}

/** A root pinned by file (`init --root`, the trust file): valid under its own root role. */
export function verifyPinnedRoot(next: SignedRoot, where: string): void {
  if (!meetsRole(next, next.root, 'root')) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE', `root version ${next.root.version} from ${where} is not signed by ${next.root.roles.root.threshold} of its own root keys; refusing it`)
  }
}

/** Root N+1 after trusted root N: signed by a threshold of N's root keys and of its own (TUF). */
export function verifyNextRoot(trusted: Root, next: SignedRoot, where: string): void {
  if (next.root.version !== trusted.version + 1) {
    throw new UpswarmError('UPSWARM_E_ROLLBACK', `root version ${next.root.version} from ${where} does not follow the trusted version ${trusted.version}; roots are accepted one version at a time`)
  }
  if (!meetsRole(next, trusted, 'root')) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE',
      `root version ${next.root.version} from ${where} is not signed by ${trusted.roles.root.threshold} of the root keys of version ${trusted.version}; refusing it`)
  }
  verifyPinnedRoot(next, where)
}

/**
 * A client that pinned only a publisher key (`init --pubkey`, format 1) accepts a root that
 * lists that key for its product and carries its signature (an endorsement, docs/formats.md §3.1).
 */
export function endorsedFor(signed: SignedRoot, product: string, pinnedKey: string): boolean {
  const p = signed.root.products[product]
  const keyid = keyIdOf(pinnedKey)
  const listed = p !== undefined && (p.publish.keys.includes(keyid) || (p.retired ?? []).some((r) => r.keyid === keyid))
  return listed && signedByKey(signed.env, pinnedKey) && meetsRole(signed, signed.root, 'root')
}

export type KeyVerdict =
  | { ok: true; retired?: { lastRev: number; lastRelease?: string } }
  | { ok: false; reason: string }

/**
 * May `publicKey` sign revision `rev` of `product` (a format-1 manifest, one signature) under this
 * root? A retired key's verdict carries its anchor: revisions below it must be reached by the
 * release chain (the caller checks the record).
 */
export function keyVerdict(root: Root, product: string, publicKey: string, rev: number): KeyVerdict {
  const p = root.products[product]
  if (!p) return { ok: false, reason: `product ${product} is not in root version ${root.version}` }
  if (p.minRev !== undefined && rev < p.minRev) {
    return { ok: false, reason: `root version ${root.version} accepts revisions of ${product} from ${p.minRev} only (a compromise was declared); r${rev} is below` }
  }
  const keyid = keyIdOf(publicKey)
  if (p.publish.keys.includes(keyid)) {
    if (p.publish.threshold > 1) return { ok: false, reason: `root version ${root.version} needs ${p.publish.threshold} publish signatures for ${product}; a format-1 manifest carries one` }
    return { ok: true }
  }
  const retired = (p.retired ?? []).find((r) => r.keyid === keyid)
  if (retired) {
    if (rev <= retired.lastRev) return { ok: true, retired: { lastRev: retired.lastRev, ...(retired.lastRelease ? { lastRelease: retired.lastRelease } : {}) } }
    return { ok: false, reason: `r${rev} of ${product} is signed by key ${publicKey.slice(0, 16)}…, retired after r${retired.lastRev} in root version ${root.version} (rotated or revoked)` }
  }
  return { ok: false, reason: `key ${publicKey.slice(0, 16)}… may not sign releases of ${product} (root version ${root.version})` }
}

/** The raw publish keys (current and retired) of a product: what servers seed feeds for. */
export function productKeys(root: Root, product: string): { current: string[]; retired: string[] } {
  const p = root.products[product]
  const raw = (id: string): string | undefined => root.keys[id]?.public
  return {
    current: (p?.publish.keys ?? []).map(raw).filter((k): k is string => k !== undefined),
    retired: (p?.retired ?? []).map((r) => raw(r.keyid)).filter((k): k is string => k !== undefined),
  }
}

export function rootExpired(root: Root, nowMs: number): boolean {
  return Date.parse(root.expires) <= nowMs
}

// ---- writing roots (the root holder's side: `upswarm root …`) ----

export interface RootDraft {
  version: number
  expiresMs: number
  rootKeys: string[]
  rootThreshold: number
  freshKeys: string[]
  freshLifetimeS?: number
  products: Record<string, {
    publish: string[]
    /** Issue 16 item 1: keys that may sign rollout statements besides the publish key (threshold 1). */
    rollout?: string[]
    /** Issue 16 item 2: keys that may sign only a halt (the notary's, threshold 1). */
    halt?: string[]
    retired?: Array<{ key: string; lastRev: number; lastRelease?: string }>
    minRev?: number
    formats?: number[]
  }>
}

/** The unsigned root body of a draft (raw public keys in, key ids out). */
export function rootBody(d: RootDraft): Record<string, unknown> {
  const keys: Record<string, { alg: string; public: string }> = {}
  const id = (pub: string): string => {
    const k = keyIdOf(pub)
    keys[k] = { alg: 'ed25519', public: pub }
    return k
  }
  const products: Record<string, unknown> = {}
  for (const [product, p] of Object.entries(d.products)) {
    products[product] = {
      publish: { keys: p.publish.map(id), threshold: 1 },
      ...(p.rollout?.length ? { rollout: { keys: p.rollout.map(id), threshold: 1 } } : {}),
      ...(p.halt?.length ? { halt: { keys: p.halt.map(id), threshold: 1 } } : {}),
      ...(p.retired?.length ? { retired: p.retired.map((r) => ({ keyid: id(r.key), lastRev: r.lastRev, ...(r.lastRelease ? { lastRelease: r.lastRelease } : {}) })) } : {}),
      ...(p.minRev ? { minRev: p.minRev } : {}),
      // docs/formats.md §2.2: the release formats its publisher writes; format 1 until an edit says otherwise.
      formats: p.formats ?? [1],
    }
  }
  return {
    type: 'root', format: SIGNED_FORMAT, version: d.version, expires: timeString(d.expiresMs),
    roles: {
      root: { keys: d.rootKeys.map(id), threshold: d.rootThreshold },
      fresh: { keys: d.freshKeys.map(id), threshold: 1, maxLifetime: d.freshLifetimeS ?? DEFAULT_FRESH_LIFETIME_S },
    },
    products, keys,
  }
}

/** Signs a root body with the given keys and checks the result parses. */
export function signRoot(body: Record<string, unknown>, signers: PublisherKey[]): SignedRoot {
  const env = signEnvelope(body, signers)
  return { env, root: parseRoot(JSON.stringify(env), 'the root being signed').root }
}

export const DAY_MS = 86_400_000
export const DEFAULT_ROOT_EXPIRES_DAYS = 365

export interface InitRoot {
  rootKeys: PublisherKey[]
  threshold?: number
  freshKeys: string[]
  freshLifetimeS?: number
  expiresDays?: number
  nowMs?: number
}

/** Root version 1: no products yet, signed by every given root key (`root init`, `upswarm up`). */
export function initRoot(o: InitRoot): SignedRoot {
  if (o.rootKeys.length === 0) throw new UpswarmError('UPSWARM_E_CONFIG', 'root init: give at least one --root-key FILE')
  const threshold = o.threshold ?? 1
  if (threshold < 1 || threshold > o.rootKeys.length) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `root init: --threshold ${threshold} must be between 1 and the ${o.rootKeys.length} root key(s) given`)
  }
  for (const k of o.freshKeys) checkHexKey(k, '--fresh-key')
  const draft: RootDraft = {
    version: 1, expiresMs: (o.nowMs ?? Date.now()) + (o.expiresDays ?? DEFAULT_ROOT_EXPIRES_DAYS) * DAY_MS,
    rootKeys: o.rootKeys.map((k) => k.publicKey), rootThreshold: threshold, freshKeys: o.freshKeys,
    ...(o.freshLifetimeS !== undefined ? { freshLifetimeS: o.freshLifetimeS } : {}), products: {},
  }
  const signed = signRoot(rootBody(draft), o.rootKeys)
  verifyPinnedRoot(signed, 'the new root')
  return signed
}

/** A public key given for a root role, checked before it is signed into one. */
export function checkHexKey(key: string, what: string): void {
  if (!HEX64.test(key)) throw new UpswarmError('UPSWARM_E_CONFIG', `${what} must be a public key of 64 hex characters (upswarm keygen prints one), got ${JSON.stringify(key.slice(0, 80))}`)
}

/** What is stored and sent: the canonical envelope, one line. */
export const rootText = (signed: SignedRoot): string => encodeEnvelope(signed.env).toString('utf8')

/** The draft of an existing root, to edit into the next version. */
export function draftOf(root: Root): RootDraft {
  const raw = (id: string): string => root.keys[id]!.public
  const products: RootDraft['products'] = {}
  for (const [product, p] of Object.entries(root.products)) {
    products[product] = {
      publish: p.publish.keys.map(raw),
      // Kept through an edit: a root that names rollout or halt keys keeps naming them.
      ...(p.rollout ? { rollout: p.rollout.keys.map(raw) } : {}),
      ...(p.halt ? { halt: p.halt.keys.map(raw) } : {}),
      ...(p.retired ? { retired: p.retired.map((r) => ({ key: raw(r.keyid), lastRev: r.lastRev, ...(r.lastRelease ? { lastRelease: r.lastRelease } : {}) })) } : {}),
      ...(p.minRev ? { minRev: p.minRev } : {}),
      ...(p.formats ? { formats: p.formats } : {}),
    }
  }
  return {
    version: root.version, expiresMs: Date.parse(root.expires), rootKeys: root.roles.root.keys.map(raw), rootThreshold: root.roles.root.threshold,
    freshKeys: root.roles.fresh.keys.map(raw), freshLifetimeS: root.roles.fresh.maxLifetime ?? DEFAULT_FRESH_LIFETIME_S, products,
  }
}
