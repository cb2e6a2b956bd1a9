// Issue 12 item 1: a publish as a statechart — scan → upload → sign → append → feed as states, an
// unchanged tree appending nothing, a lost race for the revision reading the chain again, and
// every failure a `failed` state naming its phase with a clear message.
import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, toPromise } from 'xstate'
import type { SignedRelease } from '../../infra/release/manifest.ts'
import { publishMachine, type ChainRead, type Claim, type Deltas, type PublishPhase, type ScannedTree, type Uploaded } from '../../machines/publish.machine.ts'

const PRODUCT = '00000000-0000-4000-8000-000000000001'

const release = (rev: number): SignedRelease => ({ manifest: { rev }, publicKey: 'k', signature: 's' }) as unknown as SignedRelease

class Raced extends Error {}

interface Stubs {
  claim?: () => Promise<{ keys: string[]; pinned: boolean }>
  read?: (n: number, mine: SignedRelease | undefined) => Promise<ChainRead>
  append?: (n: number, release: SignedRelease) => Promise<{ seq: number }>
}

async function run(stubs: Stubs, maxRevAttempts?: number) {
  const phases: PublishPhase[] = []
  const calls = { read: 0, sign: [] as number[], append: 0, feed: [] as { rev: number; seq: number }[] }
  const machine = publishMachine.provide({
    actors: {
      claim: fromPromise(stubs.claim ?? (async () => ({ keys: ['k'], pinned: false }))),
      scan: fromPromise(async (): Promise<ScannedTree> => ({ entries: [], files: new Map<string, string>() })),
      upload: fromPromise(async () => ({ newBlobs: 2, newBytes: 10 })),
      readChain: fromPromise(async ({ input }) => {
        calls.read++
        return (stubs.read ?? (async () => ({ head: null, lastSeq: 0, headIsOurs: false, headSameContent: false, skipped: [] })))(calls.read, input.mine)
      }),
      sign: fromPromise(async ({ input }) => {
        calls.sign.push(input.rev)
        return release(input.rev)
      }),
      append: fromPromise(async ({ input }) => {
        calls.append++
        return (stubs.append ?? (async () => ({ seq: 7 })))(calls.append, input.release)
      }),
      feed: fromPromise(async ({ input }) => {
        calls.feed.push({ rev: input.release.manifest.rev, seq: input.seq })
        return { appended: true as const, length: input.release.manifest.rev, added: 1, servers: 1 }
      }),
    },
    guards: { raced: (_, error: unknown) => error instanceof Raced },
  })
  const actor = createActor(machine, { input: { product: PRODUCT, ...(maxRevAttempts ? { maxRevAttempts } : {}) } })
  actor.on('publish.phase', (e) => phases.push(e.phase))
  actor.start()
  actor.send({ type: 'publish.start' })
  return { output: await toPromise(actor), phases, calls }
}

const head = (rev: number, seq: number, extra: Partial<ChainRead> = {}): ChainRead => ({
  head: { release: release(rev), seq, manifestSha256: `sha-${rev}` }, lastSeq: seq, headIsOurs: false, headSameContent: false, skipped: [], ...extra,
})

