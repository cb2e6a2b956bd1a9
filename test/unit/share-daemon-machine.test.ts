// Issue 12 item 1: the sharing daemon as a statechart. NATS retries, the discovery bound, redials
// and root looks run on the machine's clock (SimulatedClock here, no sleeps); the updates are the
// auto-update child, whose outcomes reach the daemon by events: the hold after a rollback, the
// backoff after a failure, and a stop that lets the run under way end first.
import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor, fromPromise, waitFor, type AnyActorRef } from 'xstate'
import { stubRuns } from '../helpers/run-stubs.ts'
import { autoUpdateMachine, type AutoUpdateRequest, type RunOutcome } from '../../machines/auto-update.machine.ts'
import { DISCOVERY_WAIT_MS, REDIAL_REMEMBERED_MS, ROOT_LOOK_MS, SERVER_NEWS_LINGER_MS, natsRetryWait, shareDaemonMachine, type ShareDaemonEmitted, type ShareDaemonInput } from '../../machines/share-daemon.machine.ts'

/** A promise someone else settles. */
function gate<T = void>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

interface Stubs {
  connect?: (attempt: number) => Promise<void>
  attach?: () => Promise<void>
  lookUp?: () => Promise<void>
  settle?: () => Promise<void>
  run?: (request: AutoUpdateRequest, n: number) => Promise<RunOutcome>
}

function harness(input: Partial<ShareDaemonInput>, stubs: Stubs = {}) {
  const clock = new SimulatedClock()
  const calls = { connect: 0, attach: 0, lookUp: 0, settle: 0, redial: 0, listen: 0, rest: 0, runs: [] as AutoUpdateRequest[] }
  const machine = shareDaemonMachine.provide({
    actors: {
      autoUpdate: autoUpdateMachine.provide({
        actors: stubRuns(async (request) => {
          calls.runs.push(request)
          return (stubs.run ?? (async () => ({ to: 2, hold: undefined })))(request, calls.runs.length)
        }),
      }),
      connectNats: fromPromise(async ({ input: i }) => {
        calls.connect++
        return (stubs.connect ?? (async () => {}))(i.attempt)
      }),
      attachNats: fromPromise(async () => {
        calls.attach++
        return (stubs.attach ?? (async () => {}))()
      }),
      lookUpDht: fromPromise(async () => {
        calls.lookUp++
        return (stubs.lookUp ?? (async () => {}))()
      }),
      settleDiscovery: fromPromise(async () => {
        calls.settle++
        return (stubs.settle ?? (async () => {}))()
      }),
    },
    actions: { dialRemembered: () => void calls.redial++, listenToServers: () => void calls.listen++, restFromServers: () => void calls.rest++ },
  })
  const actor = createActor(machine, {
    clock,
    input: { auto: true, current: 1, hold: undefined, nats: 'none', tracker: true, dht: true, ...input },
  })
  const emitted: ShareDaemonEmitted[] = []
  actor.on('*', (e) => emitted.push(e))
  actor.start()
  const updates = () => actor.getSnapshot().children.updates as AnyActorRef
  const types = () => emitted.map((e) => e.type)
  return { actor, clock, calls, emitted, types, updates }
}

const unreachable = () => Object.assign(new Error('NATS at nats://127.0.0.1:1 unreachable'), { code: 'UPSWARM_E_NATS' })

