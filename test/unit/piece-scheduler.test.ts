// The piece scheduler's rule for server ranges (issue 14): a piece asked only of the servers stays
// open to client peers — once a ready peer holds it, the peer is asked too, and whichever copy is
// verified first withdraws the other (multi-source.ts accept) — while the servers are never asked
// twice for it.
import { describe, expect, it } from 'vitest'
import { PATIENCE_MS, PieceScheduler, RARE_SHARE, SEED_FIRST, ServerSlots, SERVER_SLOTS, SIZED_TURNS, SIZED_VIEWS, SLOW_TURNS, stripeRank, stripeScore, type SchedPeer, type SchedRequest } from '../../actors/share-daemon/piece-scheduler.ts'

interface Peer extends SchedPeer { holds: Set<number> }
const peer = (key: string, holds: number[], server = false, site?: string): Peer => ({ key, server, inflight: 0, busyUntil: 0, lastPieceAt: 0, holds: new Set(holds), site })

function harness(count: number, peers: Peer[], sites?: { self: string; selfKey?: string; lateAfterMs?: number; siteSize?: number }, swarmSize?: number) {
  const inflight: SchedRequest<Peer>[] = []
  const started: string[] = []
  const withdrawn: number[] = []
  const clock = { now: 10_000 }
  const selfKey = sites?.selfKey ?? 'self'
  const keys = [selfKey, ...peers.filter((p) => !p.server).map((p) => p.key)].sort()
  const siteKeys = [selfKey, ...peers.filter((p) => !p.server && p.site === sites?.self).map((p) => p.key)].sort()
  const sched = new PieceScheduler<Peer>({
    sha256: 'ab'.repeat(32), count, selfKey, swarmKeys: sites || swarmSize ? keys : [selfKey], startedAt: 0, slots: new ServerSlots(SERVER_SLOTS),
    ...(swarmSize ? { swarmSize: () => swarmSize } : {}),
    ...(sites ? { selfSite: sites.self, siteKeys, ...(sites.siteSize ? { siteSize: () => sites.siteSize } : {}) } : {}),
  }, {
    now: () => clock.now,
    holders: (i) => peers.filter((p) => p.holds.has(i)),
    peer: (key) => peers.find((p) => p.key === key),
    closed: () => false,
    inflight: () => inflight,
    lateAfterMs: () => sites?.lateAfterMs ?? 60_000,
    serverAvailable: () => true,
    startPeer: (i, p) => {
      p.inflight++
      inflight.push({ piece: i, source: p, asked: clock.now })
      started.push(`peer ${p.key} ${i}`)
    },
    startServer: (i) => {
      inflight.push({ piece: i, source: 'server', asked: clock.now })
      started.push(`server ${i}`)
    },
    withdraw: (f) => {
      inflight.splice(inflight.indexOf(f), 1)
      withdrawn.push(f.piece)
    },
  })
  return { sched, started, inflight, clock, siteKeys, withdrawn }
}

