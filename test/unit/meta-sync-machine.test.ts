// docs/formats.md §5 step 5: the repository server's format-2 sync as a statechart — each release
// handed by the consumer is synced then acknowledged, a refused one is acknowledged as refused at
// once, a failing copy is tried again and finally given up so the next ones go on.
import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, waitFor } from 'xstate'
import { metaSyncMachine, type MetaOutcome, type MetaSyncEmitted, type PendingMeta } from '../../machines/meta-sync.machine.ts'

function run(queue: PendingMeta[], sync: (r: PendingMeta, attempt: number) => Promise<MetaOutcome>, maxAttempts = 3) {
  const acks: { seq: number; outcome: MetaOutcome }[] = []
  const emitted: MetaSyncEmitted[] = []
  const tries = new Map<number, number>()
  const machine = metaSyncMachine.provide({
    actors: {
      prepareConsumer: fromPromise(async () => {}),
      nextRelease: fromPromise(async () => queue.shift() ?? null),
      syncRelease: fromPromise(async ({ input }) => {
        const n = (tries.get(input.release.seq) ?? 0) + 1
        tries.set(input.release.seq, n)
        return sync(input.release, n)
      }),
      acknowledge: fromPromise(async ({ input }) => {
        acks.push({ seq: input.release.seq, outcome: input.outcome })
      }),
    },
  })
  const actor = createActor(machine, { input: { serverId: 's', retryMs: 1, maxAttempts } })
  for (const t of ['release2.synced', 'release2.refused', 'meta.failed'] as const) actor.on(t, (e) => emitted.push(e))
  actor.start()
  return { actor, acks, emitted, tries }
}

describe('meta sync machine', () => {
  it('repo-server — format-2 releases are synced and acknowledged in order; a refused one is acknowledged as refused, not retried', async () => {
    const { actor, acks, emitted, tries } = run(
      [{ seq: 3, product: 'p', rev: 1 }, { seq: 5, product: 'p', rev: 2 }, { seq: 8, product: '', rev: 0 }],
      async (r) => (r.rev === 0 ? { kept: false, reason: 'not a release' } : { kept: true }),
    )
    await waitFor(actor, () => acks.length === 3)
    expect(acks).toEqual([{ seq: 3, outcome: { kept: true } }, { seq: 5, outcome: { kept: true } }, { seq: 8, outcome: { kept: false, reason: 'not a release' } }])
    expect(emitted).toEqual([
      { type: 'release2.synced', seq: 3, product: 'p', rev: 1 },
      { type: 'release2.synced', seq: 5, product: 'p', rev: 2 },
      { type: 'release2.refused', seq: 8, product: '', rev: 0, reason: 'not a release' },
    ])
    expect(tries.get(8)).toBe(1)
    actor.send({ type: 'stop' })
    expect(actor.getSnapshot().status).toBe('done')
  })

  it('repo-server — a copy that fails is tried again; after maxAttempts it is given up with the reason and the next release goes on', async () => {
    const { actor, acks, tries, emitted } = run(
      [{ seq: 2, product: 'p', rev: 1 }, { seq: 4, product: 'p', rev: 2 }, { seq: 6, product: 'q', rev: 1 }],
      async (r, attempt) => {
        if (r.seq === 2 && attempt < 2) throw new Error('object store busy')
        if (r.seq === 4) throw new Error('node abc is not in the object store')
        return { kept: true }
      },
      3,
    )
    await waitFor(actor, () => acks.length === 3)
    expect(tries.get(2)).toBe(2)
    expect(tries.get(4)).toBe(3)
    expect(acks.map((a) => a.outcome)).toEqual([{ kept: true }, { kept: false, reason: 'gave up after 3 tries: node abc is not in the object store' }, { kept: true }])
    expect(emitted.filter((e) => e.type === 'meta.failed')).toHaveLength(3)
    actor.send({ type: 'stop' })
  })
})
