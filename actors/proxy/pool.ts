// The proxy's view of the server pool: one pool-member statechart per server, a ring ordered by
// server id, and the smooth weighted round-robin that assigns each request (R-PROXY).
import { createActor, type Actor } from 'xstate'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { poolMemberMachine, type MemberStatus } from '../../machines/pool-member.machine.ts'
import { SmoothWeightedRoundRobin } from './smooth-wrr.ts'

export interface MemberView {
  id: string
  state: string
  healthy: boolean
  weight: number
  synced: Record<string, number>
  requests: number
  bytesServed: number
  inflight: number
  lastSeen: string
  assigned: number
  /** Why the server was last quarantined (bytes that failed verification), if it was. */
  suspectReason?: string
  /** Releases the server parked (issue 11 item 6). */
  parked: NonNullable<MemberStatus['parked']>
  /** The release the server waits to sync for want of disk space (issue 11 item 8), if any. */
  stalled?: MemberStatus['stalled']
  /** Per product, the newest revision an operator pruned (issue 11 item 8). */
  pruned: Record<string, number>
  /** Release formats the server serves, and its newest format-2 revision per product. */
  formats: number[]
  synced2: Record<string, number>
}

/** The member's heartbeat lists format 2 (a format-1 server's lists no formats). */
const serves2 = (s: MemberStatus): boolean => (s.formats ?? [1]).includes(2)

export class Pool {
  private readonly members = new Map<string, Actor<typeof poolMemberMachine>>()
  private readonly assigned = new Map<string, number>()
  private readonly wrr = new SmoothWeightedRoundRobin()

  heartbeat(id: string, status: MemberStatus): void {
    const at = Date.now()
    const member = this.members.get(id)
    if (member) {
      member.send({ type: 'heartbeat', status, at })
      return
    }
    const actor = createActor(poolMemberMachine, { input: { id, status, at }, ...inspection() })
    actor.start()
    actor.send({ type: 'heartbeat', status, at })
    this.members.set(id, actor)
  }

  member(id: string): Actor<typeof poolMemberMachine> | undefined {
    return this.members.get(id)
  }

  failed(id: string, reason: string): void {
    this.members.get(id)?.send({ type: 'request.failed', reason })
  }

  /** The server sent bytes that fail verification: no requests for it until its quarantine ends. */
  suspect(id: string, reason: string): void {
    this.members.get(id)?.send({ type: 'server.suspect', reason })
  }

  /** Ring order: members sorted by server id. */
  private ring(): Actor<typeof poolMemberMachine>[] {
    return [...this.members.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, m]) => m)
  }

  /** The newest revision of `product` that a healthy member holds. */
  newest(product: string): number {
    let best = 0
    for (const m of this.ring()) {
      const snap = m.getSnapshot()
      if (snap.matches('healthy')) best = Math.max(best, snap.context.status.synced[product] ?? 0)
    }
    return best
  }

  /** Every product a healthy member holds, with the newest revision held. */
  products(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const m of this.ring()) {
      const snap = m.getSnapshot()
      if (!snap.matches('healthy')) continue
      for (const [product, rev] of Object.entries(snap.context.status.synced)) out[product] = Math.max(out[product] ?? 0, rev)
    }
    return out
  }

  /**
   * Assigns one healthy member holding revision `rev` of `product` (or, without rev, one that
   * is not behind the newest), by smooth weighted round-robin. Excluded ids are skipped.
   */
  assign(product: string | undefined, rev: number | undefined, exclude: ReadonlySet<string> = new Set()): string | undefined {
    const need = product === undefined ? 0 : rev ?? this.newest(product)
    return this.pick(exclude, (s) => product === undefined || (s.synced[product] ?? 0) >= need)
  }

  /**
   * docs/formats.md §2.2: the same for a format-2 request — only members whose heartbeat lists
   * format 2, holding format-2 revision `rev` of `product` (without rev: the newest any holds;
   * without product: any such member).
   */
  assign2(product: string | undefined, rev: number | undefined, exclude: ReadonlySet<string> = new Set()): string | undefined {
    const need = product === undefined ? 0 : rev ?? Math.max(1, this.newest2(product))
    return this.pick(exclude, (s) => serves2(s) && (product === undefined || (s.synced2?.[product] ?? 0) >= need))
  }

  /** The newest format-2 revision of `product` that a healthy format-2 member holds. */
  newest2(product: string): number {
    let best = 0
    for (const m of this.ring()) {
      const snap = m.getSnapshot()
      if (snap.matches('healthy') && serves2(snap.context.status)) best = Math.max(best, snap.context.status.synced2?.[product] ?? 0)
    }
    return best
  }

  private pick(exclude: ReadonlySet<string>, fits: (status: MemberStatus) => boolean): string | undefined {
    const eligible = this.ring()
      .map((m) => m.getSnapshot())
      .filter((s) => s.matches('healthy') && !exclude.has(s.context.id) && fits(s.context.status))
      .map((s) => ({ id: s.context.id, weight: s.context.status.weight }))
    const id = this.wrr.pick(eligible)
    if (id !== undefined) this.assigned.set(id, (this.assigned.get(id) ?? 0) + 1)
    return id
  }

  view(): MemberView[] {
    return this.ring().map((m) => {
      const { value, context } = m.getSnapshot()
      return {
        id: context.id,
        state: String(value),
        healthy: value === 'healthy',
        weight: context.status.weight,
        synced: context.status.synced,
        requests: context.status.requests,
        bytesServed: context.status.bytesServed,
        inflight: context.status.inflight,
        lastSeen: new Date(context.lastSeen).toISOString(),
        assigned: this.assigned.get(context.id) ?? 0,
        parked: context.status.parked ?? [],
        ...(context.status.stalled ? { stalled: context.status.stalled } : {}),
        pruned: context.status.pruned ?? {},
        formats: context.status.formats ?? [1],
        synced2: context.status.synced2 ?? {},
        ...(context.suspectReason ? { suspectReason: context.suspectReason } : {}),
      }
    })
  }

  stop(): void {
    for (const m of this.members.values()) m.stop()
  }
}
