import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor, fromPromise, waitFor } from 'xstate'
import { serverSyncMachine, type PendingRelease, type SyncOutcome } from '../../machines/server-sync.machine.ts'

const clocks = { heartbeatMs: 1000, keepAliveMs: 10_000, spacePollMs: 1000, spaceRetryMs: 60_000 }

function harness(outcomes: Array<'ok' | 'transient' | 'permanent'>) {
  const releases: PendingRelease[] = outcomes.map((_, i) => ({ seq: i + 1, product: 'p', rev: i + 1 }))
  const acks: Array<[number, string]> = []
  const failOnce = new Set(outcomes.flatMap((o, i) => (o === 'transient' ? [i + 1] : [])))
  const machine = serverSyncMachine.provide({
    delays: { retryDelay: 1 },
    actors: {
      prepareConsumer: fromPromise(async () => {}),
      nextRelease: fromPromise(async () => releases.shift() ?? new Promise<null>(() => {})),
      syncRelease: fromPromise(async ({ input }) => {
        const { seq } = input.release
        if (failOnce.delete(seq)) throw new Error('object store unavailable')
        return outcomes[seq - 1] === 'permanent' ? { permanent: true as const, reason: 'bad signature' } : { permanent: false as const }
      }),
      acknowledge: fromPromise(async ({ input }) => {
        acks.push([input.release.seq, input.outcome])
      }),
    },
  })
  return { actor: createActor(machine, { input: { serverId: 's1', ...clocks } }), acks }
}

