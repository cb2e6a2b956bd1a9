// The inspection channel's bound (issue 12 item 3): a busy process sends at most
// INSPECT_MAX_PER_SECOND messages in any second, the newest state of every actor still arrives,
// and a long-lived actor keeps its state sequence while per-file actors flood the channel.
// Time is a manual clock: the assertions are about counts per window, not about speed.
import type { StatelyInspectionEvent, StatelySnapshotEvent } from '@statelyai/inspect'
import { assign, createActor, fromPromise, setup, toPromise } from 'xstate'
import { describe, expect, it } from 'vitest'
import { DEFINITION_EVERY_MS, INSPECT_MAX_PER_SECOND, InspectionChannel, MAX_QUEUED_PER_ACTOR, SUMMARY_EVERY_MS, WORKER_ADMIT_WINDOWS, inspectionUnder, type InspectClock } from '../../infra/inspect/nats-inspector.ts'
import type { InspectionSummary } from '../../infra/inspect/summary.ts'
import { InspectionBoard } from '../../infra/inspect/board.ts'
import { updateRunMachine, type ApplySummary, type RunPlan, type StagedSet } from '../../machines/update-run.machine.ts'

/** A clock the test moves: timers fire in order as it advances. */
class ManualClock implements InspectClock {
  private t = 0
  private timers: { at: number; fn: () => void; id: number }[] = []
  private ids = 0
  now(): number { return this.t }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.ids
    this.timers.push({ at: this.t + ms, fn, id })
    return id
  }
  clearTimeout(handle: unknown): void { this.timers = this.timers.filter((x) => x.id !== handle) }
  /** Moves time forward by `ms`, firing every timer due on the way. */
  advance(ms: number): void {
    const end = this.t + ms
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at)
      const next = this.timers[0]
      if (!next || next.at > end) break
      this.timers.shift()
      this.t = Math.max(this.t, next.at)
      next.fn()
    }
    this.t = end
  }
}

const counter = setup({ types: { context: {} as { n: number; blob: Uint8Array }, events: {} as { type: 'tick' } | { type: 'flip' } } }).createMachine({
  id: 'busy',
  context: { n: 0, blob: new Uint8Array(1 << 20) },
  initial: 'even',
  states: {
    even: { on: { tick: { actions: assign({ n: ({ context }) => context.n + 1 }) }, flip: 'odd' } },
    odd: { on: { tick: { actions: assign({ n: ({ context }) => context.n + 1 }) }, flip: 'even' } },
  },
})

/** Largest number of messages sent within any window of 1000 ms. */
function busiestSecond(times: number[]): number {
  let best = 0
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= 1000) j++
    best = Math.max(best, i - j + 1)
  }
  return best
}

/** Messages per wall-clock second (the second of the clock's time), keyed by second. */
function perWallSecond(times: number[]): Map<number, number> {
  const out = new Map<number, number>()
  for (const t of times) out.set(Math.floor(t / 1000), (out.get(Math.floor(t / 1000)) ?? 0) + 1)
  return out
}

