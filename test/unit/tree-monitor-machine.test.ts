// Issue 13 item 2: the file monitor's statechart with a stub walk (`.provide`): it watches once
// its walk is done, walks again when the watches lost events (and says why), stops with the
// reason when a walk fails, and stops when asked.
import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, waitFor } from 'xstate'
import { treeMonitorMachine } from '../../machines/tree-monitor.machine.ts'

function monitor(walk: (n: number) => Promise<void>) {
  let n = 0
  const actor = createActor(treeMonitorMachine.provide({ actors: { walk: fromPromise(() => walk(++n)) } }))
  return { actor, calls: () => n }
}

describe('tree monitor machine', () => {
  it('tree monitor — walks, then watches; lost events make it walk again, and it keeps why', async () => {
    const { actor, calls } = monitor(async () => {})
    actor.start()
    await waitFor(actor, (s) => s.matches('watching'))
    expect(actor.getSnapshot().context).toMatchObject({ walks: 1, lostBecause: null })
    actor.send({ type: 'watch.lost', why: '9000 events in one read' })
    await waitFor(actor, (s) => s.matches('watching') && s.context.walks === 2)
    expect(actor.getSnapshot().context.lostBecause).toBe('9000 events in one read')
    expect(calls()).toBe(2)
    actor.send({ type: 'stop' })
    expect(actor.getSnapshot().value).toBe('stopped')
    expect(actor.getSnapshot().status).toBe('done')
  })

  it('tree monitor — a failed walk stops it with the reason', async () => {
    const { actor } = monitor(async () => {
      throw new Error('cannot watch /x: the inotify watch limit is reached')
    })
    actor.start()
    await waitFor(actor, (s) => s.status === 'done')
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().context.error).toBe('cannot watch /x: the inotify watch limit is reached')
  })

  it('tree monitor — stop while walking ends it without watching', async () => {
    const { actor } = monitor(() => new Promise(() => {}))
    actor.start()
    expect(actor.getSnapshot().value).toBe('walking')
    actor.send({ type: 'stop' })
    expect(actor.getSnapshot().value).toBe('stopped')
  })
})
