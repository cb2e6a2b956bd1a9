// Issue 10 item 7: roots chain, publisher keys rotate and retire, fresh statements expire into
// "stale" without blocking (docs/formats.md §1.2–1.4, §3).
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { encodeEnvelope, keyIdOf, signEnvelope } from '../../infra/formats/envelope.ts'
import { freshnessLine, signFresh, verifyFresh } from '../../infra/formats/fresh.ts'
import { draftOf, keyVerdict, parseRoot, rootBody, signRoot, verifyNextRoot, verifyPinnedRoot, type RootDraft } from '../../infra/formats/root.ts'
import { TrustStore } from '../../infra/formats/trust-store.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'

const P = '11111111-2222-4333-8444-555555555555'
const DAY = 86_400_000
const rootKeys = [generatePublisherKey(), generatePublisherKey(), generatePublisherKey()]
const freshKey = generatePublisherKey()
const pub1 = generatePublisherKey()
const pub2 = generatePublisherKey()

function draft(version: number, over: Partial<RootDraft> = {}): RootDraft {
  return {
    version, expiresMs: Date.now() + 365 * DAY, rootKeys: rootKeys.map((k) => k.publicKey), rootThreshold: 2,
    freshKeys: [freshKey.publicKey], products: { [P]: { publish: [pub1.publicKey] } }, ...over,
  }
}
const text = (s: { env: Parameters<typeof encodeEnvelope>[0] }): string => encodeEnvelope(s.env).toString('utf8')

describe('root documents', () => {
  it('verify under a threshold of distinct root keys, and not below it', () => {
    const two = signRoot(rootBody(draft(1)), rootKeys.slice(0, 2))
    expect(() => verifyPinnedRoot(two, 'test')).not.toThrow()
    const one = signRoot(rootBody(draft(1)), rootKeys.slice(0, 1))
    expect(() => verifyPinnedRoot(one, 'test')).toThrow(/not signed by 2 of its own root keys/)
    // The same key twice counts once.
    const dup = { env: { ...one.env, signatures: [...one.env.signatures, ...one.env.signatures] }, root: one.root }
    expect(() => verifyPinnedRoot(dup, 'test')).toThrow(/UPSWARM_E_SIGNATURE|not signed/)
  })

  it('refuse a changed field, an unknown critical field and another format', () => {
    const ok = signRoot(rootBody(draft(1)), rootKeys.slice(0, 2))
    const tampered = JSON.parse(text(ok)) as { signed: { version: number } }
    tampered.signed.version = 7
    expect(() => verifyPinnedRoot(parseRoot(JSON.stringify(tampered), 't'), 't')).toThrow(/not signed/)
    const critical = signEnvelope({ ...rootBody(draft(1)), critical: ['quorum'], quorum: 3 }, rootKeys)
    expect(() => parseRoot(JSON.stringify(critical), 'peer X')).toThrow(/needs a newer upswarm: it marks quorum critical/)
    const ignorable = signEnvelope({ ...rootBody(draft(1)), note: 'hello' }, rootKeys)
    expect(parseRoot(JSON.stringify(ignorable), 't').root.version).toBe(1)
    const f3 = signEnvelope({ ...rootBody(draft(1)), format: 3 }, rootKeys)
    expect(() => parseRoot(JSON.stringify(f3), 'stream seq 4')).toThrow(/format 3; this upswarm reads format 2/)
  })

  it('chain one version at a time, each signed by the old and the new root keys', () => {
    const v1 = signRoot(rootBody(draft(1)), rootKeys.slice(0, 2)).root
    const newRoot = [generatePublisherKey(), generatePublisherKey()]
    const body2 = rootBody(draft(2, { rootKeys: newRoot.map((k) => k.publicKey), rootThreshold: 2 }))
    expect(() => verifyNextRoot(v1, signRoot(body2, newRoot), 't')).toThrow(/root keys of version 1/)
    expect(() => verifyNextRoot(v1, signRoot(body2, rootKeys.slice(0, 2)), 't')).toThrow(/own root keys/)
    expect(() => verifyNextRoot(v1, signRoot(body2, [...rootKeys.slice(0, 2), ...newRoot]), 't')).not.toThrow()
    expect(() => verifyNextRoot(v1, signRoot(rootBody(draft(3)), rootKeys), 't')).toThrow(/does not follow the trusted version 1/)
  })

  it('rotate a publish key: the new key signs from now on, the retired one up to its last revision', () => {
    const d = draftOf(signRoot(rootBody(draft(1)), rootKeys).root)
    d.version = 2
    d.products[P] = { publish: [pub2.publicKey], retired: [{ key: pub1.publicKey, lastRev: 5, lastRelease: 'a'.repeat(64) }] }
    const v2 = signRoot(rootBody(d), rootKeys).root
    expect(keyVerdict(v2, P, pub2.publicKey, 6)).toEqual({ ok: true })
    expect(keyVerdict(v2, P, pub1.publicKey, 5)).toEqual({ ok: true, retired: { lastRev: 5, lastRelease: 'a'.repeat(64) } })
    expect(keyVerdict(v2, P, pub1.publicKey, 6)).toMatchObject({ ok: false, reason: expect.stringMatching(/retired after r5 in root version 2/) })
    expect(keyVerdict(v2, P, generatePublisherKey().publicKey, 1)).toMatchObject({ ok: false, reason: expect.stringMatching(/may not sign/) })
    expect(keyVerdict(v2, '99999999-2222-4333-8444-555555555555', pub2.publicKey, 1)).toMatchObject({ ok: false, reason: expect.stringMatching(/not in root version 2/) })
  })
})

