// Issue 11 item 2: the daemon's updates as one statechart — automatic runs wait for a holder,
// shortfalls and failures back off on the clock, a rolled-back copy is held (said once), and an
// explicit request runs whatever state the automatic side is in, one run at a time.
// The run itself is a child actor (`updateRun`, issue 12 item 1): opened, run, closed.
import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor, fromPromise, setup, waitFor, type AnyActorRef } from 'xstate'
import { stubRuns } from '../helpers/run-stubs.ts'
import { autoUpdateMachine, type AutoUpdateInput, type AutoUpdateRequest, type OpenedRun, type RunEnd, type RunOutcome } from '../../machines/auto-update.machine.ts'

function harness(input: Partial<AutoUpdateInput>, run: (request: AutoUpdateRequest, n: number) => Promise<RunOutcome>) {
  const runs: AutoUpdateRequest[] = []
  const clock = new SimulatedClock()
  const machine = autoUpdateMachine.provide({
    actors: stubRuns(async (request) => { runs.push(request); return run(request, runs.length) }),
  })
  const actor = createActor(machine, { clock, input: { auto: true, needsHolders: true, current: 1, hold: undefined, ...input } })
  const emitted: string[] = []
  actor.on('*', (e) => emitted.push(e.type === 'update.held' ? `held r${e.rev} newest r${e.newest}` : e.type === 'run.done' ? `done ${e.id} r${e.outcome.to}` : e.type === 'run.reverted' ? `reverted ${e.id} r${e.rev} → r${e.to}` : `failed ${e.id}`))
  actor.start()
  return { actor, runs, clock, emitted }
}