describe('publish machine', () => {
  it('publisher — a new tree goes claim → scan → upload → read → sign r(head+1) → append → feed, and reports the appended release', async () => {
    const { output, phases, calls } = await run({ read: async () => head(3, 11) })
    expect(phases).toEqual(['claiming', 'scanning', 'uploading', 'reading', 'signing', 'appending', 'feeding'])
    expect(calls.sign).toEqual([4])
    expect(calls.feed).toEqual([{ rev: 4, seq: 7 }])
    expect(output).toMatchObject({ outcome: 'done', appended: true, seq: 7, uploaded: { newBlobs: 2 }, feed: { appended: true } })
    expect(output.release!.manifest.rev).toBe(4)
  })

  it('publisher — a tree equal to the newest release signs and appends nothing, and still brings the feed up to it', async () => {
    const { output, phases, calls } = await run({ read: async () => head(5, 20, { headSameContent: true }) })
    expect(phases).toEqual(['claiming', 'scanning', 'uploading', 'reading', 'feeding'])
    expect(calls).toMatchObject({ sign: [], append: 0, feed: [{ rev: 5, seq: 20 }] })
    expect(output).toMatchObject({ outcome: 'done', appended: false })
  })

  it('publisher — an append that lost the race reads the chain again and numbers anew; skipped messages of every read are kept once', async () => {
    const junk = { seq: 12, reason: 'not a release' } as unknown as ChainRead['skipped'][number]
    const { output, calls } = await run({
      read: async (n) => (n === 1 ? head(3, 11, { skipped: [junk] }) : head(4, 13, { skipped: [junk] })),
      append: async (n) => {
        if (n === 1) throw new Raced('wrong last sequence')
        return { seq: 14 }
      },
    })
    expect(calls.sign).toEqual([4, 5])
    expect(output).toMatchObject({ outcome: 'done', appended: true, seq: 14 })
    expect(output.skipped).toEqual([junk])
  })

  it('publisher — an append whose earlier try was stored (head is ours) counts as appended, without signing again', async () => {
    const { output, calls } = await run({
      read: async (n, mine) => (n === 1 ? head(3, 11) : head(mine!.manifest.rev, 12, { headIsOurs: true })),
      append: async () => {
        throw new Raced('wrong last sequence')
      },
    })
    expect(calls.sign).toEqual([4])
    expect(output).toMatchObject({ outcome: 'done', appended: true, seq: 12 })
  })

  it('publisher — racing appends that never stop fail after maxRevAttempts with a message that says so', async () => {
    const { output, calls } = await run({
      read: async (n) => head(n, n),
      append: async () => {
        throw new Raced('wrong last sequence')
      },
    }, 3)
    expect(calls.append).toBe(3)
    expect(output.outcome).toBe('failed')
    expect(output.failure).toMatchObject({ phase: 'appending', code: 'UPSWARM_E_PUBLISH', message: `gave up after 3 concurrent appends to ${PRODUCT}'s subject raced this one; retry` })
  })

  it('publisher — any other append error fails with the revision and product named; a refused claim fails before anything is scanned', async () => {
    const appendFails = await run({ append: async () => {
      throw new Error('timeout')
    } })
    expect(appendFails.output.failure).toMatchObject({ phase: 'appending', message: `cannot append revision 1 of ${PRODUCT} to the release stream: timeout` })

    const refused = Object.assign(new Error('key k2 is not a publish key of product …'), { code: 'UPSWARM_E_CONFIG' })
    const claimFails = await run({ claim: async () => {
      throw refused
    } })
    expect(claimFails.phases).toEqual(['claiming'])
    expect(claimFails.output.failure).toMatchObject({ phase: 'claiming', code: 'UPSWARM_E_CONFIG', message: refused.message, cause: refused })
  })

  /** The format-2 path: claim with `formats`, the format-2 actors stubbed, every call recorded. */
  async function run2(formats: number[], reads: ChainRead[], deltas: () => Promise<Deltas> = async () => ({ indexes: ['d1'], deltas: 2, deltaBytes: 10, targetBytes: 100, uploaded: 2 })) {
    const phases: PublishPhase[] = []
    const calls: string[] = []
    const machine = publishMachine.provide({
      actors: {
        claim: fromPromise(async (): Promise<Claim> => ({ keys: ['k'], pinned: false, formats, rootVersion: 1 })),
        scan: fromPromise(async (): Promise<ScannedTree> => ({ entries: [], files: new Map<string, string>() })),
        upload: fromPromise(async (): Promise<Uploaded> => ({ newBlobs: 0, newBytes: 0, newNodes: 3 })),
        readChain: fromPromise(async () => {
          calls.push('read')
          return reads.shift()!
        }),
        repair: fromPromise(async () => {
          calls.push('repair')
        }),
        sign: fromPromise(async ({ input }) => {
          calls.push(`sign r${input.rev}`)
          return release(input.rev)
        }),
        encodeDeltas: fromPromise(async ({ input }) => {
          calls.push(`deltas over ${input.head2?.tree ?? 'none'}`)
          return deltas()
        }),
        sign2: fromPromise(async ({ input }) => {
          calls.push(`sign2 r${input.rev} v1=${input.v1 ? input.v1.manifest.rev : 'none'} parent=${input.head2?.id ?? 'none'} deltas=${input.deltas.join(',') || 'none'}`)
          return { text: '{}', id: `id-${input.rev}`, rev: input.rev }
        }),
        append2: fromPromise(async ({ input }) => {
          calls.push(`append2 r${input.release.rev}`)
          return { seq: 40 }
        }),
        append: fromPromise(async ({ input }) => {
          calls.push(`append r${input.release.manifest.rev}`)
          return { seq: 41 }
        }),
        feed: fromPromise(async ({ input }) => {
          calls.push(`feed r${input.release.manifest.rev}`)
          return { appended: true as const, length: 1, added: 1, servers: 1 }
        }),
      },
    })
    const actor = createActor(machine, { input: { product: PRODUCT } })
    actor.on('publish.phase', (e) => phases.push(e.phase))
    actor.start()
    actor.send({ type: 'publish.start' })
    return { output: await toPromise(actor), phases, calls }
  }
  const head2 = (rev: number, extra: Partial<ChainRead> = {}): ChainRead => ({ ...head(rev, 11), head2: { rev, id: `id-${rev}`, seq: 30, tree: 't' }, ...extra })

  it('publisher — formats [1, 2]: a gap is repaired first; then the format-2 release (naming the format-1 manifest) is appended before the format-1 one, and the feed follows', async () => {
    const { output, phases, calls } = await run2([1, 2], [head2(3, { head: head(2, 10).head, gap: true }), head2(3)])
    expect(calls).toEqual(['read', 'repair', 'read', 'sign r4', 'deltas over t', 'sign2 r4 v1=4 parent=id-3 deltas=d1', 'append2 r4', 'append r4', 'feed r4'])
    expect(phases).toEqual(['claiming', 'scanning', 'uploading', 'reading', 'repairing', 'reading', 'signing', 'encoding', 'signing', 'appending', 'appending', 'feeding'])
    expect(output).toMatchObject({ outcome: 'done', appended: true, seq: 41, release2: { id: 'id-4', rev: 4, seq: 40 }, deltas: { indexes: ['d1'], deltas: 2 } })
  })

  it('publisher — issue 15: deltas that cannot be made cost bytes, never the release: it is signed without them, with the reason', async () => {
    const { output, calls } = await run2([2], [head2(3)], async () => {
      throw new Error('object store unreachable')
    })
    expect(calls).toEqual(['read', 'deltas over t', 'sign2 r4 v1=none parent=id-3 deltas=none', 'append2 r4'])
    expect(output).toMatchObject({ outcome: 'done', appended: true, release2: { rev: 4 }, deltaWarning: expect.stringMatching(/no deltas for this release .*object store unreachable/) })
    expect(output.deltas).toBeUndefined()
  })

  it('publisher — formats [2]: only the format-2 release is signed and appended; no format-1 manifest, no feed', async () => {
    const { output, calls } = await run2([2], [{ head: null, lastSeq: 0, headIsOurs: false, headSameContent: false, skipped: [] }])
    expect(calls).toEqual(['read', 'deltas over none', 'sign2 r1 v1=none parent=none deltas=d1', 'append2 r1'])
    expect(output).toMatchObject({ outcome: 'done', appended: true, release2: { rev: 1 } })
    expect(output.release).toBeUndefined()
    expect(output.feed).toBeUndefined()
  })
})

