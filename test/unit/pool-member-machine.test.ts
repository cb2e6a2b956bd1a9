import { describe, expect, it } from 'vitest'
import { SimulatedClock, createActor } from 'xstate'
import { QUARANTINE_MS, poolMemberMachine, type MemberStatus } from '../../machines/pool-member.machine.ts'

const status: MemberStatus = { weight: 1, synced: { p: 1 }, requests: 0, bytesServed: 0, inflight: 0 }

function healthyMember() {
  const clock = new SimulatedClock()
  const actor = createActor(poolMemberMachine, { input: { id: 's1', status, at: 0 }, clock })
  actor.start()
  actor.send({ type: 'heartbeat', status, at: 0 })
  expect(actor.getSnapshot().value).toBe('healthy')
  return { actor, clock }
}

describe('pool member machine', () => {
  it('proxy — a server that sent bad bytes is quarantined: heartbeats keep it known but not healthy until the quarantine ends', () => {
    const { actor, clock } = healthyMember()
    actor.send({ type: 'server.suspect', reason: 'piece 0 of blob x does not match' })
    expect(actor.getSnapshot().value).toBe('quarantined')
    expect(actor.getSnapshot().context.suspectReason).toContain('piece 0')
    for (let t = 1000; t < QUARANTINE_MS; t += 1000) {
      clock.increment(1000)
      actor.send({ type: 'heartbeat', status: { ...status, requests: t }, at: t })
      expect(actor.getSnapshot().value).toBe('quarantined')
    }
    expect(actor.getSnapshot().context.status.requests).toBe(QUARANTINE_MS - 1000)
    clock.increment(1000)
    expect(actor.getSnapshot().value).toBe('suspect')
    actor.send({ type: 'heartbeat', status, at: QUARANTINE_MS + 1 })
    expect(actor.getSnapshot().value).toBe('healthy')
  })

  it('proxy — a quarantined server whose heartbeats stop goes down after its quarantine', () => {
    const { actor, clock } = healthyMember()
    actor.send({ type: 'server.suspect', reason: 'bad bytes' })
    clock.increment(QUARANTINE_MS)
    expect(actor.getSnapshot().value).toBe('suspect')
    clock.increment(3000)
    expect(actor.getSnapshot().value).toBe('down')
  })
})
