// Issue 12 item 1: the tracker server as a statechart — the peer bucket retried on the clock
// (not a refused permission), the doors opened in order, the limiters swept on the clock while
// listening, and a door that cannot listen closing what was opened before ending in `failed`.
import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor, fromPromise, waitFor } from 'xstate'
import { SWEEP_INTERVAL_MS, bucketRetryWait, trackerServerMachine } from '../../machines/tracker-server.machine.ts'

class Refused extends Error {}

function harness(stubs: { bucket?: (attempt: number) => Promise<void>; udp?: () => Promise<{ url: string }> } = {}, maxBucketAttempts?: number) {
  const clock = new SimulatedClock()
  const log: string[] = []
  const machine = trackerServerMachine.provide({
    actors: {
      openBucket: fromPromise(async ({ input }) => {
        log.push(`bucket ${input.attempt}`)
        return (stubs.bucket ?? (async () => {}))(input.attempt)
      }),
      startRegistry: fromPromise(async (): Promise<void> => {
        log.push('registry')
      }),
      openNatsDoor: fromPromise(async (): Promise<void> => {
        log.push('nats door')
      }),
      openHttpDoor: fromPromise(async () => {
        log.push('http door')
        return { url: 'http://127.0.0.1:1' }
      }),
      openUdpDoor: fromPromise(async () => {
        log.push('udp door')
        return (stubs.udp ?? (async () => ({ url: 'udp://127.0.0.1:2' })))()
      }),
      closeAll: fromPromise(async (): Promise<void> => {
        log.push('close all')
      }),
    },
    actions: { sweepLimiters: () => void log.push('sweep'), sweepPeers: () => void log.push('peers'), retryWrites: () => void log.push('writes') },
    guards: { bucketRetryable: (_, error: unknown) => !(error instanceof Refused) },
  })
  const actor = createActor(machine, { clock, input: { id: 't1', peerSweepMs: 3_000, writeRetryMs: 1_000, ...(maxBucketAttempts ? { maxBucketAttempts } : {}) } })
  const emitted: string[] = []
  actor.on('*', (e) => emitted.push(e.type))
  actor.start()
  return { actor, clock, log, emitted }
}

