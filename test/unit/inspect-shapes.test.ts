// The inspection messages against @statelyai/inspect's own types and its own conversion: tsc
// checks the type (StatelyInspectionEvent), and at run time every message has the fields the
// package's inspector produces for the same actor, with contexts bounded (issue 12 items 3, 4).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect'
import { createActor, fromPromise, toPromise } from 'xstate'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { InspectionChannel } from '../../infra/inspect/nats-inspector.ts'
import { BOUNDS, MAX_MESSAGE_BYTES, STATELY_INSPECT_VERSION, bounded, checkStatelyInspectionEvent, encodeMessage } from '../../infra/inspect/stately-events.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { updateRunMachine, type ApplySummary, type RunPlan, type RunTarget, type StagedSet } from '../../machines/update-run.machine.ts'

const BIG_PLAN: RunPlan = {
  tasks: Array.from({ length: 500 }, (_, i) => ({ path: `lib/${'x'.repeat(400)}/${i}`, status: 'outdated' as const, facts: { local: 'missing' } as never })),
  conflicts: [],
}

const machine = updateRunMachine.provide({
  actors: {
    check: fromPromise(async (): Promise<RunTarget> => ({ from: 1, to: 2 })),
    plan: fromPromise(async () => BIG_PLAN),
    download: fromPromise(async (): Promise<StagedSet> => ({ files: [], failed: [], bytesFromServers: 1, bytesFromPeers: 2 })),
    discard: fromPromise(async () => {}),
    apply: fromPromise(async (): Promise<ApplySummary> => ({ updated: 1, checkedOut: 0, removed: 0, blocked: [] })),
    undo: fromPromise(async () => {}),
    retain: fromPromise(async (): Promise<string[]> => []),
  },
})

/** Runs one update-run to its end under an inspector; resolves once the root's final snapshot has been seen. */
async function inspectRun(inspect: (sink: (m: StatelyInspectionEvent) => void) => Parameters<typeof createActor>[1]): Promise<StatelyInspectionEvent[]> {
  const seen: StatelyInspectionEvent[] = []
  let sessionId = ''
  let finished!: () => void
  const ended = new Promise<void>((resolve) => { finished = resolve })
  const run = createActor(machine, {
    input: { kind: 'update', onConflict: 'alert' },
    ...inspect((m) => {
      seen.push(m)
      if (m.type === '@xstate.snapshot' && m.sessionId === sessionId && m.snapshot.status === 'done') finished()
    }),
  })
  sessionId = run.sessionId
  run.start()
  run.send({ type: 'run.start' })
  await toPromise(run)
  await ended
  return seen
}

