// docs/formats.md §1.3 (issue 13 item 3): a format-2 release is a small signed document over the
// top tree node's hash; it is checked against the root's publish role of its product (threshold,
// minRev, root version) and chained to its parent by the hash of the parent's signed bytes.
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { encodeEnvelope, signEnvelope } from '../../infra/formats/envelope.ts'
import { checkReleaseChain, signRelease, verifyRelease, type ReleaseDraft } from '../../infra/formats/release.ts'
import { rootBody, signRoot, type Root } from '../../infra/formats/root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'

const rootKey = generatePublisherKey()
const freshKey = generatePublisherKey()
const [pubA, pubB, stranger] = [generatePublisherKey(), generatePublisherKey(), generatePublisherKey()]
const product = randomUUID()

function rootWith(opts: { threshold?: number; minRev?: number; version?: number } = {}): Root {
  const body = rootBody({
    version: opts.version ?? 3, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [freshKey.publicKey],
    products: { [product]: { publish: [pubA.publicKey, pubB.publicKey], ...(opts.minRev ? { minRev: opts.minRev } : {}) } },
  }) as { products: Record<string, { publish: { threshold: number } }> }
  body.products[product]!.publish.threshold = opts.threshold ?? 1
  return signRoot(body as unknown as Record<string, unknown>, [rootKey]).root
}
const draft = (rev: number, parent?: string): ReleaseDraft => ({
  product, rev, ...(parent ? { parent } : {}), createdAtMs: Date.UTC(2026, 10, 30), root: 3, tree: 'ab'.repeat(32), stats: { files: 10, bytes: 1000, nodes: 2 },
})

describe('format-2 release documents', () => {
  it('release — a release signed by a publish key verifies, is about 1 KB, and its successor chains to it by the hash of its signed bytes', () => {
    const root = rootWith()
    const r1 = signRelease(draft(1), [pubA])
    expect(r1.bytes.length).toBeLessThan(1024)
    const v1 = verifyRelease(r1.bytes, root, 'test')
    expect(v1.id).toBe(r1.id)
    expect(v1.release).toMatchObject({ rev: 1, tree: 'ab'.repeat(32), chunker: { id: 'fastcdc-2020' } })
    const r2 = verifyRelease(signRelease(draft(2, r1.id), [pubB]).bytes, root, 'test')
    expect(() => checkReleaseChain(v1, r2, 'test')).not.toThrow()
    const forked = verifyRelease(signRelease(draft(2, 'cd'.repeat(32)), [pubB]).bytes, root, 'test')
    expect(() => checkReleaseChain(v1, forked, 'test')).toThrow(/does not follow r1 .*forked or reordered/)
  })

  it('release — too few publish signatures, a stranger\'s key, a revision below minRev, a newer root than held, an unknown product are each refused by name', () => {
    expect(() => verifyRelease(signRelease(draft(1), [pubA]).bytes, rootWith({ threshold: 2 }), 'test')).toThrow(/carries 1 valid signature\(s\) .* it needs 2/)
    expect(() => verifyRelease(signRelease(draft(1), [pubA, pubB]).bytes, rootWith({ threshold: 2 }), 'test')).not.toThrow()
    expect(() => verifyRelease(signRelease(draft(1), [stranger]).bytes, rootWith(), 'test')).toThrow(/carries 0 valid signature/)
    expect(() => verifyRelease(signRelease(draft(2, 'cd'.repeat(32)), [pubA]).bytes, rootWith({ minRev: 5 }), 'test')).toThrow(/from r5 only \(a compromise was declared\)/)
    expect(() => verifyRelease(signRelease(draft(1), [pubA]).bytes, rootWith({ version: 2 }), 'test')).toThrow(/signed under root version 3; this client holds version 2/)
    const other = signRelease({ ...draft(1), product: randomUUID() }, [pubA])
    expect(() => verifyRelease(other.bytes, rootWith(), 'test')).toThrow(/is not in root version 3/)
  })

  it('release — a parent on r1, a changed byte, an unknown critical field are refused; an unknown other field is kept under the signature; a first release past r1 names no parent', () => {
    const root = rootWith()
    expect(() => signRelease({ ...draft(1), parent: 'cd'.repeat(32) }, [pubA])).toThrow(/r1 has no parent/)
    // A product with format-1 history starts its format-2 chain at its next revision, parentless.
    expect(verifyRelease(signRelease(draft(37), [pubA]).bytes, root, 'test').release).toMatchObject({ rev: 37 })
    const good = signRelease(draft(1), [pubA]).bytes.toString('utf8')
    expect(() => verifyRelease(good.replace('"files":10', '"files":11'), root, 'test')).toThrow(/needs 1/)
    const base = JSON.parse(good) as { signed: Record<string, unknown> }
    const withNote = encodeEnvelope(signEnvelope({ ...base.signed, note: 'hello' }, [pubA]))
    expect(verifyRelease(withNote, root, 'test').env.signed.note).toBe('hello')
    const critical = encodeEnvelope(signEnvelope({ ...base.signed, quota: 1, critical: ['quota'] }, [pubA]))
    expect(() => verifyRelease(critical, root, 'test')).toThrow(/needs a newer upswarm: it marks quota critical/)
  })
})
