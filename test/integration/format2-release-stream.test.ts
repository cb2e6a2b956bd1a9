// docs/formats.md §1.8 (issue 13 item 3): format-2 release documents on UPSWARM_META. Only a
// publisher appends, each revision once and in chain order (the subject's expected last sequence
// is the serialization point); a client in the CLIENTS account reads any revision with a few
// direct gets; a message on the subject that is not a release is skipped, never fatal.
import { jetstream } from '@nats-io/jetstream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appendRelease2, followReleases2, newestRelease2, readRelease2 } from '../../infra/formats/release-stream.ts'
import { signRelease, type ReleaseDraft } from '../../infra/formats/release.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { META_STREAM, release2Subject } from '../../infra/nats/names.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { newProduct, replicasCaughtUp, roleConnection } from '../helpers/cluster.ts'

const key = generatePublisherKey()
const draft = (product: string, rev: number, parent: string | undefined, tree = 'ab'.repeat(32)): ReleaseDraft =>
  ({ product, rev, ...(parent ? { parent } : {}), createdAtMs: Date.now(), root: 1, tree, stats: { files: 1, bytes: 1, nodes: 1 } })

describe('format-2 release stream', () => {
  let publisher: NatsConnection
  let client: NatsConnection
  beforeAll(async () => {
    publisher = await roleConnection({ kind: 'publisher', name: 'f2-publisher' })
    client = await roleConnection({ kind: 'client', name: 'f2-client' })
  })
  afterAll(async () => {
    await publisher?.close()
    await client?.close()
  })

  /** Appends r1…rN of `product` in order; returns their ids. */
  async function appendChain(product: string, n: number, ids: string[] = []): Promise<string[]> {
    for (let rev = ids.length + 1; rev <= n; rev++) {
      const r = signRelease(draft(product, rev, ids[rev - 2]), [key])
      expect(await appendRelease2(publisher, r.bytes.toString('utf8'))).toMatchObject({ rev, id: r.id })
      ids.push(r.id)
    }
    await replicasCaughtUp(META_STREAM)
    return ids
  }

  it('releases — a client follows its product\'s release documents as the stream stores them: each once, with its sequence, none of another product', async () => {
    const [mine, other] = [newProduct(), newProduct()]
    const got: Array<{ rev: number; seq: number }> = []
    const errors: Error[] = []
    const two = new Promise<void>((resolve) => {
      const follow = followReleases2(client, mine, (text, seq) => {
        got.push({ rev: (JSON.parse(text) as { signed: { rev: number } }).signed.rev, seq })
        if (got.length === 2) {
          follow.stop()
          resolve()
        }
      }, { onError: (err) => errors.push(err) })
    })
    await client.flush()
    await appendChain(other, 1)
    await appendChain(mine, 2)
    await two
    expect(errors).toEqual([])
    expect(got.map((g) => g.rev)).toEqual([1, 2])
    expect(got[1]!.seq).toBeGreaterThan(got[0]!.seq)
    expect((await readRelease2(client, mine, 2))?.seq).toBe(got[1]!.seq)
  })

  it('releases — r1…r6 of one product interleaved with another\'s; a client reads any revision and the newest; a missing one is undefined', async () => {
    const [a, b] = [newProduct(), newProduct()]
    const idsA: string[] = []
    const idsB: string[] = []
    for (let i = 1; i <= 6; i++) {
      await appendChain(a, i, idsA)
      if (i <= 3) await appendChain(b, i, idsB)
    }
    for (const rev of [1, 4, 6]) expect((await readRelease2(client, a, rev))?.signed).toMatchObject({ id: idsA[rev - 1], release: { product: a, rev } })
    expect((await readRelease2(client, b, 2))?.signed.id).toBe(idsB[1])
    expect(await readRelease2(client, a, 7)).toBeUndefined()
    expect((await newestRelease2(client, a))?.signed.release.rev).toBe(6)
    expect(await newestRelease2(client, newProduct())).toBeUndefined()
  })

  it('releases — a revision that does not follow the newest is refused; a first release past r1 starts parentless; of two concurrent appends of one revision exactly one lands', async () => {
    const p = newProduct()
    // A product with format-1 history: its first format-2 release continues the numbering, parentless.
    const first = newProduct()
    const r37 = signRelease(draft(first, 37, undefined), [key])
    expect(await appendRelease2(publisher, r37.bytes.toString())).toMatchObject({ rev: 37 })
    await expect(appendRelease2(publisher, signRelease(draft(first, 38, undefined), [key]).bytes.toString())).rejects.toMatchObject({ code: 'UPSWARM_E_CONFLICT' })
    expect(await appendRelease2(publisher, signRelease(draft(first, 38, r37.id), [key]).bytes.toString())).toMatchObject({ rev: 38 })
    const ids = await appendChain(p, 2)
    await expect(appendRelease2(publisher, signRelease(draft(p, 4, ids[1]), [key]).bytes.toString())).rejects.toMatchObject({ code: 'UPSWARM_E_CONFLICT', message: expect.stringMatching(/does not follow the stream's newest \(r2/) })
    await expect(appendRelease2(publisher, signRelease(draft(p, 3, 'cd'.repeat(32)), [key]).bytes.toString())).rejects.toMatchObject({ code: 'UPSWARM_E_CONFLICT' })
    const racers = ['11', '22'].map((t) => signRelease(draft(p, 3, ids[1], t.repeat(32)), [key]).bytes.toString())
    const outcomes = await Promise.allSettled(racers.map((text) => appendRelease2(publisher, text)))
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1)
    expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({ reason: { code: 'UPSWARM_E_CONFLICT' } })
    await replicasCaughtUp(META_STREAM)
    expect((await newestRelease2(client, p))?.signed.release.rev).toBe(3)
  })

  it('releases — junk on the subject is skipped and reported; the next release still appends after the newest real one; a client cannot append', async () => {
    const p = newProduct()
    const ids = await appendChain(p, 2)
    await jetstream(publisher).publish(release2Subject(p), 'not a release')
    await replicasCaughtUp(META_STREAM)
    // The publisher's read (through the stream leader, as publish does) sees the junk for certain…
    const skipped: number[] = []
    expect((await newestRelease2(publisher, p, { leader: true, onSkip: (seq) => skipped.push(seq) }))?.signed.release.rev).toBe(2)
    expect(skipped).toHaveLength(1)
    // …and a client's (any replica) finds r2 as the newest release too, junk or no junk yet.
    expect((await newestRelease2(client, p))?.signed.release.rev).toBe(2)
    await appendChain(p, 3, ids)
    expect((await readRelease2(client, p, 3))?.signed.id).toBe(ids[2])
    expect((await readRelease2(client, p, 1))?.signed.id).toBe(ids[0])
    await expect(appendRelease2(client, signRelease(draft(p, 4, ids[2]), [key]).bytes.toString())).rejects.toThrow()
    expect((await newestRelease2(client, p))?.signed.release.rev).toBe(3)
  })
})