describe('inspect — message shapes', () => {
  it('inspect — the messages are StatelyInspectionEvents with the fields @statelyai/inspect itself sends', async () => {
    const ours = await inspectRun((sink) => ({ inspect: new InspectionChannel(sink).inspect }))
    const theirs = await inspectRun((sink) => ({ inspect: createInspector({ send: sink }).inspect }))
    expectTypeOf(ours).toEqualTypeOf<StatelyInspectionEvent[]>()
    for (const m of ours) expect(checkStatelyInspectionEvent(JSON.parse(encodeMessage(m))), JSON.stringify(m).slice(0, 200)).toMatchObject({ ok: true })
    for (const type of ['@xstate.actor', '@xstate.event', '@xstate.snapshot'] as const) {
      const a = ours.find((m) => m.type === type)!
      const b = theirs.find((m) => m.type === type)!
      expect(Object.keys(a).sort(), type).toEqual(expect.arrayContaining(Object.keys(b).filter((k) => (b as unknown as Record<string, unknown>)[k] !== undefined).sort()))
    }
    const actor = ours.find((m) => m.type === '@xstate.actor' && m.name === 'updateRun')
    const reference = theirs.find((m) => m.type === '@xstate.actor' && m.name === 'updateRun')
    expect(actor && actor.type === '@xstate.actor' && JSON.parse(actor.definition!)).toMatchObject({ id: 'updateRun', initial: 'idle' })
    // The same machine definition (the package sorts keys; we keep the machine's order, which the page draws).
    const statesOf = (m: unknown) => Object.keys(JSON.parse((m as { definition: string }).definition).states).sort()
    expect(statesOf(actor)).toEqual(statesOf(reference))
    // The states the package reports, we report, in the same order.
    const states = (ms: StatelyInspectionEvent[], root: string) => ms.filter((m) => m.type === '@xstate.snapshot' && m.sessionId === root)
      .map((m) => (m as { snapshot: { value?: unknown } }).snapshot.value)
    const rootOf = (ms: StatelyInspectionEvent[]) => ms.find((m) => m.type === '@xstate.actor' && m.name === 'updateRun')!.sessionId
    expect(states(ours, rootOf(ours))).toEqual(states(theirs, rootOf(theirs)))
    expect(ours.every((m) => m._version === STATELY_INSPECT_VERSION)).toBe(true)
    const installed = JSON.parse(await readFile(join(PROJECT_ROOT, 'node_modules', '@statelyai', 'inspect', 'package.json'), 'utf8')) as { version: string }
    expect(STATELY_INSPECT_VERSION).toBe(installed.version)
  })

  it('inspect — a context is bounded: long strings cut, bytes as a size, long lists and deep nesting shortened', async () => {
    const ours = await inspectRun((sink) => ({ inspect: new InspectionChannel(sink).inspect }))
    const planned = ours.find((m) => m.type === '@xstate.snapshot' && (m.snapshot as { value?: unknown }).value === 'downloading')
    const plan = (planned as { snapshot: { context: { plan: { tasks: unknown[] } } } }).snapshot.context.plan
    expect(plan.tasks).toHaveLength(BOUNDS.items + 1)
    expect(plan.tasks.at(-1)).toBe(`… ${500 - BOUNDS.items} more`)
    expect(JSON.stringify(plan.tasks[0]).length).toBeLessThan(BOUNDS.string + 200)
    for (const m of ours) expect(Buffer.byteLength(encodeMessage(m))).toBeLessThanOrEqual(MAX_MESSAGE_BYTES)

    expect(bounded({ b: Buffer.alloc(5000), u: new Uint8Array(3), s: 'y'.repeat(1000) })).toEqual({ b: '[5000 bytes]', u: '[3 bytes]', s: `${'y'.repeat(BOUNDS.string)}… (1000 chars)` })
    expect(bounded({ a: { b: { c: { d: { e: 1 } } } } })).toEqual({ a: { b: { c: { d: '[…]' } } } })
    expect(bounded(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i])))).toMatchObject({ k0: 0, '…': `${50 - BOUNDS.keys} more keys` })
    expect(bounded(Object.assign(new Error('disk full'), { code: 'ENOSPC' }))).toEqual({ name: 'Error', message: 'disk full', code: 'ENOSPC' })
    // Maps and sets are read only up to the bound (a context may hold thousands of entries).
    const big = new Map(Array.from({ length: 10_000 }, (_, i) => [i, { n: i }]))
    const m = bounded(big) as Record<string, unknown>
    expect(Object.keys(m)).toHaveLength(BOUNDS.keys + 1)
    expect(m).toMatchObject({ 0: { n: 0 }, [BOUNDS.keys - 1]: { n: BOUNDS.keys - 1 }, '…': `${10_000 - BOUNDS.keys} more keys` })
    expect(bounded(new Set(Array.from({ length: 10_000 }, (_, i) => i)))).toEqual([...Array.from({ length: BOUNDS.items }, (_, i) => i), `… ${10_000 - BOUNDS.items} more`])
    expect(bounded(new Map([['a', 1]]))).toEqual({ a: 1 })
  })

  it('inspect — a message that is not an inspection event is refused with the field that is wrong', () => {
    expect(checkStatelyInspectionEvent([1])).toEqual({ ok: false, reason: 'not a JSON object' })
    expect(checkStatelyInspectionEvent({ type: '@xstate.snapshot', sessionId: 'x', createdAt: '1', id: 'i', _version: '0.7.2', event: { type: 'a' } }))
      .toEqual({ ok: false, reason: 'snapshot must be an object with a status' })
    expect(checkStatelyInspectionEvent({ type: 'nope', sessionId: 'x', createdAt: '1', id: 'i', _version: '0.7.2' }))
      .toMatchObject({ ok: false, reason: expect.stringContaining('type must be') })
    expect(checkStatelyInspectionEvent({ type: '@xstate.actor', sessionId: 7 })).toEqual({ ok: false, reason: 'sessionId must be a string' })
  })
})
