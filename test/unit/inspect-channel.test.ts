// The inspection channel's bound (issue 12 item 3): a busy process sends at most
// INSPECT_MAX_PER_SECOND messages in any second, the newest state of every actor still arrives,
// and a long-lived actor keeps its state sequence while per-file actors flood the channel.
// Time is a manual clock: the assertions are about counts per window, not about speed.
import type { StatelyInspectionEvent, StatelySnapshotEvent } from '@statelyai/inspect'
import { assign, createActor, fromPromise, setup, toPromise } from 'xstate'
import { describe, expect, it } from 'vitest'
import { INSPECT_MAX_PER_SECOND, InspectionChannel, MAX_QUEUED_PER_ACTOR, type InspectClock } from '../../infra/inspect/nats-inspector.ts'
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

describe('inspect — the bound on inspection messages', () => {
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
})