describe('fresh statements', () => {
  const root = signRoot(rootBody(draft(1, { freshLifetimeS: 3600 })), rootKeys).root

  it('verify under the fresh role and within its lifetime', () => {
    const ok = signFresh({ product: P, rev: 4, release: 'b'.repeat(64), root: 1, issuedMs: Date.now(), lifetimeS: 600 }, freshKey)
    expect(verifyFresh(ok, root, 't').fresh.rev).toBe(4)
    const wrongKey = signFresh({ product: P, rev: 4, root: 1, issuedMs: Date.now(), lifetimeS: 600 }, pub1)
    expect(() => verifyFresh(wrongKey, root, 'peer 7f…')).toThrow(/not signed by the fresh key of root version 1/)
    const tooLong = signFresh({ product: P, rev: 4, root: 1, issuedMs: Date.now(), lifetimeS: 7200 }, freshKey)
    expect(() => verifyFresh(tooLong, root, 't')).toThrow(/allows at most 3600 s/)
  })

  it('say fresh with the age, or stale since the expiry', () => {
    const now = Date.parse('2026-03-01T12:00:00Z')
    const f = { issued: '2026-03-01T11:48:00Z', expires: '2026-03-01T12:48:00Z', ageSeconds: 720, stale: false, newestRev: 42, root: 1 }
    expect(freshnessLine(f, now)).toBe('fresh: r42 as of 2026-03-01T11:48:00Z (12 min ago), root version 1')
    expect(freshnessLine({ ...f, stale: true }, now + 3 * DAY)).toMatch(/^stale since 2026-03-01T12:48:00Z \(3 d\)/)
  })
})

describe('trust store', () => {
  it('pins, walks the chain, keeps the newest fresh statement and reloads what it verified', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'upswarm-trust-'))
    const file = join(dir, 'trust.json')
    const store = await TrustStore.open(file, join(dir, 'tmp'))
    const v1 = signRoot(rootBody(draft(1)), rootKeys)
    await store.pin(text(v1), 'init --root')
    const d2 = draftOf(v1.root)
    d2.version = 2
    d2.products[P] = { publish: [pub2.publicKey], retired: [{ key: pub1.publicKey, lastRev: 2 }] }
    const v2 = signRoot(rootBody(d2), rootKeys)
    const d3 = { ...d2, version: 3 }
    const v3 = signRoot(rootBody(d3), rootKeys)
    expect(await store.acceptRoot(text(v3), 'peer')).toBe('gap')
    expect(await store.acceptRoots([text(v3), text(v2)], 'peer')).toBe(2)
    expect(store.version).toBe(3)
    expect(store.rootsFrom(2)).toHaveLength(2)
    // Two different roots claiming one version: refused, the held one stays.
    const forked = signRoot(rootBody({ ...d2, expiresMs: d2.expiresMs + DAY }), rootKeys)
    await expect(store.acceptRoot(text(forked), 'peer Y')).rejects.toThrow(/differs from the one held/)

    const older = signFresh({ product: P, rev: 3, root: 3, issuedMs: Date.now() - 60_000, lifetimeS: 600 }, freshKey)
    const newer = signFresh({ product: P, rev: 4, root: 3, issuedMs: Date.now(), lifetimeS: 600 }, freshKey)
    expect(await store.acceptFresh(newer, 'stream')).toBe('accepted')
    expect(await store.acceptFresh(older, 'peer')).toBe('not-newer')
    expect(store.freshness(P)?.newestRev).toBe(4)

    const again = await TrustStore.open(file, join(dir, 'tmp'))
    expect(again.version).toBe(3)
    expect(again.freshness(P)?.newestRev).toBe(4)
    expect(again.verdict(P, pub1.publicKey, 3)).toMatchObject({ ok: false })
    expect(again.verdict(P, pub2.publicKey, 3)).toEqual({ ok: true })
    expect(keyIdOf(pub2.publicKey)).toMatch(/^[0-9a-f]{64}$/)
  })

  it('lets a client that pinned a publisher key adopt a root that key endorses, and no other', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'upswarm-trust-'))
    const store = await TrustStore.open(join(dir, 'trust.json'), join(dir, 'tmp'))
    const unendorsed = signRoot(rootBody(draft(1)), rootKeys)
    expect(await store.adoptEndorsed(text(unendorsed), 'stream', P, pub1.publicKey)).toBe(false)
    const endorsed = signRoot(rootBody(draft(1)), [...rootKeys, pub1])
    expect(await store.adoptEndorsed(text(endorsed), 'stream', P, pub1.publicKey)).toBe(true)
    expect(store.version).toBe(1)
  })
})
