// Issue 16 item 3: when a client sends its fleet report, on the machine's own clock
// (SimulatedClock, no sleeps): a change at once when nothing went for 10 s, changes within 10 s
// as one report at its end, a heartbeat when nothing changes, never two reports within 10 s.
import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor } from 'xstate'
import { FLEET_REPORT_HEARTBEAT_MS, FLEET_REPORT_MIN_INTERVAL_MS, fleetReportMachine } from '../../machines/fleet-report.machine.ts'

function reporter() {
  const clock = new SimulatedClock()
  const sent: number[] = []
  const actor = createActor(fleetReportMachine.provide({ actions: { send: () => { sent.push(clock.now()) } } }), { clock })
  actor.start()
  // In steps: a timer set while the clock moves (the heartbeat, once the quiet interval ends) runs in a later step.
  const advance = (ms: number): void => {
    for (let t = 0; t < ms; t += 1_000) clock.increment(Math.min(1_000, ms - t))
  }
  return { actor, clock, sent, advance }
}

describe('fleet report machine', () => {
  it('fleet — the first change goes at once; changes within the next 10 s go as one report when they end', () => {
    const { actor, clock, sent } = reporter()
    actor.send({ type: 'changed' })
    expect(sent).toEqual([0])
    for (let i = 0; i < 9; i++) {
      clock.increment(1_000)
      actor.send({ type: 'changed' })
    }
    expect(sent).toEqual([0])
    clock.increment(1_000)
    expect(sent).toEqual([0, FLEET_REPORT_MIN_INTERVAL_MS])
    // Nothing more changed: the next interval ends without a report, and a change after it goes at once.
    clock.increment(FLEET_REPORT_MIN_INTERVAL_MS)
    expect(sent).toHaveLength(2)
    clock.increment(5_000)
    actor.send({ type: 'changed' })
    expect(sent).toEqual([0, FLEET_REPORT_MIN_INTERVAL_MS, 2 * FLEET_REPORT_MIN_INTERVAL_MS + 5_000])
  })

  it('fleet — a change every 100 ms for 10 minutes sends at most one report per 10 s', () => {
    const { actor, clock, sent } = reporter()
    const minutes = 10
    for (let t = 0; t < minutes * 60_000; t += 100) {
      actor.send({ type: 'changed' })
      clock.increment(100)
    }
    // One at 0, then one as each interval ends: 0, 10 s, …, 600 s.
    expect(sent.length).toBe(minutes * 60_000 / FLEET_REPORT_MIN_INTERVAL_MS + 1)
    for (let i = 1; i < sent.length; i++) expect(sent[i]! - sent[i - 1]!).toBeGreaterThanOrEqual(FLEET_REPORT_MIN_INTERVAL_MS)
  })

  it('fleet — with nothing changing, the report is sent again as a heartbeat; stopped, nothing more is sent', () => {
    const { actor, sent, advance } = reporter()
    actor.send({ type: 'changed' })
    advance(FLEET_REPORT_HEARTBEAT_MS)
    expect(sent).toEqual([0, FLEET_REPORT_HEARTBEAT_MS])
    advance(FLEET_REPORT_HEARTBEAT_MS)
    expect(sent).toEqual([0, FLEET_REPORT_HEARTBEAT_MS, 2 * FLEET_REPORT_HEARTBEAT_MS])
    actor.send({ type: 'changed' })
    actor.send({ type: 'stop' })
    advance(10 * FLEET_REPORT_HEARTBEAT_MS)
    expect(sent).toHaveLength(3)
    expect(actor.getSnapshot().status).toBe('done')
  })
})