describe('server sync machine', () => {
  it('repo-server — acknowledges each release only after it synced, in order', async () => {
    const { actor, acks } = harness(['ok', 'ok'])
    const synced: number[] = []
    actor.on('release.synced', (e) => synced.push(e.rev))
    actor.start()
    await waitFor(actor, () => acks.length === 2)
    expect(acks).toEqual([[1, 'synced'], [2, 'synced']])
    expect(synced).toEqual([1, 2])
  })

  it('repo-server — a transient failure retries the same release; a permanent one rejects it and moves on', async () => {
    const { actor, acks } = harness(['transient', 'permanent', 'ok'])
    const failures: number[] = []
    actor.on('sync.failed', (e) => failures.push(e.seq))
    actor.start()
    await waitFor(actor, () => acks.length === 3)
    expect(failures).toEqual([1])
    expect(acks).toEqual([[1, 'synced'], [2, 'rejected'], [3, 'synced']])
  })

  it('repo-server — a release that does not fit waits for space as often as it takes, never parked, and syncs once the space is there', async () => {
    const acks: Array<[number, string]> = []
    let tries = 0
    let space = 0
    const waits: number[] = []
    const machine = serverSyncMachine.provide({
      delays: { retryDelay: 1 },
      actors: {
        prepareConsumer: fromPromise(async () => {}),
        nextRelease: fromPromise(async () => (acks.length === 0 ? { seq: 1, product: 'p', rev: 1 } : new Promise<null>(() => {}))),
        syncRelease: fromPromise(async (): Promise<SyncOutcome> => {
          tries++
          return space >= 3 ? { permanent: false as const } : { permanent: false as const, noSpace: { reason: 'disk full', needed: 3 } }
        }),
        checkSpace: fromPromise(async ({ input }) => {
          waits.push(input.needed)
          space++
          return true
        }),
        acknowledge: fromPromise(async ({ input }) => {
          acks.push([input.release.seq, input.outcome])
        }),
      },
    })
    // One try before parking: a full disk must not count as one.
    const actor = createActor(machine, { input: { serverId: 's1', maxAttempts: 1, ...clocks } })
    const noSpace: string[] = []
    actor.on('sync.noSpace', (e) => noSpace.push(`${e.seq}:${e.reason}:${e.needed}`))
    actor.start()
    await waitFor(actor, () => acks.length === 1)
    expect(acks).toEqual([[1, 'synced']])
    expect(tries).toBe(4)
    expect(waits).toEqual([3, 3, 3])
    expect(noSpace).toEqual(['1:disk full:3', '1:disk full:3', '1:disk full:3'])
    expect(actor.getSnapshot().context).toMatchObject({ failures: 0, spaceNeeded: 0, lastError: null })
  })

  it('repo-server — publishes its heartbeat at start and every interval on the machine\'s clock, and never after stop', () => {
    const clock = new SimulatedClock()
    let beats = 0
    const machine = serverSyncMachine.provide({
      actions: { beat: () => void beats++ },
      actors: { nextRelease: fromPromise(() => new Promise<PendingRelease | null>(() => {})) },
    })
    const actor = createActor(machine, { clock, input: { serverId: 's1', ...clocks } })
    actor.start()
    expect(beats).toBe(1)
    clock.increment(999)
    expect(beats).toBe(1)
    clock.increment(1)
    expect(beats).toBe(2)
    for (let i = 0; i < 5; i++) clock.increment(1000)
    expect(beats).toBe(7)
    actor.send({ type: 'stop' })
    expect(actor.getSnapshot().status).toBe('done')
    clock.increment(60_000)
    expect(beats).toBe(7)
  })

  it('repo-server — says a release in hand is still in progress every keep-alive interval while it syncs or waits for space, and not once it is acknowledged', async () => {
    const clock = new SimulatedClock()
    const kept: number[] = []
    const acks: number[] = []
    const deferred = <T>() => {
      let resolve!: (v: T) => void
      return { promise: new Promise<T>((r) => (resolve = r)), resolve: (v: T) => resolve(v) }
    }
    const copies = [deferred<SyncOutcome>(), deferred<SyncOutcome>()]
    const space = deferred<boolean>()
    let tries = 0
    let served = false
    const machine = serverSyncMachine.provide({
      actions: { keepAlive: ({ context }) => void kept.push(context.pending!.seq) },
      actors: {
        nextRelease: fromPromise(async () => (served ? new Promise<null>(() => {}) : ((served = true), { seq: 7, product: 'p', rev: 1 }))),
        syncRelease: fromPromise(() => copies[tries++]!.promise),
        checkSpace: fromPromise(() => space.promise),
        acknowledge: fromPromise(async ({ input }) => void acks.push(input.release.seq)),
      },
    })
    const actor = createActor(machine, { clock, input: { serverId: 's1', ...clocks } })
    actor.start()
    await waitFor(actor, (s) => s.matches({ sync: 'syncing' }))
    clock.increment(9_999)
    expect(kept).toEqual([])
    clock.increment(1)
    clock.increment(10_000)
    expect(kept).toEqual([7, 7])
    copies[0]!.resolve({ permanent: false, noSpace: { reason: 'disk full', needed: 1 } })
    await waitFor(actor, (s) => s.matches({ sync: 'waitingForSpace' }))
    clock.increment(10_000)
    expect(kept).toEqual([7, 7, 7])
    space.resolve(true)
    await waitFor(actor, (s) => s.matches({ sync: 'syncing' }))
    copies[1]!.resolve({ permanent: false })
    await waitFor(actor, (s) => s.matches({ sync: 'waiting' }) && acks.length === 1)
    clock.increment(60_000)
    expect(kept).toEqual([7, 7, 7])
    expect(acks).toEqual([7])
  })

  it('repo-server — while the disk is too full it looks at the free space every poll interval on the clock, and tries the release anyway after the retry delay', async () => {
    const clock = new SimulatedClock()
    const acks: number[] = []
    let tries = 0
    let checks = 0
    let served = false
    const machine = serverSyncMachine.provide({
      actors: {
        nextRelease: fromPromise(async () => (served ? new Promise<null>(() => {}) : ((served = true), { seq: 3, product: 'p', rev: 1 }))),
        syncRelease: fromPromise(async (): Promise<SyncOutcome> => (tries++ === 0 ? { permanent: false, noSpace: { reason: 'disk full', needed: 9 } } : { permanent: false })),
        checkSpace: fromPromise(async () => {
          checks++
          return false
        }),
        acknowledge: fromPromise(async ({ input }) => void acks.push(input.release.seq)),
      },
    })
    const actor = createActor(machine, { clock, input: { serverId: 's1', ...clocks } })
    const pausing = () => waitFor(actor, (s) => s.matches({ sync: { waitingForSpace: { space: 'pausing' } } }))
    actor.start()
    await pausing()
    expect(checks).toBe(1)
    for (let i = 2; i <= 4; i++) {
      clock.increment(1000)
      await pausing()
      expect(checks).toBe(i)
    }
    expect(tries).toBe(1)
    clock.increment(57_000)
    await waitFor(actor, () => acks.length === 1)
    expect(tries).toBe(2)
    expect(acks).toEqual([3])
  })
})
