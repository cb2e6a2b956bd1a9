// R-PROXY-1, heartbeats bound to identity (ARCHITECTURE §6b "nothing trusted by position"): a
// heartbeat speaks for the server its subject names — the one heartbeat subject that server's
// NATS identity may publish on — never for the id in its body, and it is believed only as far
// as the release stream goes: a server cannot hold a revision that was never published.
import type { Msg, NatsConnection } from '@nats-io/transport-node'
import type { z } from 'zod'
import { SERVER_HEARTBEATS, heartbeatServerId } from '../../infra/nats/names.ts'
import { errorMessage } from '../../infra/errors.ts'
import type { MemberStatus } from '../../machines/pool-member.machine.ts'
import { HeartbeatForPool, heartbeatProblems } from '../../infra/nats/heartbeat.ts'
import type { Pool } from './pool.ts'

/** A product's newest revision is looked up at most this often (a forged claim cannot flood the stream). */
const LOOKUP_INTERVAL_MS = 1000
/** Products looked up for one heartbeat at most; a server holding more is believed over the next beats. */
const LOOKUPS_PER_HEARTBEAT = 16

/** The newest revision of each product in the release stream, looked up when a claim goes beyond it. */
export class ReleaseCeiling {
  private readonly newest = new Map<string, number>()
  private readonly lookedUpAt = new Map<string, number>()

  constructor(private readonly lookup: (product: string) => Promise<number>) {}

  /** The products of `synced` claimed beyond the stream's newest revision, as "rev N of P (newest M)". */
  async beyond(synced: Record<string, number>): Promise<string[]> {
    const out: string[] = []
    let lookups = 0
    for (const [product, rev] of Object.entries(synced)) {
      if (rev <= (this.newest.get(product) ?? 0)) continue
      const last = this.lookedUpAt.get(product)
      if ((last === undefined || Date.now() - last >= LOOKUP_INTERVAL_MS) && lookups < LOOKUPS_PER_HEARTBEAT) {
        lookups++
        this.lookedUpAt.set(product, Date.now())
        this.newest.set(product, Math.max(this.newest.get(product) ?? 0, await this.lookup(product)))
      }
      const newest = this.newest.get(product) ?? 0
      if (rev > newest) out.push(`revision ${rev} of ${product} (the release stream's newest is ${newest || 'none'})`)
    }
    return out
  }
}

export type HeartbeatVerdict = { id: string; status: MemberStatus } | { dropped: string }

/** What the pool may take from one heartbeat message: the subject's server and its status, or why not. */
export async function judgeHeartbeat(msg: Pick<Msg, 'subject' | 'json'>, ceiling: ReleaseCeiling): Promise<HeartbeatVerdict> {
  const id = heartbeatServerId(msg.subject)
  if (id === undefined) return { dropped: `ignored a heartbeat on ${msg.subject}: that subject names no server` }
  let hb: z.infer<typeof HeartbeatForPool>
  try {
    hb = HeartbeatForPool.parse(msg.json())
  } catch (err) {
    // A server that cannot say who it is, what it holds and what it weighs stays out of the pool.
    return { dropped: `ignored a malformed heartbeat on ${msg.subject}: ${heartbeatProblems(err)}` }
  }
  if (hb.id !== id) {
    return { dropped: `dropped a heartbeat on ${msg.subject}: its body says server ${JSON.stringify(hb.id)}, but that subject is server ${id}'s; a server speaks only for itself` }
  }
  let beyond: string[]
  try {
    beyond = await ceiling.beyond(hb.synced)
  } catch (err) {
    return { dropped: `dropped the heartbeat of server ${id}: cannot read the release stream to check what it claims: ${errorMessage(err)}` }
  }
  if (beyond.length > 0) return { dropped: `dropped the heartbeat of server ${id}: it claims ${beyond.join(', ')}` }
  return { id, status: { weight: hb.weight, synced: hb.synced, requests: hb.requests, bytesServed: hb.bytesServed, inflight: hb.inflight, parked: hb.parked, pruned: hb.pruned, formats: hb.formats, synced2: hb.synced2, ...(hb.stalled ? { stalled: hb.stalled } : {}) } }
}

/** Feeds the pool from every server heartbeat, one at a time in arrival order (`onFirst` after the first one taken); returns the stop function. */
export function followHeartbeats(nc: NatsConnection, pool: Pool, ceiling: ReleaseCeiling, log: (m: string) => void, onFirst?: () => void): () => Promise<void> {
  const sub = nc.subscribe(SERVER_HEARTBEATS)
  const done = (async () => {
    for await (const msg of sub) {
      const verdict = await judgeHeartbeat(msg, ceiling)
      if ('dropped' in verdict) log(verdict.dropped)
      else {
        pool.heartbeat(verdict.id, verdict.status)
        onFirst?.()
        onFirst = undefined
      }
    }
  })().catch((err: unknown) => log(`heartbeat subscription ended: ${errorMessage(err)}`))
  return async () => {
    sub.unsubscribe()
    await done
  }
}
