// Issue 12 item 1: `upswarm up` as a statechart — the steps in order (NATS and the DHT only when
// asked for), a process that never says READY stopped by the ready timeout on the machine's clock,
// a failed step stopping everything, and a stop from `up`.
import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor, fromPromise, waitFor } from 'xstate'
import { READY_TIMEOUT_MS, launcherMachine, type LauncherInput } from '../../machines/launcher.machine.ts'

function harness(input: Partial<LauncherInput>, stubs: { roles?: (signal: AbortSignal) => Promise<void>; prepare?: () => Promise<void> } = {}) {
  const clock = new SimulatedClock()
  const log: string[] = []
  const step = (name: string) => fromPromise<void, void>(async () => {
    log.push(name)
  })
  const machine = launcherMachine.provide({
    actors: {
      startNats: step('nats'),
      prepare: fromPromise<void, void>(async () => {
        log.push('prepare')
        await stubs.prepare?.()
      }),
      startDht: step('dht'),
      startRoles: fromPromise<void, void>(async ({ signal }) => {
        log.push('roles')
        await stubs.roles?.(signal)
      }),
      writeEndpoints: step('endpoints'),
      stopAll: step('stop all'),
    },
  })
  const actor = createActor(machine, { clock, input: { nats: true, dht: true, ...input } })
  actor.start()
  return { actor, clock, log }
}

describe('launcher machine', () => {
  it('launcher — starts NATS, prepares, starts the DHT and the roles, writes the endpoints, and is up; without NATS and DHT it skips them', async () => {
    const all = harness({})
    await waitFor(all.actor, (s) => s.matches('up'))
    expect(all.log).toEqual(['nats', 'prepare', 'dht', 'roles', 'endpoints'])

    const bare = harness({ nats: false, dht: false })
    await waitFor(bare.actor, (s) => s.matches('up'))
    expect(bare.log).toEqual(['prepare', 'roles', 'endpoints'])
  })

  it('launcher — a role that never says READY is stopped by the ready timeout on the clock, and everything started is stopped', async () => {
    let aborted = false
    const { actor, clock, log } = harness({ nats: false, dht: false }, {
      roles: (signal) => new Promise<void>((_, reject) => signal.addEventListener('abort', () => {
        aborted = true
        reject(new Error('stopped'))
      })),
    })
    await waitFor(actor, (s) => s.matches('startingRoles'))
    clock.increment(READY_TIMEOUT_MS - 1)
    expect(actor.getSnapshot().matches('startingRoles')).toBe(true)
    clock.increment(1)
    const s = await waitFor(actor, (x) => x.status === 'done')
    expect(s.value).toBe('failed')
    expect(aborted).toBe(true)
    expect(log.at(-1)).toBe('stop all')
    expect(s.context.failure).toMatchObject({ step: 'startingRoles', message: `a role process not ready after ${READY_TIMEOUT_MS} ms; see its output above` })
  })

  it('launcher — a failed step stops what was started and names the step; a stop when up stops everything', async () => {
    const broken = harness({}, { prepare: async () => {
      throw new Error('cannot create stream UPSWARM_RELEASES')
    } })
    const s = await waitFor(broken.actor, (x) => x.status === 'done')
    expect(s.value).toBe('failed')
    expect(broken.log).toEqual(['nats', 'prepare', 'stop all'])
    expect(s.context.failure).toMatchObject({ step: 'preparing', message: 'cannot create stream UPSWARM_RELEASES' })

    const ok = harness({})
    await waitFor(ok.actor, (x) => x.matches('up'))
    ok.actor.send({ type: 'stop' })
    expect((await waitFor(ok.actor, (x) => x.status === 'done')).value).toBe('stopped')
    expect(ok.log.at(-1)).toBe('stop all')
  })
})