describe('share-daemon machine', () => {
  it('share-daemon — NATS unreachable: retries on the clock with doubling waits, then attaches and says nats.connected', async () => {
    let answers = false
    const { actor, clock, calls, emitted } = harness({ nats: 'retry' }, {
      connect: async () => {
        if (!answers) throw unreachable()
      },
    })
    await waitFor(actor, (s) => s.matches({ running: { nats: 'waiting' } }))
    expect(emitted.filter((e) => e.type === 'nats.retrying')).toEqual([
      { type: 'nats.retrying', attempt: 1, waitMs: 1_000, error: { code: 'UPSWARM_E_NATS', message: 'NATS at nats://127.0.0.1:1 unreachable' } },
    ])
    clock.increment(999)
    expect(calls.connect).toBe(1)
    clock.increment(1)
    await waitFor(actor, (s) => s.context.natsAttempts === 2 && s.matches({ running: { nats: 'waiting' } }))
    expect(calls.connect).toBe(2)
    expect(emitted.filter((e) => e.type === 'nats.retrying').map((e) => (e as { waitMs: number }).waitMs)).toEqual([1_000, 2_000])
    expect([3, 4, 5, 6, 7].map(natsRetryWait)).toEqual([4_000, 8_000, 16_000, 30_000, 30_000])
    answers = true
    clock.increment(2_000)
    await waitFor(actor, (s) => s.matches({ running: { nats: 'online' } }))
    expect(calls.attach).toBe(1)
    expect(emitted.at(-1)).toEqual({ type: 'nats.connected' })
    // The update machine now waits for a holder of an announced revision (NATS tells of releases first).
    expect(actor.getSnapshot().children.updates!.getSnapshot().context.needsHolders).toBe(true)
  })

  it('share-daemon — refused credentials end the retries (nats.failed); a connection attached from outside is still taken', async () => {
    const { actor, clock, calls, emitted } = harness({ nats: 'retry' }, {
      connect: async () => {
        throw Object.assign(new Error('Authorization Violation'), { code: 'UPSWARM_E_AUTH' })
      },
    })
    await waitFor(actor, (s) => s.matches({ running: { nats: 'failed' } }))
    expect(emitted).toContainEqual({ type: 'nats.failed', error: { code: 'UPSWARM_E_AUTH', message: 'Authorization Violation' } })
    clock.increment(60_000)
    expect(calls.connect).toBe(1)
    actor.send({ type: 'nats.reached' })
    await waitFor(actor, (s) => s.matches({ running: { nats: 'online' } }))
    expect(calls.attach).toBe(1)
  })

  it('share-daemon — with NATS given at start it attaches at once and says no nats.connected (that is for a late connection)', async () => {
    const { actor, calls, types } = harness({ nats: 'attach' })
    await waitFor(actor, (s) => s.matches({ running: { nats: 'online' } }))
    expect(calls).toMatchObject({ connect: 0, attach: 1 })
    expect(types()).not.toContain('nats.connected')
  })

  it('share-daemon — a requested update waits for the first discovery round to settle, then runs as a child and resolves by event', async () => {
    const settled = gate()
    const { actor, calls, emitted } = harness({ auto: false }, { settle: () => settled.promise })
    actor.send({ type: 'update.requested', request: { rev: 2 }, id: 1 })
    expect(calls.runs).toEqual([])
    actor.send({ type: 'tracker.peers', others: 3 })
    await waitFor(actor, (s) => s.matches({ running: { discovery: { discovering: 'settling' } } }))
    expect(calls.runs).toEqual([])
    settled.resolve()
    await waitFor(actor, (s) => s.context.current === 2)
    expect(calls.runs).toEqual([{ rev: 2 }])
    expect(emitted).toContainEqual({ type: 'run.done', id: 1, outcome: { to: 2, hold: undefined } })
  })

  it('share-daemon — with no discovery round ending, the first update starts when the discovery wait passes on the clock', async () => {
    const { actor, clock, calls } = harness({ auto: false })
    actor.send({ type: 'update.requested', request: {}, id: 1 })
    clock.increment(DISCOVERY_WAIT_MS - 1)
    expect(calls.runs).toEqual([])
    expect(actor.getSnapshot().matches({ running: { discovery: 'discovering' } })).toBe(true)
    clock.increment(1)
    await waitFor(actor, (s) => s.context.current === 2)
    expect(calls.runs).toEqual([{}])
  })

  it('share-daemon — a tracker that is down or knows no other peer makes it look peers up on the DHT (said once); without a DHT the round just ends', async () => {
    const { actor, calls, emitted } = harness({})
    expect(actor.getSnapshot().matches({ running: { dht: 'announcing' } })).toBe(true)
    actor.send({ type: 'tracker.status', status: 'down' })
    await waitFor(actor, (s) => s.matches({ running: { discovery: 'discovered', dht: 'looking' } }))
    expect(calls).toMatchObject({ lookUp: 1, settle: 1 })
    actor.send({ type: 'tracker.peers', others: 0 })
    await waitFor(actor, () => calls.lookUp === 2)
    expect(emitted.filter((e) => e.type === 'dht.lookup')).toEqual([{ type: 'dht.lookup', why: 'tracker down' }])
    expect(emitted).toContainEqual({ type: 'tracker.status', status: 'down' })

    const noDht = harness({ dht: false })
    noDht.actor.send({ type: 'tracker.peers', others: 0 })
    await waitFor(noDht.actor, (s) => s.matches({ running: { discovery: 'discovered' } }))
    expect(noDht.calls.lookUp).toBe(0)
    expect(noDht.types()).not.toContain('dht.lookup')
  })

  it('share-daemon — with no tracker it looks peers up on the DHT from the start', async () => {
    const { actor, calls } = harness({ tracker: false })
    await waitFor(actor, (s) => s.matches({ running: { discovery: 'discovered', dht: 'looking' } }))
    expect(calls).toMatchObject({ lookUp: 1, settle: 1 })
  })

  it('share-daemon — --auto on a rolled-back copy holds: update.held once per announced revision, no run, until a newer release', async () => {
    const { actor, calls, emitted } = harness({ current: 1, hold: 2 }, { run: async () => ({ to: 3, hold: undefined }) })
    actor.send({ type: 'tracker.peers', others: 1 })
    await waitFor(actor, (s) => s.matches({ running: { discovery: 'discovered' } }))
    actor.send({ type: 'release.found', rev: 2, holders: 2 })
    actor.send({ type: 'release.found', rev: 2, holders: 2 })
    await waitFor(actor, () => emitted.some((e) => e.type === 'update.held'))
    expect(emitted.filter((e) => e.type === 'update.held' || e.type === 'release.available')).toEqual([
      { type: 'release.available', rev: 2 },
      { type: 'update.held', rev: 1, newest: 2 },
    ])
    expect(calls.runs).toEqual([])
    actor.send({ type: 'release.found', rev: 3, holders: 3 })
    await waitFor(actor, (s) => s.context.current === 3)
    expect(calls.runs).toEqual([{}])
  })

  it('share-daemon — an automatic run that fails backs off on the clock, then runs again and succeeds', async () => {
    let fail = true
    const { actor, clock, calls, emitted, updates } = harness({}, {
      run: async () => {
        if (fail) throw new Error('no server answered')
        return { to: 2, hold: undefined }
      },
    })
    actor.send({ type: 'tracker.peers', others: 1 })
    await waitFor(actor, (s) => s.matches({ running: { discovery: 'discovered' } }))
    actor.send({ type: 'release.found', rev: 2, holders: 2 })
    await waitFor(updates(), (s) => s.value === 'backoff')
    expect(emitted).toContainEqual({ type: 'run.failed', id: 0, error: new Error('no server answered') })
    fail = false
    clock.increment(999)
    expect(calls.runs).toHaveLength(1)
    clock.increment(1)
    await waitFor(actor, (s) => s.context.current === 2)
    expect(calls.runs).toHaveLength(2)
  })

  it('share-daemon — with NATS an announced release runs only once a server synced it (heartbeat) or a peer holds it', async () => {
    const { actor, calls, types } = harness({ nats: 'attach' })
    actor.send({ type: 'tracker.peers', others: 1 })
    await waitFor(actor, (s) => s.matches({ running: { discovery: 'discovered', nats: 'online' } }))
    actor.send({ type: 'release.found', rev: 2, holders: 0 })
    expect(types()).toContain('release.available')
    expect(calls.runs).toEqual([])
    actor.send({ type: 'servers.synced', rev: 1 })
    expect(calls.runs).toEqual([])
    actor.send({ type: 'servers.synced', rev: 2 })
    await waitFor(actor, (s) => s.context.current === 2)
    expect(calls.runs).toEqual([{}])
  })

  it('share-daemon — dials the remembered peers at start and again every redial interval on the clock', () => {
    const { clock, calls } = harness({})
    expect(calls.redial).toBe(1)
    clock.increment(REDIAL_REMEMBERED_MS - 1)
    expect(calls.redial).toBe(1)
    clock.increment(1)
    expect(calls.redial).toBe(2)
    clock.increment(REDIAL_REMEMBERED_MS)
    expect(calls.redial).toBe(3)
  })

  it('share-daemon — a look for newer roots is allowed at most once per root-look interval', () => {
    const { actor, clock } = harness({})
    const ready = () => actor.getSnapshot().matches({ running: { rootLook: 'ready' } })
    expect(ready()).toBe(true)
    actor.send({ type: 'roots.looked' })
    expect(ready()).toBe(false)
    clock.increment(ROOT_LOOK_MS - 1)
    expect(ready()).toBe(false)
    clock.increment(1)
    expect(ready()).toBe(true)
  })

  it('share-daemon — stop during a run lets the run end first; requests that never ran are named in daemon.stopped', async () => {
    const running = gate<RunOutcome>()
    const { actor, calls, emitted } = harness({ auto: false }, { run: () => running.promise })
    actor.send({ type: 'tracker.peers', others: 1 })
    await waitFor(actor, (s) => s.matches({ running: { discovery: 'discovered' } }))
    actor.send({ type: 'update.requested', request: {}, id: 1 })
    actor.send({ type: 'update.requested', request: { rev: 3 }, id: 2 })
    await waitFor(actor, () => calls.runs.length === 1)
    actor.send({ type: 'stop' })
    expect(actor.getSnapshot().value).toBe('stopping')
    running.resolve({ to: 2, hold: undefined })
    await waitFor(actor, (s) => s.status === 'done')
    expect(calls.runs).toEqual([{}])
    expect(emitted.filter((e) => e.type === 'run.done' || e.type === 'daemon.stopped')).toEqual([
      { type: 'run.done', id: 1, outcome: { to: 2, hold: undefined } },
      { type: 'daemon.stopped', unrun: [2] },
    ])
  })

  it('share-daemon — hears the servers only while it has a use for it: after start and attach, for a release to reach or a requested run, then rests', async () => {
    const running = gate<RunOutcome>()
    const { actor, clock, calls } = harness({ nats: 'attach' }, { run: () => running.promise })
    const listening = () => actor.getSnapshot().matches({ running: { serverNews: 'listening' } })
    await waitFor(actor, (s) => s.matches({ running: { nats: 'online' } }))
    expect(listening()).toBe(true)
    expect(calls).toMatchObject({ listen: 1, rest: 0 })
    // Nothing to reach: it rests once the linger (restarted when NATS attached) has passed.
    clock.increment(SERVER_NEWS_LINGER_MS - 1)
    expect(listening()).toBe(true)
    clock.increment(1)
    expect(listening()).toBe(false)
    expect(calls.rest).toBe(1)
    // A release to reach: it listens (its run waits for a server that synced it) until the run is done.
    actor.send({ type: 'tracker.peers', others: 1 })
    actor.send({ type: 'release.found', rev: 2, holders: 0 })
    expect(listening()).toBe(true)
    clock.increment(10 * SERVER_NEWS_LINGER_MS)
    expect(listening()).toBe(true)
    actor.send({ type: 'servers.synced', rev: 2 })
    await waitFor(actor, () => calls.runs.length === 1)
    running.resolve({ to: 2, hold: undefined })
    await waitFor(actor, (s) => s.context.current === 2)
    expect(listening()).toBe(true)
    clock.increment(SERVER_NEWS_LINGER_MS)
    expect(listening()).toBe(false)
    expect(calls).toMatchObject({ listen: 2, rest: 2 })
    // A staged rollout that keeps this client on 2 while 3 is out: nothing to reach, it rests.
    actor.send({ type: 'rollout.target', rev: 2 })
    actor.send({ type: 'release.found', rev: 3, holders: 0 })
    expect(listening()).toBe(false)
    // A requested run listens until it has ended.
    actor.send({ type: 'update.requested', request: { rev: 1 }, id: 7 })
    expect(listening()).toBe(true)
    expect(actor.getSnapshot().context.requests).toBe(1)
  })

  it('share-daemon — a rolled-back copy held below the newest release does not keep listening to the servers', async () => {
    const { actor, clock } = harness({ nats: 'attach', current: 1, hold: 2 })
    await waitFor(actor, (s) => s.matches({ running: { nats: 'online' } }))
    actor.send({ type: 'release.found', rev: 2, holders: 2 })
    clock.increment(SERVER_NEWS_LINGER_MS)
    expect(actor.getSnapshot().matches({ running: { serverNews: 'resting' } })).toBe(true)
    // A release past the hold is one to reach.
    actor.send({ type: 'release.found', rev: 3, holders: 0 })
    expect(actor.getSnapshot().matches({ running: { serverNews: 'listening' } })).toBe(true)
  })
})
