// Rollout statements (docs/formats.md §1.5; issue 16 item 1): a signed "revision r of product P is
// active / paused / halted for this share of the fleet and these rings". A client's stage is a
// stable hash of its own identity, so growing 5% → 25% keeps the first 5%. For each revision the
// statement with the highest `seq` decides, so a replayed older "100%" changes nothing after a halt.
// Signed by the product's `rollout` role, or — for `halted` only — its `halt` role (Uptane's
// director idea: the key that can stop a release cannot ship or widen one).
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import type { PublisherKey } from '../release/keys.ts'
import { UUID_RE } from '../release/manifest.ts'
import { HEX64, SIGNED_FORMAT, TimeString, encodeEnvelope, parseEnvelope, signEnvelope, timeString, validSigners, type Envelope } from './envelope.ts'
import type { Root } from './root.ts'

export const ROLLOUT_MAX_BYTES = 64 * 1024
/** `percent` is in basis points: 10000 = the whole fleet. */
export const FULL = 10_000
export const ROLLOUT_STATES = ['active', 'paused', 'halted'] as const
export type RolloutState = (typeof ROLLOUT_STATES)[number]

const RolloutSchema = z.object({
  type: z.literal('rollout'),
  format: z.literal(SIGNED_FORMAT),
  product: z.string().regex(UUID_RE, 'product ids are lowercase UUIDs'),
  seq: z.number().int().min(1),
  rev: z.number().int().min(1),
  release: z.string().regex(HEX64),
  state: z.enum(ROLLOUT_STATES),
  percent: z.number().int().min(0).max(FULL),
  rings: z.array(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'ring labels are 1-64 of [A-Za-z0-9_.-]')).max(256),
  issued: TimeString,
  critical: z.array(z.string()).optional(),
})
const ROLLOUT_FIELDS = ['type', 'format', 'product', 'seq', 'rev', 'release', 'state', 'percent', 'rings', 'issued', 'critical']
export type Rollout = z.infer<typeof RolloutSchema>

export interface SignedRollout { env: Envelope; rollout: Rollout }

/** Parses and checks a rollout statement under `root`: rollout role, or halt role for a halt. */
export function verifyRollout(bytes: Uint8Array | string, root: Root, where: string): SignedRollout {
  const env = parseEnvelope(bytes, 'rollout', where, ROLLOUT_MAX_BYTES, ROLLOUT_FIELDS)
  const parsed = RolloutSchema.safeParse(env.signed)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_MANIFEST', `rollout statement from ${where} is malformed at ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  const rollout = parsed.data
  const what = `rollout statement ${rollout.seq} of ${rollout.product} (r${rollout.rev} ${rollout.state}) from ${where}`
  const p = root.products[rollout.product]
  if (!p) throw new UpswarmError('UPSWARM_E_SIGNATURE', `${what}: the product is not in root version ${root.version}; refusing it`)
  const meets = (role: { keys: string[]; threshold: number } | undefined): boolean => !!role && validSigners(env, root.keys, role.keys).size >= role.threshold
  // §1.2: a product whose root names no rollout role rolls out with its publish keys.
  if (meets(p.rollout ?? p.publish)) return { env, rollout }
  if (rollout.state === 'halted' && meets(p.halt)) return { env, rollout }
  const roles = rollout.state === 'halted' ? 'the rollout or halt role' : 'the rollout role (a halt key may only halt)'
  throw new UpswarmError('UPSWARM_E_SIGNATURE', `${what} is not signed by ${roles} of root version ${root.version}; refusing it`)
}

export interface RolloutDraft {
  product: string
  seq: number
  rev: number
  release: string
  state: RolloutState
  percent: number
  rings?: string[]
  issuedMs: number
}

export function signRollout(d: RolloutDraft, keys: PublisherKey[]): Buffer {
  const signed: Record<string, unknown> = {
    type: 'rollout', format: SIGNED_FORMAT, product: d.product, seq: d.seq, rev: d.rev, release: d.release, state: d.state,
    percent: d.percent, rings: [...new Set(d.rings ?? [])].sort(), issued: timeString(d.issuedMs),
  }
  const bytes = encodeEnvelope(signEnvelope(signed, keys))
  const parsed = RolloutSchema.safeParse(JSON.parse(bytes.toString('utf8')).signed)
  if (!parsed.success) throw new UpswarmError('UPSWARM_E_CONFIG', `rollout statement not signed: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`)
  return bytes
}

/**
 * The client's place in the fleet, in basis points [0, 10000): uint32be of
 * SHA-256("upswarm:stage:" + product + ":" + clientKey), scaled. Stable for a client and product.
 */
export function stageOf(product: string, clientKey: string): number {
  const x = createHash('sha256').update(`upswarm:stage:${product}:${clientKey}`).digest().readUInt32BE(0)
  return (x * FULL) / 2 ** 32
}

export interface Client { key: string; ring?: string }

/** The statement that decides each revision: the highest `seq` naming it. */
export function decidingStatements(statements: readonly Rollout[]): Map<number, Rollout> {
  const out = new Map<number, Rollout>()
  for (const s of statements) {
    const held = out.get(s.rev)
    if (!held || s.seq > held.seq) out.set(s.rev, s)
  }
  return out
}

export type RevisionVerdict = 'allowed' | 'not-yet' | 'paused' | 'halted'

/** Whether an `--auto` client may install `rev` (§1.5). An unstaged release with no statement is at 100%. */
export function verdictFor(rev: { rev: number; staged?: boolean }, deciding: Map<number, Rollout>, product: string, client: Client): RevisionVerdict {
  const s = deciding.get(rev.rev)
  if (!s) return rev.staged ? 'not-yet' : 'allowed'
  if (s.state === 'halted') return 'halted'
  const inStage = (client.ring !== undefined && s.rings.includes(client.ring)) || stageOf(product, client.key) < s.percent
  if (!inStage) return 'not-yet'
  return s.state === 'paused' ? 'paused' : 'allowed'
}

/**
 * The revision an `--auto` client should be at: the newest it is allowed, given every revision it
 * knows (newest last or in any order). A paused rollout holds those already on it but takes no one
 * new; a halted revision is left for the newest one that is not halted (possibly older: a
 * rollback; nothing else moves a client down). `current` is where the client is now; undefined
 * when it should stay.
 */
export function autoTarget(revisions: ReadonlyArray<{ rev: number; staged?: boolean }>, statements: readonly Rollout[], product: string, client: Client, current: number): number | undefined {
  const deciding = decidingStatements(statements)
  const newestFirst = [...revisions].sort((a, b) => b.rev - a.rev)
  // Only a halt moves a client down: a revision installed by hand (`update --rev`) beyond its stage stays.
  const currentHalted = deciding.get(current)?.state === 'halted'
  for (const r of newestFirst) {
    const v = verdictFor(r, deciding, product, client)
    if (v === 'allowed' || (v === 'paused' && r.rev === current)) {
      if (r.rev === current || (r.rev < current && !currentHalted)) return undefined
      return r.rev
    }
  }
  return undefined
}
