import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, waitFor } from 'xstate'
import { serverSyncMachine, type PendingRelease } from '../../machines/server-sync.machine.ts'

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
  return { actor: createActor(machine, { input: { serverId: 's1' } }), acks }
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
})
