// The swarm simulator (issue 14 item 3, bench/simulate/): it must run the daemon's own scheduler
// modules, not a copy that can drift, and a small seeded run must keep the invariants a real
// swarm keeps (everyone who stays finishes, no bad piece installed, physics respected).
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import * as scheduler from '../../actors/share-daemon/piece-scheduler.ts'
import { DEFAULT_MAX_CONNECTIONS } from '../../infra/swarm/transport.ts'
import { EventHeap } from '../../bench/simulate/heap.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import { agedRank, RANKED_WAIT_MAX_MS } from '../../infra/swarm/token-bucket.ts'
import { SAME_SITE_SHARE as SIM_SAME_SITE_SHARE, SIM_DEFAULTS, simulate } from '../../bench/simulate/swarm-sim.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const source = (path: string): Promise<string> => readFile(resolve(ROOT, path), 'utf8')

afterEach(() => {
  vi.restoreAllMocks()
})

describe('swarm simulator', () => {
  it('simulator — imports the daemon\'s scheduler module, which the daemon runs too, and calls its plan, striping and timing code', async () => {
    // The import graph: the simulator and the daemon's download both take the decisions from piece-scheduler.ts.
    const sim = await source('bench/simulate/swarm-sim.ts')
    const daemon = await source('actors/share-daemon/multi-source.ts')
    expect(sim).toMatch(/from '\.\.\/\.\.\/actors\/share-daemon\/piece-scheduler\.ts'/)
    expect(daemon).toMatch(/from '\.\/piece-scheduler\.ts'/)
    expect(daemon).toMatch(/new PieceScheduler</)
    // No copy of the rules in the simulator: the names of the decisions appear only as imports and calls.
    expect(sim).not.toMatch(/function (stripeOwner|stripeRank|swarmKeysOf|failureAction)\b/)
    expect(sim).not.toMatch(/class (ServerSlots|PieceTimes|PieceScheduler)\b/)
    expect(sim).not.toMatch(/PEER_SLOTS\s*=|PATIENCE_MS\s*=|BUSY_BACKOFF_MS\s*=/)
    // The modelled uploaders take their turns by the daemon's own rule (TokenBucket's lowestRank).
    expect(sim).toMatch(/import \{ agedRank, lowestRank \} from '\.\.\/\.\.\/infra\/swarm\/token-bucket\.ts'/)
    expect(sim).not.toMatch(/function (lowestRank|agedRank)\b/)
    // The simulator's connection limit is the transport's.
    expect(SIM_DEFAULTS.maxConnections).toBe(DEFAULT_MAX_CONNECTIONS)

    // And at run time, through the module's own exports: the production code ran.
    const plan = vi.spyOn(scheduler.PieceScheduler.prototype, 'plan')
    const wake = vi.spyOn(scheduler.PieceScheduler.prototype, 'wakeAfterMs')
    const served = vi.spyOn(scheduler.ServerSlots.prototype, 'served')
    const late = vi.spyOn(scheduler.PieceTimes.prototype, 'lateAfterMs')
    const rank = vi.spyOn(scheduler.PieceScheduler.prototype, 'rankOf')
    const r = simulate({ n: 12, seed: 3, churn: 0, bad: 0, nat: 0 })
    expect(r.finished).toBe(12)
    expect(plan).toHaveBeenCalled()
    expect(plan.mock.calls.length).toBe(r.plans)
    expect(wake).toHaveBeenCalled()
    expect(served).toHaveBeenCalled()
    expect(late).toHaveBeenCalled()
    // Striping: the pieces that went to the servers were ranked among the client's peers.
    expect(r.serverRequests.ownStripe + r.serverRequests.otherStripes).toBeGreaterThan(0)
    expect(rank).toHaveBeenCalled()
  })

  it('simulator — a seeded N = 20 run with churn, NAT and a bad peer: everyone who stays finishes, no bad piece accepted, origin ≥ F, no faster than the bound; the same seed gives the same run', () => {
    const opts = { n: 20, seed: 7, churn: 0.1, nat: 0.2, bad: 0.05 }
    const r = simulate(opts)
    expect(r.truncated).toBe(false)
    expect(r.badClients).toBe(1)
    expect(r.departed).toBe(2)
    expect(r.lateJoiners).toBe(2)
    expect(r.finishers).toBe(20 - 1 - 2)
    expect(r.finished).toBe(r.finishers)
    // The bad peer was asked, caught by the hash check and banned; nothing it sent was installed.
    expect(r.badPiecesReceived).toBeGreaterThan(0)
    expect(r.bannedLinks).toBe(r.badPiecesReceived)
    expect(r.badPiecesAccepted).toBe(0)
    // Every byte started at the servers; the clients kept at most what the servers sent.
    expect(r.originBytes).toBeGreaterThanOrEqual(SIM_DEFAULTS.fileBytes)
    expect(r.serverBytes).toBeLessThanOrEqual(r.originBytes)
    // Each finisher got F, from servers and peers together.
    expect(r.serverBytes + r.peerBytes).toBeGreaterThanOrEqual(r.finishers * SIM_DEFAULTS.fileBytes)
    // Physics: no client faster than its download link allows, the whole swarm no faster than the bound.
    expect(r.finishMs[0]!).toBeGreaterThanOrEqual((1000 * SIM_DEFAULTS.fileBytes) / Math.max(...SIM_DEFAULTS.clientDown))
    expect(r.allDoneMs).toBeGreaterThanOrEqual(r.boundMs)
    expect(r.p50Ms).toBeLessThanOrEqual(r.p99Ms)
    expect(r.p99Ms).toBeLessThanOrEqual(r.maxMs)

    // A small swarm: 1 MiB pieces, nothing withdrawn from the servers, no request starved past its timeout.
    expect(r.pieceSize).toBe(PIECE_SIZE)
    expect(r.serverRequests.withdrawn).toBe(0)
    expect(r.timeouts).toBe(0)

    const again = simulate(opts)
    const { wallMs: _w1, eventsPerSecond: _e1, ...a } = r
    const { wallMs: _w2, eventsPerSecond: _e2, ...b } = again
    expect(b).toEqual(a)
  })

  it('simulator — locality (issue 14 item 4): 40 clients in 4 sites; told their sites, the WAN carries a fraction of what it carries without, everyone finishes, nothing bad accepted', async () => {
    const opts = { n: 40, seed: 3, sites: 4, churn: 0, bad: 0.05 }
    const off = simulate({ ...opts, locality: false })
    const on = simulate({ ...opts, locality: true })
    const F = SIM_DEFAULTS.fileBytes
    for (const r of [off, on]) {
      expect(r.finished).toBe(r.finishers)
      expect(r.badPiecesAccepted).toBe(0)
      expect(r.sites).toBe(4)
    }
    // Without locality about 3 in 4 of the peer bytes cross a site boundary.
    expect(off.crossSiteBytes).toBeGreaterThan(0.5 * off.peerBytes)
    // With it, each piece enters each site about once (a WAN link per site), far less than without.
    expect(on.crossSiteBytes).toBeLessThan(2 * 4 * F)
    expect(on.crossSiteBytes).toBeLessThan(off.crossSiteBytes / 3)
    expect(() => simulate({ n: 10, sites: 0 })).toThrow(/sites must be an integer ≥ 1, got 0/)
    // The tracker's share of same-site peers in an answer is the one modelled.
    expect(SIM_SAME_SITE_SHARE).toBe((await import('../../infra/tracker/registry.ts')).SAME_SITE_SHARE)
  })

  it('simulator — a swarm larger than two views (N = 150): runs of LARGE_SWARM_RUN, server requests withdrawn once a peer holds the piece, the rarest piece uploaded first without starving a request past its timeout', () => {
    const r = simulate({ n: 150, seed: 5, churn: 0.1, nat: 0.2, bad: 0.02 })
    expect(r.pieceSize).toBe(scheduler.LARGE_SWARM_RUN)
    expect(r.truncated).toBe(false)
    expect(r.finished).toBe(r.finishers)
    expect(r.badPiecesReceived).toBeGreaterThan(0)
    expect(r.badPiecesAccepted).toBe(0)
    expect(r.serverRequests.withdrawn).toBeGreaterThan(0)
    expect(r.timeouts).toBe(0)
    expect(r.originBytes).toBeGreaterThanOrEqual(SIM_DEFAULTS.fileBytes)
    expect(r.allDoneMs).toBeGreaterThanOrEqual(r.boundMs)
    // The aged rank stays well inside the requester's patience.
    expect(RANKED_WAIT_MAX_MS).toBeLessThanOrEqual(scheduler.PEER_REQUEST_TIMEOUT_MS / 2)
    expect(agedRank(RANKED_WAIT_MAX_MS + 1, 7)).toBe(0)
    expect(agedRank(RANKED_WAIT_MAX_MS - 1, 7)).toBe(7)
  })

  it('simulator — bad parameters are refused with an error naming the parameter', () => {
    expect(() => simulate({ n: 1 })).toThrow(/n must be an integer ≥ 2, got 1/)
    expect(() => simulate({ n: 10, churn: 1.5 })).toThrow(/churn must be a share in \[0, 1\), got 1.5/)
    expect(() => simulate({ n: 10, serverUp: 0 })).toThrow(/serverUp must be > 0, got 0/)
  })

  it('simulator — the event heap pops in time order, equal times in the order they were pushed', () => {
    const heap = new EventHeap<{ t: number; seq: number; label: number }>()
    const times = [5, 1, 3, 3, 9, 0, 3, 7, 1, 2, 8, 3]
    times.forEach((t, label) => heap.push({ t, seq: 0, label }))
    const out: Array<{ t: number; label: number }> = []
    for (let e = heap.pop(); e; e = heap.pop()) out.push({ t: e.t, label: e.label })
    const expected = times.map((t, label) => ({ t, label })).sort((x, y) => x.t - y.t || x.label - y.label)
    expect(out).toEqual(expected)
    expect(heap.size).toBe(0)
  })
})