describe('piece scheduler', () => {
  it('scheduler — runs of a format-2 file take the stripe of the 1 MiB piece their first byte is in', () => {
    const keys = ['a', 'b', 'c', 'self']
    const sha = 'ab'.repeat(32)
    // Six runs starting at 0, 0.9, 1.8, 2.7, 3.6, 4.5 MiB: stripes 0, 0, 1, 2, 3, 4.
    const stripeOf = (i: number): number => Math.floor((i * 0.9 * 1024 * 1024) / (1024 * 1024))
    const sched = new PieceScheduler<Peer>({ sha256: sha, count: 6, selfKey: 'self', swarmKeys: keys, startedAt: 0, slots: new ServerSlots(SERVER_SLOTS), stripeOf }, {
      now: () => 0, holders: () => [], peer: () => undefined, closed: () => false, inflight: () => [], lateAfterMs: () => 60_000,
      serverAvailable: () => true, startPeer: () => {}, startServer: () => {},
    })
    for (let i = 0; i < 6; i++) expect(sched.rankOf(i), `run ${i}`).toBe(stripeRank(sha, stripeOf(i), keys, 'self'))
    expect(sched.rankOf(0)).toBe(sched.rankOf(1))
  })

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

  it('locality (issue 14 item 4) — a piece a peer of the same site holds is taken only from the site, even with the other site\'s peers idle', () => {
    const near = peer('near', [0], false, 'east')
    const far = peer('far', [0, 1], false, 'west')
    near.inflight = 4 // its request slots full: the piece waits for it rather than cross the WAN
    const { sched, started } = harness(1, [near, far], { self: 'east' })
    sched.plan()
    expect(started).toEqual([])
    near.inflight = 0
    sched.plan()
    expect(started).toEqual(['peer near 0'])
  })

  it('locality — a piece held only in another site crosses into the site through one client: its stripe owner among the site\'s peers at once, a backup once the owner\'s copy is late', () => {
    // Two clients of site east (self and mate) and one of west holding both pieces; which of self
    // and mate owns each piece follows the rendezvous order among east's keys.
    const sha = 'ab'.repeat(32)
    const east = ['mate', 'self'].sort()
    const owned = [0, 1, 2, 3].filter((i) => stripeRank(sha, i, east, 'self') === 0)
    const backed = [0, 1, 2, 3].filter((i) => stripeRank(sha, i, east, 'self') === 1)
    expect(owned.length).toBeGreaterThan(0)
    expect(backed.length).toBeGreaterThan(0)
    const far = peer('far', [0, 1, 2, 3], false, 'west')
    const mate = peer('mate', [], false, 'east')
    const late = 3 * PATIENCE_MS
    const { sched, started, clock } = harness(4, [far, mate], { self: 'east', lateAfterMs: late })
    sched.plan()
    expect(started.sort()).toEqual(owned.map((i) => `peer far ${i}`).sort())
    // Mate's pieces: nothing from the WAN until a copy of mate's would be late, then self takes them.
    started.length = 0
    clock.now += late - 1
    sched.plan()
    expect(started).toEqual([])
    clock.now += 2
    sched.plan()
    expect(started.sort()).toEqual(backed.map((i) => `peer far ${i}`).sort())
  })

  it('locality — once the piece is in the site it comes from there; without a site of its own a client treats every peer alike', () => {
    const far = peer('far', [0], false, 'west')
    const mate = peer('mate', [0], false, 'east')
    far.inflight = 0
    const { sched, started } = harness(1, [far, mate], { self: 'east', selfKey: 'zzz' })
    sched.plan()
    expect(started).toEqual(['peer mate 0'])
    // No site: the least loaded holder, whichever site it tells.
    const f2 = peer('far', [0], false, 'west')
    const m2 = peer('mate', [0], false, 'east')
    m2.inflight = 2
    const plain = harness(1, [f2, m2])
    plain.sched.plan()
    expect(plain.started).toEqual(['peer far 0'])
  })

  it('locality — in a site larger than its view (the tracker\'s count), a client imports the pieces its own score puts in the top 1/size, one more share per turn waited', () => {
    const count = 2000
    const size = 100
    const far = Array.from({ length: 40 }, (_, k) => peer(`far${k}`, Array.from({ length: count }, (_, i) => i), false, 'west'))
    const { sched, started, clock } = harness(count, far, { self: 'east', siteSize: size })
    const sha = 'ab'.repeat(32)
    const q = (i: number): number => stripeScore('self', sha, i) / 2 ** 48
    const top = (share: number): number[] => Array.from({ length: count }, (_, i) => i).filter((i) => q(i) >= 1 - share)
    const pieces = (): number[] => started.map((x) => Number(x.split(' ')[2])).sort((a, b) => a - b)
    sched.plan()
    expect(pieces()).toEqual(top(1 / size))
    expect(pieces().length).toBeGreaterThan(5)
    expect(pieces().length).toBeLessThan(40)
    // One turn (SIZED_TURNS patiences) later the top 2/size.
    clock.now += SIZED_TURNS * PATIENCE_MS
    sched.plan()
    expect(pieces()).toEqual(top(2 / size))
  })

  it('scheduler — in a swarm far larger than the view, the servers are asked for a piece by the clients whose score is in the top SEED_FIRST/size, one more per SLOW_TURNS turns, then doubling once few pieces are out of view', () => {
    const count = 2000
    const size = 1000
    const sha = 'ab'.repeat(32)
    const q = (i: number): number => stripeScore('self', sha, i) / 2 ** 48
    const top = (share: number, among: number[]): number[] => among.filter((i) => q(i) >= 1 - share)
    const all = Array.from({ length: count }, (_, i) => i)
    const serverPieces = (started: string[]): number[] => started.filter((x) => x.startsWith('server ')).map((x) => Number(x.split(' ')[1])).sort((a, b) => a - b)

    // Ten client peers in view, holding nothing: every piece is out of view, the swarm is being seeded.
    const view = Array.from({ length: 10 }, (_, k) => peer(`p${k}`, []))
    const seeding = harness(count, view, undefined, size)
    seeding.sched.plan()
    const first = serverPieces(seeding.started)
    expect(first).toEqual(top(SEED_FIRST / size, all))
    // Striping over the view would have asked for about 1/11 of them.
    expect(first.length).toBeLessThan(count / 11 / 4)
    expect(first.length).toBeGreaterThan(0)
    const turn = seeding.sched.seedingTurnMs(size)
    seeding.clock.now += (SLOW_TURNS - 1) * turn
    seeding.sched.plan()
    expect(serverPieces(seeding.started)).toEqual(first)
    seeding.clock.now += turn + 1
    seeding.sched.plan()
    expect(serverPieces(seeding.started)).toEqual(top((SEED_FIRST + 1) / size, all))

    // Most pieces held in view: the few out of it are rare in the whole swarm, and their seeders double each turn.
    const rare = all.filter((i) => i % 50 === 0)
    expect(rare.length / count).toBeLessThanOrEqual(RARE_SHARE)
    const holders = Array.from({ length: 10 }, (_, k) => peer(`h${k}`, all.filter((i) => i % 50 !== 0)))
    const late = harness(count, holders, undefined, size)
    late.sched.plan()
    expect(serverPieces(late.started)).toEqual(top(SEED_FIRST / size, rare))
    late.clock.now += 2 * late.sched.seedingTurnMs(size) + 1
    late.sched.plan()
    expect(serverPieces(late.started)).toEqual(top((4 * SEED_FIRST) / size, rare))

    // A swarm no larger than SIZED_VIEWS views: striping over the view, as before — every piece of
    // this client's own stripe is asked for at once (and others whose patience has passed).
    const small = harness(count, view, undefined, SIZED_VIEWS * 11)
    small.sched.plan()
    const stripe = all.filter((i) => stripeRank(sha, i, ['self', ...view.map((p) => p.key)].sort(), 'self') === 0)
    expect(serverPieces(small.started)).toEqual(expect.arrayContaining(stripe))
    expect(stripe.length).toBeGreaterThan(10 * first.length)
  })

  it('scheduler — in a swarm far larger than the view, a piece asked of the servers is withdrawn from them once a client peer holds it, and waits for that peer\'s slot', () => {
    const size = 1000
    const busy = peer('busy', [])
    const view = [busy, ...Array.from({ length: 9 }, (_, k) => peer(`p${k}`, []))]
    const h = harness(2000, view, undefined, size)
    h.sched.plan()
    const asked = h.started.filter((x) => x.startsWith('server ')).map((x) => Number(x.split(' ')[1]))
    expect(asked.length).toBeGreaterThan(0)
    const piece = asked[0]!
    // A client peer announces it while its request slots are all taken: the server request is
    // withdrawn at once, and the piece is not asked again until the peer can take it.
    busy.holds.add(piece)
    busy.inflight = 4
    h.started.length = 0
    h.sched.plan()
    expect(h.withdrawn).toContain(piece)
    expect(h.inflight.some((f) => f.piece === piece)).toBe(false)
    expect(h.started).not.toContain(`server ${piece}`)
    busy.inflight = 0
    h.sched.plan()
    expect(h.started).toContain(`peer busy ${piece}`)

    // In a swarm of the view's size (striping over the view), the server request stays beside the peer's.
    const b2 = peer('b2', [])
    const small = harness(2, [b2])
    small.sched.plan()
    b2.holds.add(0)
    b2.holds.add(1)
    small.sched.plan()
    expect(small.withdrawn).toEqual([])
  })

  it('scheduler — in a site larger than two views, a piece asked of another site is withdrawn once a peer of this site holds it: at once if that peer is busy, as its copy is asked if it is free; in a small site the far request stands alone', () => {
    const run = (siteSize: number | undefined, nearBusy: boolean) => {
      const near = peer('near', [], false, 'A')
      const far = peer('far', [0], false, 'B')
      const h = harness(1, [near, far], { self: 'A', ...(siteSize ? { siteSize } : {}) })
      // This client brought piece 0 in from site B (importsNow); then a peer of its own site announces it.
      far.inflight = 1
      h.inflight.push({ piece: 0, source: far, asked: h.clock.now })
      near.holds.add(0)
      near.inflight = nearBusy ? 4 : 0
      h.sched.plan()
      return h
    }
    const waiting = run(500, true)
    expect(waiting.withdrawn).toEqual([0])
    expect(waiting.started).toEqual([])
    const overtaken = run(500, false)
    expect(overtaken.started).toEqual(['peer near 0'])
    expect(overtaken.withdrawn).toEqual([0])
    expect(overtaken.inflight.map((f) => f.source)).toEqual([expect.objectContaining({ key: 'near' })])
    // A site within two views: the far request is being sent at once; it is neither withdrawn nor doubled.
    for (const small of [run(undefined, false), run(4, false)]) {
      expect(small.withdrawn).toEqual([])
      expect(small.started).toEqual([])
    }
  })
})