describe('auto-update machine', () => {
  it('daemon — with NATS an announced release waits for a holder, then runs once', async () => {
    const { actor, runs, emitted } = harness({}, async () => ({ to: 2, hold: undefined }))
    actor.send({ type: 'release.announced', rev: 2 })
    expect(actor.getSnapshot().value).toBe('idle')
    expect(runs).toEqual([])
    actor.send({ type: 'holders.changed', newest: 2 })
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 2)
    expect(runs).toEqual([{}])
    expect(emitted).toEqual(['done 0 r2'])
  })

  it('daemon — without NATS (peers and feed only) it runs at once; without --auto never by itself', async () => {
    const offline = harness({ needsHolders: false }, async () => ({ to: 3, hold: undefined }))
    offline.actor.send({ type: 'release.announced', rev: 3 })
    await waitFor(offline.actor, (s) => s.context.current === 3)
    const manual = harness({ auto: false, needsHolders: false }, async () => ({ to: 3, hold: undefined }))
    manual.actor.send({ type: 'release.announced', rev: 3 })
    expect(manual.actor.getSnapshot().value).toBe('idle')
    expect(manual.runs).toEqual([])
  })

  it('daemon — a run that falls short of the announced revision backs off on the clock before the next try, and failures grow the delay', async () => {
    let to = 1
    const { actor, runs, clock } = harness({ needsHolders: false }, async () => ({ to, hold: undefined }))
    actor.send({ type: 'release.announced', rev: 2 })
    await waitFor(actor, (s) => s.value === 'backoff')
    expect(runs).toHaveLength(1)
    expect(actor.getSnapshot().context.failures).toBe(1)
    clock.increment(999)
    expect(actor.getSnapshot().value).toBe('backoff')
    expect(runs).toHaveLength(1)
    clock.increment(1)
    await waitFor(actor, (s) => s.value === 'backoff' && s.context.failures === 2)
    expect(runs).toHaveLength(2)
    to = 2
    clock.increment(2000)
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 2)
    expect(actor.getSnapshot().context.failures).toBe(0)
    expect(runs).toHaveLength(3)
  })

  it('daemon — a rolled-back copy holds (said once per announced revision) until a newer release or an explicit request', async () => {
    const { actor, runs, emitted } = harness({ needsHolders: false, current: 1, hold: 2 }, async (r) => ({ to: r.rev ?? 3, hold: r.rev === undefined ? undefined : 2 }))
    actor.send({ type: 'release.announced', rev: 2 })
    expect(actor.getSnapshot().value).toBe('held')
    actor.send({ type: 'holders.changed', newest: 2 })
    expect(emitted).toEqual(['held r1 newest r2'])
    expect(runs).toEqual([])
    // The user asks for r2 explicitly: it runs although the copy holds.
    actor.send({ type: 'update.requested', request: { rev: 2 }, id: 7 })
    await waitFor(actor, (s) => s.context.current === 2)
    expect(emitted).toContain('done 7 r2')
    // A release newer than the one it left ends the hold.
    actor.send({ type: 'release.announced', rev: 3 })
    await waitFor(actor, (s) => s.context.current === 3)
    expect(runs).toEqual([{ rev: 2 }, {}])
  })

  it('daemon — a revision that failed its health check is reverted, not retried: the copy holds until a newer release', async () => {
    const { actor, runs, emitted, clock } = harness({ needsHolders: false, current: 4 }, async (r) =>
      runs.length === 1 ? { to: 4, hold: 5, reverted: { rev: 5, error: new Error('r5 failed its health check') } } : { to: r.rev ?? 6, hold: undefined })
    actor.send({ type: 'release.announced', rev: 5 })
    await waitFor(actor, (s) => s.value === 'held')
    expect(emitted).toEqual(['reverted 0 r5 → r4', 'held r4 newest r5'])
    expect(actor.getSnapshot().context).toMatchObject({ current: 4, hold: 5, failures: 0 })
    // No backoff timer runs another try of r5.
    clock.increment(60_000)
    expect(runs).toHaveLength(1)
    actor.send({ type: 'release.announced', rev: 6 })
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 6)
    expect(runs).toEqual([{}, {}])
  })

  it('daemon — under a staged rollout automatic runs go to the stage\'s revision: not beyond it, up when it grows, down when a halt says so', async () => {
    const { actor, runs } = harness({ needsHolders: false, current: 1 }, async (r) => ({ to: r.rev ?? 3, hold: undefined }))
    // The stage holds this client on r1 although r2 is announced.
    actor.send({ type: 'rollout.target', rev: 1 })
    actor.send({ type: 'release.announced', rev: 2 })
    expect(actor.getSnapshot().value).toBe('idle')
    expect(runs).toEqual([])
    actor.send({ type: 'rollout.target', rev: 2 })
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 2)
    // r2 halted: back to r1, by number.
    actor.send({ type: 'rollout.target', rev: 1 })
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 1)
    expect(runs).toEqual([{ rev: 2 }, { rev: 1 }])
  })

  it('daemon — a hold keeps a staged client from going up to the revision it left, never from going down', async () => {
    const { actor, runs, emitted } = harness({ needsHolders: false, current: 4, hold: 5 }, async (r) => ({ to: r.rev!, hold: 5 }))
    actor.send({ type: 'rollout.target', rev: 5 })
    expect(actor.getSnapshot().value).toBe('held')
    expect(emitted).toEqual(['held r4 newest r5'])
    actor.send({ type: 'rollout.target', rev: 3 })
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 3)
    expect(runs).toEqual([{ rev: 3 }])
  })

  it('daemon — requests during a run are queued and each caller gets its own run; a failed one is reported with its id', async () => {
    const gates: Array<() => void> = []
    const { actor, runs, emitted } = harness({ auto: false }, (r, n) => new Promise((resolve, reject) => {
      gates.push(() => (n === 2 ? reject(new Error('no server')) : resolve({ to: r.rev ?? 2, hold: undefined })))
    }))
    actor.send({ type: 'update.requested', request: {}, id: 1 })
    actor.send({ type: 'update.requested', request: { rev: 1, onConflict: 'overwrite' }, id: 2 })
    expect(runs).toHaveLength(1)
    gates[0]!()
    await waitFor(actor, () => runs.length === 2)
    expect(runs[1]).toEqual({ rev: 1, onConflict: 'overwrite' })
    gates[1]!()
    await waitFor(actor, (s) => s.value === 'backoff')
    expect(emitted).toEqual(['done 1 r2', 'failed 2'])
  })

  it('daemon — before discovery ends (ready: false) nothing runs; the requests made meanwhile then run in order, each once', async () => {
    const { actor, runs, emitted } = harness({ auto: true, needsHolders: false, ready: false }, async (r) => ({ to: r.rev ?? 2, hold: undefined }))
    actor.send({ type: 'release.announced', rev: 2 })
    actor.send({ type: 'update.requested', request: { rev: 3 }, id: 1 })
    actor.send({ type: 'update.requested', request: { rev: 4 }, id: 2 })
    expect(actor.getSnapshot().value).toBe('idle')
    expect(runs).toEqual([])
    actor.send({ type: 'discovery.done' })
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 4)
    expect(runs).toEqual([{ rev: 3 }, { rev: 4 }])
    expect(emitted).toEqual(['done 1 r3', 'done 2 r4'])
  })

  it('daemon — the run\'s statechart is the child updateRun: started by run.start, its output goes to closeRun, and it is stopped once the run closed', async () => {
    const child = setup({ types: { output: {} as { rev: number } } }).createMachine({
      id: 'childRun', initial: 'idle',
      states: { idle: { on: { 'run.start': 'done' } }, done: { type: 'final' } },
      output: () => ({ rev: 5 }),
    })
    const ends: RunEnd[] = []
    const actor = createActor(autoUpdateMachine.provide({
      actors: {
        openRun: fromPromise<OpenedRun, { request: AutoUpdateRequest; id: number }>(async () => ({ logic: child, input: undefined })),
        closeRun: fromPromise<RunOutcome, { request: AutoUpdateRequest; id: number; end: RunEnd }>(async ({ input }) => {
          ends.push(input.end)
          return { to: (input.end as { output: { rev: number } }).output.rev, hold: undefined }
        }),
      },
    }), { input: { auto: false, needsHolders: false, current: 1, hold: undefined } })
    const parents: (string | undefined)[] = []
    actor.system.inspect({
      next: (e) => {
        const ref = e.actorRef as AnyActorRef
        if (e.type === '@xstate.actor' && ref.id === 'updateRun') parents.push((ref as unknown as { _parent?: AnyActorRef })._parent?.id)
      },
    })
    actor.start()
    actor.send({ type: 'update.requested', request: {}, id: 1 })
    await waitFor(actor, (s) => s.value === 'idle' && s.context.current === 5)
    expect(ends).toEqual([{ output: { rev: 5 } }])
    expect(parents).toEqual([actor.id])
    expect(actor.getSnapshot().children.updateRun).toBeUndefined()
  })
})
