// `upswarm rollout` (issue 16 item 1; docs/formats.md §1.5): one signed statement per step of a
// release's rollout — active for a share of the fleet (and rings), paused, resumed, halted —
// appended to the product's rollout subject of UPSWARM_META with the next `seq`, under optimistic
// concurrency. The statement is checked under the newest root on the stream before it is sent,
// so a key the root does not name for the product's rollout (or publish) role is refused here.
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../../infra/errors.ts'
import { newestRoot } from '../../infra/formats/meta-stream.ts'
import { FULL, decidingStatements, signRollout, type Rollout, type RolloutState } from '../../infra/formats/rollout.ts'
import { appendRollout, readRollouts, releaseHashOf, verifyProductRollout } from '../../infra/formats/rollout-stream.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'
import { META_STREAM, rolloutSubject } from '../../infra/nats/names.ts'

export type RolloutAction = { percent: number; rings?: string[] } | { pause: true } | { resume: true; percent?: number } | { halt: true }

export interface RolloutOptions {
  nc: NatsConnection
  product: string
  rev: number
  action: RolloutAction
  /** The rollout key (or a publish key, when the root names no rollout role), or the halt key for a halt. */
  keys: PublisherKey[]
  nowMs?: number
}

export interface RolloutResult {
  product: string
  rev: number
  seq: number
  state: RolloutState
  /** Basis points: 10000 = the whole fleet. */
  percent: number
  rings: string[]
  /** Stream sequence of the appended statement. */
  streamSeq: number
  /** The statement that decided the revision before this one, if any. */
  previous?: { seq: number; state: RolloutState; percent: number }
}

export async function rollout(o: RolloutOptions): Promise<RolloutResult> {
  const stored = await newestRoot(o.nc)
  if (!stored) throw new UpswarmError('UPSWARM_E_CONFIG', `staged rollout needs a root of trust: ${META_STREAM} holds none (\`upswarm root push\`, or \`up\` makes one)`)
  const root = stored.signed.root
  if (!root.products[o.product]) throw new UpswarmError('UPSWARM_E_CONFIG', `product ${o.product} is not in root version ${root.version}: add it first (\`upswarm root edit --add-product\`)`)
  const release = await releaseHashOf(o.nc, o.product, o.rev)
  if (!release) throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `product ${o.product} has no r${o.rev} on the release stream: publish it before rolling it out`)
  const scan = await readRollouts(o.nc, o.product, root, true)
  const all = scan.statements.map((s) => s.rollout)
  const previous: Rollout | undefined = decidingStatements(all).get(o.rev)
  const seq = Math.max(0, ...all.map((s) => s.seq)) + 1
  const a = o.action
  let state: RolloutState
  let percent: number
  let rings: string[]
  if ('percent' in a && !('resume' in a)) {
    state = 'active'
    percent = a.percent
    rings = a.rings ?? []
  } else if ('halt' in a) {
    state = 'halted'
    percent = previous?.percent ?? 0
    rings = previous?.rings ?? []
  } else {
    if (!previous) throw new UpswarmError('UPSWARM_E_CONFIG', `r${o.rev} of ${o.product} has no rollout statement to ${'pause' in a ? 'pause' : 'resume'}: start one with --percent P`)
    if ('pause' in a && previous.state !== 'active') throw new UpswarmError('UPSWARM_E_CONFIG', `r${o.rev} of ${o.product} is ${previous.state} (statement ${previous.seq}): only an active rollout pauses`)
    state = 'pause' in a ? 'paused' : 'active'
    percent = 'resume' in a && a.percent !== undefined ? a.percent : previous.percent
    rings = previous.rings
  }
  if (!Number.isInteger(percent) || percent < 0 || percent > FULL) throw new UpswarmError('UPSWARM_E_CONFIG', `--percent must be from 0 to 100 (got ${percent / 100})`)
  const bytes = signRollout({ product: o.product, seq, rev: o.rev, release, state, percent, rings, issuedMs: o.nowMs ?? Date.now() }, o.keys)
  verifyProductRollout(bytes.toString('utf8'), root, o.product, `the rollout statement for ${rolloutSubject(o.product)}`)
  const streamSeq = await appendRollout(o.nc, o.product, bytes, scan.lastSeq)
  return {
    product: o.product, rev: o.rev, seq, state, percent, rings: [...new Set(rings)].sort(), streamSeq,
    ...(previous ? { previous: { seq: previous.seq, state: previous.state, percent: previous.percent } } : {}),
  }
}
