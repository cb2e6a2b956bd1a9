// The piece scheduler's rule for server ranges (issue 14): a piece asked only of the servers stays
// open to client peers — once a ready peer holds it, the peer is asked too, and whichever copy is
// verified first withdraws the other (multi-source.ts accept) — while the servers are never asked
// twice for it.
import { describe, expect, it } from 'vitest'
import { PieceScheduler, ServerSlots, SERVER_SLOTS, type SchedPeer, type SchedRequest } from '../../actors/share-daemon/piece-scheduler.ts'

interface Peer extends SchedPeer { holds: Set<number> }
const peer = (key: string, holds: number[], server = false): Peer => ({ key, server, inflight: 0, busyUntil: 0, lastPieceAt: 0, holds: new Set(holds) })

function harness(count: number, peers: Peer[]) {
  const inflight: SchedRequest<Peer>[] = []
  const started: string[] = []
  const now = 10_000
  const sched = new PieceScheduler<Peer>({
    sha256: 'ab'.repeat(32), count, selfKey: 'self', swarmKeys: ['self'], startedAt: 0, slots: new ServerSlots(SERVER_SLOTS),
  }, {
    now: () => now,
    holders: (i) => peers.filter((p) => p.holds.has(i)),
    peer: (key) => peers.find((p) => p.key === key),
    closed: () => false,
    inflight: () => inflight,
    lateAfterMs: () => 60_000,
    serverAvailable: () => true,
    startPeer: (i, p) => {
      p.inflight++
      inflight.push({ piece: i, source: p, asked: now })
      started.push(`peer ${p.key} ${i}`)
    },
    startServer: (i) => {
      inflight.push({ piece: i, source: 'server', asked: now })
      started.push(`server ${i}`)
    },
  })
  return { sched, started, inflight }
}

describe('piece scheduler', () => {
  it('scheduler — a piece waiting at a server is asked of a client peer as soon as one holds it, and never of the servers twice', () => {
    const a = peer('a', [])
    const { sched, started } = harness(2, [a])
    // Alone in its stripe, the client asks the servers for both pieces (its two server slots).
    expect(sched.plan()).toBe(2)
    expect(started).toEqual(expect.arrayContaining(['server 0', 'server 1']))
    expect(started).toHaveLength(2)
    // Nothing changed: nothing more is asked, of anyone.
    started.length = 0
    expect(sched.plan()).toBe(0)
    expect(started).toEqual([])
    // Peer a announces piece 1: it is asked at once, beside the server's request still queued.
    a.holds.add(1)
    sched.plan()
    expect(started).toEqual(['peer a 1'])
    // The server's seed on the swarm holds every piece: it is a server, so it does not overtake.
    started.length = 0
    const { sched: s2, started: st2 } = harness(1, [peer('seed', [0], true)])
    s2.plan()
    expect(st2).toEqual(['server 0'])
    s2.plan()
    expect(st2).toEqual(['server 0'])
  })
})
