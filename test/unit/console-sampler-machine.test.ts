// Issue 16 item 4: the console's sampler on its own clock (SimulatedClock, stub readings through
// `.provide`): a reading every interval, the series bounded to its newest points, a reading asked
// for during one taken right after it, and a failed reading keeping the previous one with why.
import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor, fromPromise, waitFor } from 'xstate'
import { consoleSamplerMachine, type ConsoleReading } from '../../machines/console-sampler.machine.ts'

function sampler(read: (n: number) => Promise<ConsoleReading>, maxPoints = 3) {
  const clock = new SimulatedClock()
  let n = 0
  const actor = createActor(consoleSamplerMachine.provide({ actors: { sample: fromPromise(() => read(++n)) } }), { clock, input: { intervalMs: 1_000, maxPoints } })
  return { actor, clock, calls: () => n }
}

const reading = (n: number): ConsoleReading => ({ at: new Date(n * 1_000).toISOString(), counts: { p: { '1': n } }, data: { n } })

describe('console sampler machine', () => {
  it('console sampler — reads at start and every interval; the series keeps the newest maxPoints readings', async () => {
    const { actor, clock } = sampler(async (n) => reading(n))
    actor.start()
    await waitFor(actor, (s) => s.matches('waiting') && s.context.readings === 1)
    for (let i = 2; i <= 5; i++) {
      clock.increment(1_000)
      await waitFor(actor, (s) => s.matches('waiting') && s.context.readings === i)
    }
    const c = actor.getSnapshot().context
    expect(c.series.map((p) => p.counts.p!['1'])).toEqual([3, 4, 5])
    expect(c.latest?.data).toEqual({ n: 5 })
    actor.send({ type: 'stop' })
    expect(actor.getSnapshot().status).toBe('done')
  })

  it('console sampler — sample.now while waiting reads at once; while reading, once more right after', async () => {
    const gates: Array<() => void> = []
    const { actor, calls } = sampler((n) => new Promise((resolve) => gates.push(() => resolve(reading(n)))))
    actor.start()
    expect(actor.getSnapshot().matches('sampling')).toBe(true)
    actor.send({ type: 'sample.now' })
    gates.shift()!()
    // The first reading ends and, asked again meanwhile, a second starts without waiting for the clock.
    await waitFor(actor, (s) => s.context.readings === 1)
    expect(actor.getSnapshot().matches('sampling')).toBe(true)
    expect(calls()).toBe(2)
    gates.shift()!()
    await waitFor(actor, (s) => s.matches('waiting') && s.context.readings === 2)
    actor.send({ type: 'sample.now' })
    expect(actor.getSnapshot().matches('sampling')).toBe(true)
    expect(calls()).toBe(3)
  })

  it('console sampler — a failed reading keeps the previous one and says why; the next good one clears it', async () => {
    const { actor, clock } = sampler(async (n) => {
      if (n === 2) throw new Error('no responders on the fleet stream')
      return reading(n)
    })
    actor.start()
    await waitFor(actor, (s) => s.matches('waiting') && s.context.readings === 1)
    clock.increment(1_000)
    await waitFor(actor, (s) => s.matches('waiting') && s.context.error !== null)
    expect(actor.getSnapshot().context).toMatchObject({ readings: 1, latest: { data: { n: 1 } }, error: { message: 'no responders on the fleet stream' } })
    clock.increment(1_000)
    await waitFor(actor, (s) => s.matches('waiting') && s.context.readings === 2)
    expect(actor.getSnapshot().context).toMatchObject({ error: null, latest: { data: { n: 3 } } })
  })
})
