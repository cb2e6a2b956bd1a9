// Issue 12 item 1: the notary's re-signing interval is its statechart's clock — every interval
// on the SimulatedClock signs everything again, and nothing after stop.
import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor } from 'xstate'
import { notaryMachine } from '../../machines/notary.machine.ts'

describe('notary machine', () => {
  it('notary — signs every product again each interval on the clock, and never after stop', () => {
    const clock = new SimulatedClock()
    let resigned = 0
    const actor = createActor(notaryMachine.provide({ actions: { resignAll: () => void resigned++ } }), { clock, input: { intervalMs: 60_000 } })
    actor.start()
    clock.increment(59_999)
    expect(resigned).toBe(0)
    clock.increment(1)
    expect(resigned).toBe(1)
    clock.increment(60_000)
    expect(resigned).toBe(2)
    actor.send({ type: 'stop' })
    expect(actor.getSnapshot().status).toBe('done')
    clock.increment(600_000)
    expect(resigned).toBe(2)
  })
})
