import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, SimulatedClock, waitFor } from 'xstate'
import {
  trackerSessionMachine,
  type AnnounceInput,
  type AnnounceOutput,
  type TrackerSessionEmitted,
  type TrackerStatus,
} from '../../machines/tracker-session.machine.ts'

/** Doors whose behaviour the test switches; every call is recorded. */
function harness(doors: number, up: boolean[], opts: { intervalMs?: number; retryMs?: number; maxFailedRounds?: number } = {}) {
  const calls: AnnounceInput[] = []
  const announce = fromPromise<AnnounceOutput, AnnounceInput>(async ({ input }) => {
    calls.push(input)
    if (!up[input.door]) throw new Error(`door ${input.door} down`)
    return { peers: [{ ip: '127.0.0.1', port: 6000 + input.door, rev: input.rev }], intervalMs: 60_000 }
  })
  const clock = new SimulatedClock()
  const actor = createActor(trackerSessionMachine.provide({ actors: { announce } }), {
    clock,
    input: { doors, rev: 3, intervalMs: opts.intervalMs ?? 10_000, retryMs: opts.retryMs ?? 1_000, maxFailedRounds: opts.maxFailedRounds ?? 2 },
  })
  const statuses: TrackerStatus[] = []
  const peers: Extract<TrackerSessionEmitted, { type: 'peers' }>[] = []
  actor.on('status', (e) => statuses.push(e.status))
  actor.on('peers', (e) => peers.push(e))
  const settled = () => waitFor(actor, (s) => !s.matches({ active: 'announcing' }) && s.children && Object.keys(s.children).length === 0)
  return { actor, clock, calls, statuses, peers, settled }
}

describe('tracker-session statechart', () => {
  it('tracker-session — the first door answers: ok, peers emitted, next round after the interval', async () => {
    const h = harness(3, [true, true, true])
    h.actor.start()
    await h.settled()
    expect(h.actor.getSnapshot().value).toEqual({ active: 'ok' })
    expect(h.statuses).toEqual(['ok'])
    expect(h.peers).toEqual([{ type: 'peers', door: 0, rev: 3, peers: [{ ip: '127.0.0.1', port: 6000, rev: 3 }] }])
    expect(h.calls).toEqual([{ door: 0, rev: 3, event: 'started' }])
    h.clock.increment(9_999)
    expect(h.calls).toHaveLength(1)
    h.clock.increment(1)
    await h.settled()
    expect(h.calls[1]).toEqual({ door: 0, rev: 3, event: 'update' })
    expect(h.statuses).toEqual(['ok']) // no repeated status event
  })

  it('tracker-session — failover: the first door fails, the second answers: degraded', async () => {
    const h = harness(3, [false, true, true])
    h.actor.start()
    await h.settled()
    expect(h.actor.getSnapshot().value).toEqual({ active: 'degraded' })
    expect(h.calls.map((c) => c.door)).toEqual([0, 1])
    expect(h.peers[0]?.door).toBe(1)
  })

  it('tracker-session — every door fails before any answer: down at once, retried with backoff', async () => {
    const up = [false, false]
    const h = harness(2, up, { intervalMs: 10_000, retryMs: 1_000 })
    h.actor.start()
    await h.settled()
    expect(h.statuses).toEqual(['down'])
    expect(h.calls).toHaveLength(2)
    h.clock.increment(1_000) // first retry after retryMs
    await h.settled()
    expect(h.calls).toHaveLength(4)
    h.clock.increment(1_999) // then 2 × retryMs
    await h.settled()
    expect(h.calls).toHaveLength(4)
    up[0] = true
    h.clock.increment(1)
    await h.settled()
    expect(h.statuses).toEqual(['down', 'ok'])
  })

  it('tracker-session — after success, one failed round is degraded and maxFailedRounds rounds are down', async () => {
    const up = [true]
    const h = harness(1, up, { intervalMs: 5_000, retryMs: 500, maxFailedRounds: 2 })
    h.actor.start()
    await h.settled()
    up[0] = false
    h.clock.increment(5_000)
    await h.settled()
    expect(h.statuses).toEqual(['ok', 'degraded'])
    h.clock.increment(500)
    await h.settled()
    expect(h.statuses).toEqual(['ok', 'degraded', 'down'])
  })

  it("tracker-session — the tracker's shorter interval wins over ours", async () => {
    const h = harness(1, [true], { intervalMs: 120_000 })
    h.actor.start()
    await h.settled()
    h.clock.increment(60_000) // the stub tracker says 60 s
    await h.settled()
    expect(h.calls).toHaveLength(2)
  })

  it('tracker-session — rev.changed announces the new revision at once as completed', async () => {
    const h = harness(2, [true, true])
    h.actor.start()
    await h.settled()
    h.actor.send({ type: 'rev.changed', rev: 4 })
    await h.settled()
    expect(h.calls[1]).toEqual({ door: 0, rev: 4, event: 'completed' })
    expect(h.peers[1]?.rev).toBe(4)
  })

  it('tracker-session — stop withdraws on the door that last answered, then ends', async () => {
    const h = harness(3, [false, false, true])
    h.actor.start()
    await h.settled()
    h.actor.send({ type: 'stop' })
    await waitFor(h.actor, (s) => s.status === 'done')
    expect(h.calls.at(-1)).toEqual({ door: 2, rev: 3, event: 'stopped' })
  })

  it('tracker-session — stop before any announce succeeded ends without withdrawing', async () => {
    const h = harness(1, [false])
    h.actor.start()
    await h.settled()
    h.actor.send({ type: 'stop' })
    await waitFor(h.actor, (s) => s.status === 'done')
    expect(h.calls.every((c) => c.event !== 'stopped')).toBe(true)
  })
})
