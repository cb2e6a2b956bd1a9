// Issue 10 item 7: a root of trust that clients pin delegates to publisher keys; a key rotates
// or is revoked without reinstalling clients; an expiring fresh statement tells a fresh view from
// a frozen one, and a stale one never stops a client moving forward (R-DHT-2).
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { history, init, rollback, status, update } from '../../actors/updater/index.ts'
import { encodeEnvelope } from '../../infra/formats/envelope.ts'
import { signFresh } from '../../infra/formats/fresh.ts'
import { draftOf, rootBody, signRoot, type RootDraft, type SignedRoot } from '../../infra/formats/root.ts'
import { generatePublisherKey, type PublisherKey } from '../../infra/release/keys.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, snapshotTree, writeTree } from '../helpers/local-publish.ts'

const DAY = 86_400_000
const text = (s: SignedRoot): string => encodeEnvelope(s.env).toString('utf8')

describe('root of trust — rotation, revocation and freshness', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let repo: string
  let source: DirectorySource
  let product: string
  const rootKeys = [generatePublisherKey(), generatePublisherKey()]
  const freshKey = generatePublisherKey()
  const k1 = generatePublisherKey()
  const k2 = generatePublisherKey()
  let n = 0

  beforeEach(async () => {
    tmp = await tempDir('upswarm-root-')
    repo = join(tmp.path, 'repo')
    source = new DirectorySource(repo)
    product = randomUUID()
  })
  afterEach(async () => tmp?.cleanup())

  async function publish(key: PublisherKey, files: Record<string, string>): Promise<{ rev: number; manifestSha256: string }> {
    const src = join(tmp.path, `src${++n}`)
    await writeTree(src, files)
    return publishLocal(repo, { key, product, src })
  }
  function root1(extraSigners: PublisherKey[] = []): SignedRoot {
    const d: RootDraft = {
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: rootKeys.map((k) => k.publicKey), rootThreshold: 2,
      freshKeys: [freshKey.publicKey], freshLifetimeS: 3600, products: { [product]: { publish: [k1.publicKey] } },
    }
    return signRoot(rootBody(d), [...rootKeys, ...extraSigners])
  }
  /** Root 2: k1 retired after `lastRev` (its release hash `lastRelease`), k2 signs from now on. */
  function rotated(v1: SignedRoot, lastRev: number, lastRelease: string, signers = rootKeys): SignedRoot {
    const d = draftOf(v1.root)
    d.version = 2
    d.products[product] = { publish: [k2.publicKey], retired: [{ key: k1.publicKey, lastRev, lastRelease }] }
    return signRoot(rootBody(d), signers)
  }

  it('a client pinned to a root follows a key rotation without reinstalling, refuses the retired key after its last revision, and still rolls back to the old key\'s releases', async () => {
    const wc = join(tmp.path, 'wc')
    await publish(k1, { 'a.txt': 'one\n' })
    const r2 = await publish(k1, { 'a.txt': 'two\n' })
    const v1 = root1()
    source.rootDocs = [text(v1)]
    await init(wc, { product, root: { text: text(v1), where: 'root.json' }, source, historyDepth: 5 })
    expect((await status(wc)).rootVersion).toBe(1)

    // The publisher rotates to k2: root 2 retires k1 after r2, and k2 signs r3.
    source.rootDocs.push(text(rotated(v1, 2, r2.manifestSha256)))
    await publish(k2, { 'a.txt': 'three\n' })
    const u = await update(wc, { source, alerts: new RecordingAlerts() })
    expect(u.to).toBe(3)
    expect(await snapshotTree(wc)).toEqual({ 'a.txt': 'file 644 three\n' })
    expect((await status(wc)).rootVersion).toBe(2)

    // Someone still holding k1 signs r4: refused, naming why; the copy stays at r3.
    await publish(k1, { 'a.txt': 'evil\n' })
    await expect(update(wc, { source, alerts: new RecordingAlerts() })).rejects.toThrow(/retired after r2 in root version 2/)
    expect((await status(wc)).rev).toBe(3)
    expect(await snapshotTree(wc)).toEqual({ 'a.txt': 'file 644 three\n' })

    // k1's own releases up to r2 stay installable (R-ROLLBACK to ANY older revision).
    const back = await rollback(wc, { rev: 1, source })
    expect(back.to).toBe(1)
    expect(await snapshotTree(wc)).toEqual({ 'a.txt': 'file 644 one\n' })
    expect((await history(wc)).revisions.map((r) => r.rev)).toEqual(expect.arrayContaining([1, 2, 3]))
  })

  it('a root not signed by the old root keys is not taken, so a forged rotation cannot hand the product to another key', async () => {
    const wc = join(tmp.path, 'wc')
    const r1 = await publish(k1, { 'a.txt': 'one\n' })
    const v1 = root1()
    await init(wc, { product, root: { text: text(v1), where: 'root.json' }, source })
    const thief = [generatePublisherKey(), generatePublisherKey()]
    const d = draftOf(v1.root)
    d.version = 2
    d.rootKeys = thief.map((k) => k.publicKey)
    d.products[product] = { publish: [k2.publicKey], retired: [{ key: k1.publicKey, lastRev: 1, lastRelease: r1.manifestSha256 }] }
    source.rootDocs = [text(v1), text(signRoot(rootBody(d), thief))]
    await publish(k2, { 'a.txt': 'forged\n' })
    await expect(update(wc, { source, alerts: new RecordingAlerts() })).rejects.toThrow(/may not sign releases/)
    const s = await status(wc)
    expect(s.rootVersion).toBe(1)
    expect(s.rev).toBe(1)
  })

  it('a client that pinned only the publisher key adopts the root that key endorses, then follows its rotation', async () => {
    const wc = join(tmp.path, 'wc')
    const r1 = await publish(k1, { 'a.txt': 'one\n' })
    await init(wc, { product, publicKey: k1.publicKey, source })
    const other = join(tmp.path, 'other')
    await init(other, { product, publicKey: k1.publicKey, source })
    const v1 = root1([k1]) // endorsed: also signed by the key format-1 clients pinned
    source.rootDocs = [text(v1), text(rotated(v1, 1, r1.manifestSha256))]
    await publish(k2, { 'a.txt': 'two\n' })
    expect((await update(wc, { source, alerts: new RecordingAlerts() })).to).toBe(2)
    expect((await status(wc)).rootVersion).toBe(2)

    // Without the endorsement, a root is not adopted by a key-pinned copy.
    const unendorsed = root1()
    source.rootDocs = [text(unendorsed), text(rotated(unendorsed, 1, r1.manifestSha256))]
    expect((await status(other)).rootVersion).toBe(0)
    await expect(update(other, { source, alerts: new RecordingAlerts() })).rejects.toThrow(/trusts only key/)
  })

  it('status says how old the newest fresh statement is, says stale once it expired, and a stale view still updates to a newer verified release', async () => {
    const wc = join(tmp.path, 'wc')
    const r1 = await publish(k1, { 'a.txt': 'one\n' })
    const v1 = root1()
    source.rootDocs = [text(v1)]
    source.freshDoc = signFresh({ product, rev: 1, release: r1.manifestSha256, root: 1, issuedMs: Date.now() - 10 * 60_000, lifetimeS: 3600 }, freshKey).toString()
    await init(wc, { product, root: { text: text(v1), where: 'root.json' }, source })
    const fresh = await status(wc, { source })
    expect(fresh.freshness).toMatchObject({ newestRev: 1, stale: false })
    expect(fresh.freshness!.ageSeconds).toBeGreaterThanOrEqual(600)

    // Frozen: the servers keep handing out an old statement that has expired meanwhile.
    const expired = signFresh({ product, rev: 1, release: r1.manifestSha256, root: 1, issuedMs: Date.now() - 3 * 3600_000, lifetimeS: 3600 }, freshKey)
    const staleWc = join(tmp.path, 'stale')
    source.freshDoc = expired.toString()
    await init(staleWc, { product, root: { text: text(v1), where: 'root.json' }, source })
    const stale = await status(staleWc, { source })
    expect(stale.freshness).toMatchObject({ stale: true, newestRev: 1 })
    // A newer release verified from anywhere is still installed (never blocked by staleness).
    await publish(k1, { 'a.txt': 'two\n' })
    expect((await update(staleWc, { source, alerts: new RecordingAlerts() })).to).toBe(2)
    expect((await status(staleWc)).freshness).toMatchObject({ stale: true })

    // An older statement offered later does not replace a newer one (freshness never goes back).
    source.freshDoc = expired.toString()
    expect((await status(wc, { source })).freshness!.issued).toBe(fresh.freshness!.issued)
    // A statement signed by another key is not believed.
    source.freshDoc = signFresh({ product, rev: 9, root: 1, issuedMs: Date.now(), lifetimeS: 600 }, k1).toString()
    expect((await status(wc, { source })).freshness!.newestRev).toBe(1)
  })
})
