// Issue 10 item 7, the root holder's edits (docs/formats.md §3.2): each edit is the next version,
// chained to the old one; a rotation retires the old key with its last revision.
import { describe, expect, it } from 'vitest'
import { editRoot, rootSummary } from '../../actors/root-holder/index.ts'
import { draftOf, initRoot, rootBody, signRoot } from '../../infra/formats/root.ts'
import { keyVerdict } from '../../infra/formats/root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'

const P = '11111111-2222-4333-8444-555555555555'
const rootKey = generatePublisherKey()
const fresh = generatePublisherKey()
const pub1 = generatePublisherKey()
const pub2 = generatePublisherKey()

describe('root holder', () => {
  const v1 = initRoot({ rootKeys: [rootKey], freshKeys: [fresh.publicKey], freshLifetimeS: 3600 }).root

  it('root holder — init makes version 1 with no products; an edit adds one, then rotates its key into retired', () => {
    expect(rootSummary(v1)).toMatchObject({ version: 1, products: {}, fresh: { keys: [fresh.publicKey], maxLifetime: 3600 }, root: { threshold: 1, keys: [rootKey.publicKey] } })
    const v2 = editRoot(v1, [rootKey], { addProducts: [{ product: P, publishKey: pub1.publicKey }] }).root
    expect(v2.version).toBe(2)
    const v3 = editRoot(v2, [rootKey], { rotate: [{ product: P, publishKey: pub2.publicKey, lastRev: 7, lastRelease: 'c'.repeat(64) }] }).root
    expect(rootSummary(v3).products[P]).toEqual({ publish: [pub2.publicKey], formats: [1, 2], retired: [{ key: pub1.publicKey, lastRev: 7, lastRelease: 'c'.repeat(64) }] })
    expect(keyVerdict(v3, P, pub1.publicKey, 8).ok).toBe(false)
    expect(keyVerdict(v3, P, pub2.publicKey, 8).ok).toBe(true)
    const v4 = editRoot(v3, [rootKey], { minRev: [{ product: P, rev: 9 }] }).root
    expect(keyVerdict(v4, P, pub2.publicKey, 8)).toMatchObject({ ok: false })
  })

  it('root holder — new root keys need the old and the new signatures; mistakes are refused with what to do', () => {
    const next = generatePublisherKey()
    expect(() => editRoot(v1, [next], { rootKeys: [next.publicKey] })).toThrow(/root keys of version 1/)
    expect(() => editRoot(v1, [rootKey], { rootKeys: [next.publicKey] })).toThrow(/own root keys/)
    expect(editRoot(v1, [rootKey, next], { rootKeys: [next.publicKey] }).root.roles.root.keys).toHaveLength(1)
    expect(() => editRoot(v1, [rootKey], { rotate: [{ product: P, publishKey: pub2.publicKey, lastRev: 1 }] })).toThrow(/not in root version 1; add it with --add-product/)
    expect(() => editRoot(v1, [rootKey], { addProducts: [{ product: 'nope', publishKey: pub1.publicKey }] })).toThrow(/lowercase UUIDs/)
    expect(() => initRoot({ rootKeys: [rootKey], threshold: 2, freshKeys: [fresh.publicKey] })).toThrow(/--threshold 2/)
  })

  it('root holder — --formats sets the release formats a product is published in (a new product: 1,2); later edits keep them; an unknown format is refused', () => {
    const v2 = editRoot(v1, [rootKey], { addProducts: [{ product: P, publishKey: pub1.publicKey }] }).root
    expect(v2.products[P]!.formats).toEqual([1, 2])
    const v3 = editRoot(v2, [rootKey], { formats: [{ product: P, formats: [1] }] }).root
    expect(v3.products[P]!.formats).toEqual([1])
    const v4 = editRoot(v3, [rootKey], { rotate: [{ product: P, publishKey: pub2.publicKey, lastRev: 3 }], formats: [{ product: P, formats: [2, 1] }] }).root
    expect(v4.products[P]!.formats).toEqual([1, 2])
    expect(editRoot(v4, [rootKey], { minRev: [{ product: P, rev: 2 }] }).root.products[P]!.formats).toEqual([1, 2])
    expect(editRoot(v4, [rootKey], { formats: [{ product: P, formats: [2] }] }).root.products[P]!.formats).toEqual([2])
    expect(() => editRoot(v4, [rootKey], { formats: [{ product: P, formats: [3] }] })).toThrow(/writes formats 1 and 2/)
  })

  it('root holder — a product of a root written before release formats existed stays format 1 through an edit', () => {
    const draft = draftOf(v1)
    draft.version = 2
    draft.products[P] = { publish: [pub1.publicKey] }
    const body = rootBody(draft) as { products: Record<string, { formats?: number[] }> }
    delete body.products[P]!.formats
    const older = signRoot(body, [rootKey]).root
    expect(older.products[P]!.formats).toBeUndefined()
    expect(editRoot(older, [rootKey], { minRev: [{ product: P, rev: 2 }] }).root.products[P]!.formats).toEqual([1])
  })

  it('root holder — --rollout-key and --halt-key name the keys of those roles; later edits keep them; an empty list removes one; a product not in the root is refused (issue 16)', () => {
    const rollout = generatePublisherKey()
    const halt = generatePublisherKey()
    const v2 = editRoot(v1, [rootKey], { addProducts: [{ product: P, publishKey: pub1.publicKey }], rolloutKeys: [{ product: P, keys: [rollout.publicKey] }], haltKeys: [{ product: P, keys: [halt.publicKey] }] }).root
    expect(rootSummary(v2).products[P]).toMatchObject({ publish: [pub1.publicKey], rollout: [rollout.publicKey], halt: [halt.publicKey] })
    expect(v2.products[P]!.halt).toEqual({ keys: [expect.stringMatching(/^[0-9a-f]{64}$/)], threshold: 1 })
    const v3 = editRoot(v2, [rootKey], { rotate: [{ product: P, publishKey: pub2.publicKey, lastRev: 3 }], formats: [{ product: P, formats: [1, 2] }] }).root
    expect(rootSummary(v3).products[P]).toMatchObject({ rollout: [rollout.publicKey], halt: [halt.publicKey] })
    const v4 = editRoot(v3, [rootKey], { rolloutKeys: [{ product: P, keys: [] }] }).root
    expect(rootSummary(v4).products[P]!.rollout).toBeUndefined()
    expect(rootSummary(v4).products[P]!.halt).toEqual([halt.publicKey])
    expect(() => editRoot(v4, [rootKey], { haltKeys: [{ product: '99999999-2222-4333-8444-555555555555', keys: [halt.publicKey] }] })).toThrow(/--halt-key .* is not in root version 4/)
    expect(() => editRoot(v4, [rootKey], { haltKeys: [{ product: P, keys: ['zz'] }] })).toThrow(/--halt-key/)
  })
})
