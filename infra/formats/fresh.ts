// Freshness statements (issue 10 item 7; docs/formats.md §1.4, TUF's timestamp): "as of `issued`,
// the newest release of `product` is `rev`, whose manifest hashes to `release`; the newest root
// is `root`". Signed by the root's `fresh` role (the notary), short-lived. A client that holds
// only expired statements says "stale since …" and keeps working (R-DHT-2): it never refuses a
// newer verified release because no fresh statement vouches for it.
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import type { PublisherKey } from '../release/keys.ts'
import { UUID_RE } from '../release/manifest.ts'
import { HEX64, SIGNED_FORMAT, TimeString, encodeEnvelope, parseEnvelope, signEnvelope, timeString, validSigners, type Envelope } from './envelope.ts'
import { DEFAULT_FRESH_LIFETIME_S, type Root } from './root.ts'

export const FRESH_MAX_BYTES = 4096

const FreshSchema = z.object({
  type: z.literal('fresh'),
  format: z.literal(SIGNED_FORMAT),
  product: z.string().regex(UUID_RE),
  rev: z.number().int().min(0),
  release: z.string().regex(HEX64).optional(),
  root: z.number().int().min(1),
  rollout: z.number().int().min(0),
  issued: TimeString,
  expires: TimeString,
  critical: z.array(z.string()).optional(),
})
const FRESH_FIELDS = ['type', 'format', 'product', 'rev', 'release', 'root', 'rollout', 'issued', 'expires', 'critical']
export type Fresh = z.infer<typeof FreshSchema>

export interface SignedFresh {
  env: Envelope
  fresh: Fresh
}

/** Parses a fresh statement and checks it under `root` (fresh role, threshold, lifetime). */
export function verifyFresh(bytes: Uint8Array | string, root: Root, where: string): SignedFresh {
  const env = parseEnvelope(bytes, 'fresh', where, FRESH_MAX_BYTES, FRESH_FIELDS)
  const parsed = FreshSchema.safeParse(env.signed)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_MANIFEST', `fresh statement from ${where} is malformed at ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  const fresh = parsed.data
  const role = root.roles.fresh
  if (validSigners(env, root.keys, role.keys).size < role.threshold) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE',
      `fresh statement from ${where} (product ${fresh.product}, r${fresh.rev}) is not signed by the fresh key of root version ${root.version}; refusing it`)
  }
  const issued = Date.parse(fresh.issued)
  const expires = Date.parse(fresh.expires)
  const max = (role.maxLifetime ?? DEFAULT_FRESH_LIFETIME_S) * 1000
  if (!(expires > issued) || expires - issued > max) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `fresh statement from ${where} lives from ${fresh.issued} to ${fresh.expires}; root version ${root.version} allows at most ${max / 1000} s`)
  }
  return { env, fresh }
}

export interface FreshDraft {
  product: string
  rev: number
  release?: string
  root: number
  issuedMs: number
  lifetimeS: number
}

export function signFresh(d: FreshDraft, key: PublisherKey): Buffer {
  const signed: Record<string, unknown> = {
    type: 'fresh', format: SIGNED_FORMAT, product: d.product, rev: d.rev, ...(d.release ? { release: d.release } : {}),
    root: d.root, rollout: 0, issued: timeString(d.issuedMs), expires: timeString(d.issuedMs + d.lifetimeS * 1000),
  }
  return encodeEnvelope(signEnvelope(signed, [key]))
}

/** What `status` says about freshness (docs/formats.md §3.4). */
export interface Freshness {
  issued: string
  expires: string
  ageSeconds: number
  stale: boolean
  newestRev: number
  root: number
}

export function freshnessOf(fresh: Fresh, nowMs: number): Freshness {
  return {
    issued: fresh.issued, expires: fresh.expires, ageSeconds: Math.max(0, Math.round((nowMs - Date.parse(fresh.issued)) / 1000)),
    stale: Date.parse(fresh.expires) <= nowMs, newestRev: fresh.rev, root: fresh.root,
  }
}

/** One line for people: "fresh: r42 as of … (12 min ago)" or "stale since … (3 d)". */
export function freshnessLine(f: Freshness | undefined, nowMs: number): string {
  if (!f) return 'freshness: no fresh statement verified yet (servers and peers gave none)'
  const ago = (ms: number): string => {
    const s = Math.max(0, Math.round(ms / 1000))
    return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`
  }
  if (f.stale) {
    return `stale since ${f.expires} (${ago(nowMs - Date.parse(f.expires))}): servers and peers gave no newer fresh statement; newest vouched release r${f.newestRev} as of ${f.issued}`
  }
  return `fresh: r${f.newestRev} as of ${f.issued} (${ago(nowMs - Date.parse(f.issued))} ago), root version ${f.root}`
}