describe('tracker-server machine', () => {
  it('tracker — opens the bucket, the registry and the NATS, HTTP and UDP doors in order, then listens and says so', async () => {
    const { actor, log, emitted } = harness()
    await waitFor(actor, (s) => s.matches('listening'))
    expect(log).toEqual(['bucket 1', 'registry', 'nats door', 'http door', 'udp door'])
    expect(actor.getSnapshot().context).toMatchObject({ httpUrl: 'http://127.0.0.1:1', udpUrl: 'udp://127.0.0.1:2' })
    expect(emitted).toEqual(['tracker.listening'])
  })

  it('tracker — a bucket not there yet (leader election) is tried again on the clock with growing waits', async () => {
    let ready = false
    const { actor, clock, log } = harness({ bucket: async () => {
      if (!ready) throw new Error('no responders')
    } })
    await waitFor(actor, (s) => s.matches('waitingForBucket'))
    clock.increment(bucketRetryWait(1) - 1)
    expect(log).toEqual(['bucket 1'])
    clock.increment(1)
    await waitFor(actor, (s) => s.matches('waitingForBucket') && s.context.bucketAttempts === 2)
    expect([1, 2, 3, 4, 5, 6].map(bucketRetryWait)).toEqual([100, 200, 400, 800, 1_000, 1_000])
    ready = true
    clock.increment(bucketRetryWait(2))
    await waitFor(actor, (s) => s.matches('listening'))
    expect(log.filter((l) => l.startsWith('bucket'))).toEqual(['bucket 1', 'bucket 2', 'bucket 3'])
  })

  it('tracker — a refused permission on the bucket fails at once; attempts that never succeed fail after the bound, naming the bucket', async () => {
    const refused = harness({ bucket: async () => {
      throw new Refused('Permissions Violation for Publish to $JS.API.STREAM.CREATE.KV_upswarm-peers')
    } })
    const r = await waitFor(refused.actor, (s) => s.status === 'done')
    expect(r.value).toBe('failed')
    expect(refused.log).toEqual(['bucket 1'])
    expect(r.context.failure).toMatchObject({ step: 'openingBucket', code: 'UPSWARM_E_NATS', message: expect.stringMatching(/^tracker t1: cannot open the peer bucket: Permissions Violation.*is JetStream enabled/) })

    const never = harness({ bucket: async () => {
      throw new Error('no responders')
    } }, 3)
    for (let i = 1; i < 3; i++) {
      await waitFor(never.actor, (s) => s.matches('waitingForBucket') && s.context.bucketAttempts === i)
      never.clock.increment(bucketRetryWait(i))
    }
    expect((await waitFor(never.actor, (s) => s.status === 'done')).value).toBe('failed')
    expect(never.log).toEqual(['bucket 1', 'bucket 2', 'bucket 3'])
  })

  it('tracker — sweeps the rate limiters every sweep interval on the clock while listening', async () => {
    const { actor, clock, log } = harness()
    await waitFor(actor, (s) => s.matches('listening'))
    clock.increment(SWEEP_INTERVAL_MS - 1)
    expect(log.filter((l) => l === 'sweep')).toHaveLength(0)
    clock.increment(1)
    clock.increment(SWEEP_INTERVAL_MS)
    expect(log.filter((l) => l === 'sweep')).toHaveLength(2)
  })

  it('tracker — drops expired peers and sends late bucket writes again on clocks of their own, side by side with the limiter sweeps (issue 12: no timers outside the machine)', async () => {
    const { actor, clock, log } = harness()
    await waitFor(actor, (s) => s.matches('listening'))
    const count = (what: string): number => log.filter((l) => l === what).length
    // The simulated clock fires what is due once per increment: time moves a second at a time.
    const advance = (ms: number): void => {
      for (let left = ms; left > 0; left -= 1_000) clock.increment(Math.min(1_000, left))
    }
    clock.increment(999)
    expect([count('peers'), count('writes')]).toEqual([0, 0])
    clock.increment(1)
    expect([count('peers'), count('writes')]).toEqual([0, 1])
    advance(2_000)
    expect([count('peers'), count('writes'), count('sweep')]).toEqual([1, 3, 0])
    advance(SWEEP_INTERVAL_MS - 3_000)
    expect([count('peers'), count('writes'), count('sweep')]).toEqual([3, 10, 1])
    actor.send({ type: 'stop' })
    await waitFor(actor, (s) => s.status === 'done')
    advance(10_000)
    expect([count('peers'), count('writes')]).toEqual([3, 10])
  })

  it('tracker — a door that cannot listen closes what was opened and ends in failed, naming the door; stop closes and says stopped', async () => {
    const busy = harness({ udp: async () => {
      throw new Error('listen EADDRINUSE 127.0.0.1:6969')
    } })
    const s = await waitFor(busy.actor, (x) => x.status === 'done')
    expect(s.value).toBe('failed')
    expect(busy.log.at(-1)).toBe('close all')
    expect(s.context.failure).toMatchObject({ step: 'openingUdpDoor', code: 'UPSWARM_E_CONFIG', message: 'tracker t1: cannot listen for UDP: listen EADDRINUSE 127.0.0.1:6969; choose free ports' })
    expect(busy.emitted).toEqual([])

    const ok = harness()
    await waitFor(ok.actor, (x) => x.matches('listening'))
    ok.actor.send({ type: 'stop' })
    expect((await waitFor(ok.actor, (x) => x.status === 'done')).value).toBe('stopped')
    expect(ok.log.at(-1)).toBe('close all')
    expect(ok.emitted).toEqual(['tracker.listening', 'tracker.stopped'])
  })
})