describe('inspect — the bound on inspection messages', () => {
  it('inspect — a burst of 5 000 events from 10 actors in one second: at most 50 messages in every wall-clock second, summaries included; every actor\'s newest snapshot arrives; what was left out is counted in the summary', async () => {
    const clock = new ManualClock()
    const sent: { at: number; m: StatelyInspectionEvent }[] = []
    const summaries: { at: number; s: InspectionSummary }[] = []
    const channel = new InspectionChannel((m) => sent.push({ at: clock.now(), m }), { clock, sendSummary: (s) => summaries.push({ at: clock.now(), s }) })
    const actors = Array.from({ length: 10 }, () => createActor(counter, { inspect: channel.inspect }).start())
    // 5 000 events in the first virtual second, 5 every millisecond, each an event and a snapshot.
    for (let i = 0; i < 5000; i++) {
      actors[i % 10]!.send({ type: i % 7 === 0 ? 'flip' : 'tick' })
      if (i % 5 === 4) clock.advance(1)
    }
    clock.advance(60_000)
    await channel.close()

    const times = [...sent.map((x) => x.at), ...summaries.map((x) => x.at)].sort((a, b) => a - b)
    const seconds = perWallSecond(times)
    expect(Math.max(...seconds.values())).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
    expect(busiestSecond(times)).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
    // The publisher's own per-second count is the one seen here.
    expect(channel.stats.sent).toBe(times.length)
    expect(channel.stats.busiestSecond).toBe(Math.max(...seconds.values()))
    expect(channel.stats.seconds).toBe(Math.max(...seconds.keys()) - Math.min(...seconds.keys()) + 1)
    expect(channel.meanPerSecond).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
    for (const a of actors) {
      const mine = sent.filter((x) => x.m.sessionId === a.sessionId).map((x) => x.m)
      // Its creation before anything else of it, and its newest snapshot last.
      expect(mine[0]!.type).toBe('@xstate.actor')
      const last = mine.filter((m): m is StatelySnapshotEvent => m.type === '@xstate.snapshot').at(-1)!
      expect(last.snapshot).toMatchObject({ value: a.getSnapshot().value, context: { n: a.getSnapshot().context.n } })
    }
    // Nothing lost without a count: every inspection event taken was sent, dropped or coalesced.
    const s = channel.stats
    // Each actor: created, and its start (xstate.init) as an event and a snapshot; then 5 000 events and their snapshots.
    expect(s.taken).toBe(3 * 10 + 2 * 5000)
    expect(s.droppedEvents).toBeGreaterThan(4000)
    expect(s.taken).toBe(s.sent - s.summaries + s.droppedEvents + s.coalesced + s.droppedWithActors + s.discardedAtClose + channel.waiting)
    // A summary every SUMMARY_EVERY_MS while the burst drained, and the last one at close says it all.
    expect(summaries.length).toBeGreaterThanOrEqual(2)
    expect(summaries[0]!.at).toBe(SUMMARY_EVERY_MS)
    expect(summaries.at(-1)!.s).toMatchObject({
      type: 'upswarm.inspect.summary', budget: INSPECT_MAX_PER_SECOND, taken: s.taken, sent: s.sent, droppedEvents: s.droppedEvents, coalesced: s.coalesced,
      busiestSecond: s.busiestSecond, waiting: 0,
    })
    process.stdout.write(`inspect burst: ${JSON.stringify(summaries.at(-1)!.s)}\n`)
  })

  it('inspect — a busy process sends at most 50 inspection messages in any second, and the last state arrives', () => {
    expect(INSPECT_MAX_PER_SECOND).toBe(50)
    const clock = new ManualClock()
    const sent: { at: number; m: StatelyInspectionEvent }[] = []
    const channel = new InspectionChannel((m) => sent.push({ at: clock.now(), m }), { clock })
    const actors = Array.from({ length: 8 }, () => createActor(counter, { inspect: channel.inspect }).start())
    // 3 simulated seconds, 2 000 events per second over 8 actors.
    for (let ms = 0; ms < 3000; ms += 10) {
      for (let k = 0; k < 20; k++) actors[k % 8]!.send({ type: k % 5 === 0 ? 'flip' : 'tick' })
      clock.advance(10)
    }
    clock.advance(20_000)
    expect(busiestSecond(sent.map((s) => s.at))).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
    expect(channel.stats.droppedEvents).toBeGreaterThan(0)
    expect(channel.stats.coalesced).toBeGreaterThan(0)
    expect(channel.waiting).toBe(0)
    // Every actor's newest state and count reached the other side, its 1 MiB blob as a size only.
    for (const a of actors) {
      const last = sent.filter((s): s is { at: number; m: StatelySnapshotEvent } => s.m.type === '@xstate.snapshot' && s.m.sessionId === a.sessionId).at(-1)!.m
      const snap = a.getSnapshot()
      expect(last.snapshot).toMatchObject({ value: snap.value, context: { n: snap.context.n, blob: '[1048576 bytes]' } })
    }
  })

  it('inspect — an update run keeps every state in order while 300 per-file actors flood the channel', async () => {
    const clock = new ManualClock()
    const sent: StatelyInspectionEvent[] = []
    const channel = new InspectionChannel((m) => sent.push(m), { clock })
    const files = setup({}).createMachine({ id: 'file', initial: 'stat', states: { stat: { on: { next: 'fetch' } }, fetch: { on: { next: 'done' } }, done: { type: 'final' } } })
    const machine = updateRunMachine.provide({
      actors: {
        check: fromPromise(async () => ({ from: 1, to: 2 })),
        plan: fromPromise(async (): Promise<RunPlan> => ({ tasks: [], conflicts: [] })),
        download: fromPromise(async (): Promise<StagedSet> => {
          for (let i = 0; i < 300; i++) {
            const f = createActor(files, { inspect: channel.inspect }).start()
            f.send({ type: 'next' })
            f.send({ type: 'next' })
            clock.advance(1)
          }
          return { files: [], failed: [], bytesFromServers: 0, bytesFromPeers: 0 }
        }),
        discard: fromPromise(async () => {}),
        apply: fromPromise(async (): Promise<ApplySummary> => ({ updated: 0, checkedOut: 0, removed: 0, blocked: [] })),
        undo: fromPromise(async () => {}),
        retain: fromPromise(async (): Promise<string[]> => []),
      },
    })
    const run = createActor(machine, { input: { kind: 'update', onConflict: 'alert' }, inspect: channel.inspect })
    run.start()
    run.send({ type: 'run.start' })
    await toPromise(run)
    clock.advance(60_000)
    const states = sent.filter((m): m is StatelySnapshotEvent => m.type === '@xstate.snapshot' && m.sessionId === run.sessionId)
      .map((m) => (m.snapshot as { value?: unknown }).value)
    expect(states.filter((v, i) => v !== states[i - 1])).toEqual(['idle', 'checking', 'planning', 'downloading', 'applying', 'retaining', 'done'])
    expect(channel.stats.droppedActors).toBeGreaterThan(0)
    expect(MAX_QUEUED_PER_ACTOR).toBeGreaterThanOrEqual(Object.keys(updateRunMachine.root.states).length)
  })

  it('inspect — before a connection exists nothing is sent; what queued goes out once it resumes, within the bound', () => {
    const clock = new ManualClock()
    const sent: StatelyInspectionEvent[] = []
    const channel = new InspectionChannel(undefined, { clock })
    const a = createActor(counter, { inspect: channel.inspect }).start()
    for (let i = 0; i < 100; i++) a.send({ type: 'flip' })
    clock.advance(5000)
    expect(channel.waiting).toBe(1 + MAX_QUEUED_PER_ACTOR)
    channel.resume((m) => sent.push(m))
    expect(sent.length).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
    clock.advance(5000)
    expect(sent[0]!.type).toBe('@xstate.actor')
    expect(sent.length).toBeLessThanOrEqual(1 + MAX_QUEUED_PER_ACTOR)
    const last = sent.at(-1) as StatelySnapshotEvent
    expect((last.snapshot as { value?: unknown }).value).toBe(a.getSnapshot().value)
  })

  it('inspect — a machine\'s definition goes with the first actor of it and again once a minute, not with each per-file actor; the board fills it in for the others, also for one seen before it', () => {
    const clock = new ManualClock()
    const sent: StatelyInspectionEvent[] = []
    const channel = new InspectionChannel((m) => sent.push(m), { clock })
    const actors = Array.from({ length: 5 }, () => createActor(counter, { inspect: channel.inspect }).start())
    clock.advance(1000)
    const announced = () => sent.filter((m) => m.type === '@xstate.actor')
    expect(announced().map((m) => m.definition !== undefined)).toEqual([true, false, false, false, false])
    expect(JSON.parse(announced()[0]!.definition!)).toMatchObject({ id: 'busy', initial: 'even' })
    clock.advance(DEFINITION_EVERY_MS)
    createActor(counter, { inspect: channel.inspect }).start()
    clock.advance(1000)
    expect(announced().map((m) => m.definition !== undefined)).toEqual([true, false, false, false, false, true])
    // The board: every actor of the machine gets the definition, whichever message carried it,
    // also one whose announcement arrived before any definition did.
    const board = new InspectionBoard()
    const [first, ...rest] = announced()
    for (const m of rest.slice(0, 2)) board.apply('daemon.c1', m)
    board.apply('daemon.c1', first!)
    for (const m of rest.slice(2)) board.apply('daemon.c1', m)
    expect(board.list().map((a) => a.definition)).toEqual(actors.concat([]).map(() => first!.definition).concat([first!.definition]))
    // Another process's machine of the same name is not filled from this one's.
    expect(board.apply('daemon.c2', { ...rest[0]!, sessionId: 'other:1' }).definition).toBeUndefined()
  })

  it('inspect — an actor run for another as a root of its own is shown as that actor\'s child, and so are its own children', () => {
    const clock = new ManualClock()
    const sent: StatelyInspectionEvent[] = []
    const channel = new InspectionChannel((m) => sent.push(m), { clock })
    const parent = createActor(counter, { inspect: channel.inspect }).start()
    const child = setup({ actors: { inner: fromPromise(async () => 1) } }).createMachine({ id: 'worker', invoke: { src: 'inner' } })
    const worker = createActor(child, inspectionUnder(parent)).start()
    clock.advance(1000)
    const actors = sent.filter((m) => m.type === '@xstate.actor')
    expect(actors.find((m) => m.sessionId === parent.sessionId)).toMatchObject({ rootId: parent.sessionId, parentId: undefined })
    expect(actors.find((m) => m.sessionId === worker.sessionId)).toMatchObject({ name: 'worker', rootId: parent.sessionId, parentId: parent.sessionId })
    const inner = actors.find((m) => m.sessionId !== worker.sessionId && m.sessionId !== parent.sessionId)!
    expect(inner).toMatchObject({ rootId: parent.sessionId, parentId: worker.sessionId })
  })

  it('inspect — per-file actors made while the budget is spent run uninspected (counted); once the window has room again, new ones are inspected', () => {
    const clock = new ManualClock()
    const sent: StatelyInspectionEvent[] = []
    const channel = new InspectionChannel((m) => sent.push(m), { clock })
    const parent = createActor(counter, { inspect: channel.inspect }).start()
    const file = setup({}).createMachine({ id: 'file', initial: 'a', states: { a: { on: { next: 'b' } }, b: {} } })
    const taken = channel.stats.taken
    // 200 made in one instant: as many are inspected as WORKER_ADMIT_WINDOWS seconds of budget hold, the rest not at all.
    const burst = Array.from({ length: 200 }, () => createActor(file, inspectionUnder(parent)).start())
    for (const f of burst) f.send({ type: 'next' })
    const inspected = 200 - channel.stats.uninspected
    expect(inspected).toBeGreaterThan(0)
    expect(inspected).toBeLessThanOrEqual(WORKER_ADMIT_WINDOWS * INSPECT_MAX_PER_SECOND)
    const takenByBurst = channel.stats.taken - taken
    clock.advance(10_000)
    // Once the window has room again, a new one is inspected: what it alone takes…
    const before = channel.stats.taken
    const late = createActor(file, inspectionUnder(parent)).start()
    late.send({ type: 'next' })
    const perWorker = channel.stats.taken - before
    expect(perWorker).toBeGreaterThan(0)
    // …times the inspected ones is all the burst took: the others cost the channel nothing.
    expect(takenByBurst).toBe(inspected * perWorker)
    clock.advance(1000)
    expect(sent.some((m) => m.type === '@xstate.actor' && m.sessionId === late.sessionId)).toBe(true)
    expect(sent.filter((m) => m.type === '@xstate.actor' && burst.some((f) => f.sessionId === m.sessionId))).toHaveLength(inspected)
    expect(channel.stats.uninspected).toBe(200 - inspected)
  })
})
