// Issue 10 items 4 and 5 on the publisher's side, on the suite's real cluster: whatever anyone
// appends to a product's release subject, publish numbers from the newest release a trusted key
// signed, reports what it skipped, and never writes to a product that is not its key's.
import { describe, expect, it } from 'vitest'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { headers } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { publish } from '../../actors/publisher/publish.ts'
import { RELEASE_STREAM, releaseSubject } from '../../infra/nats/names.ts'
import { ensureResources, openBlobStore } from '../../infra/nats/resources.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { generatePublisherKey, signBytes, type PublisherKey } from '../../infra/release/keys.ts'
import { canonicalManifestBytes, encodeRelease, signManifest, type SignedRelease } from '../../infra/release/manifest.ts'
import { REV_HEADER } from '../../infra/release/release-log.ts'
import { pinProduct } from '../../infra/release/trust.ts'
import { connectionAndDir, newProduct } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

describe('publish — derailing and pinning', () => {
  const fx = connectionAndDir()
  const key = generatePublisherKey()
  const other = generatePublisherKey()

  /** Appends raw bytes to the product's subject, as anyone able to publish there could. */
  async function append(product: string, data: Uint8Array | string, claimedRev?: number): Promise<number> {
    const h = headers()
    if (claimedRev !== undefined) h.set(REV_HEADER, String(claimedRev))
    return (await jetstream(fx.nc).publish(releaseSubject(product), data, { headers: h })).seq
  }

  /** A release of `product` at `rev` with no files, signed by `signer`. */
  function releaseBy(signer: PublisherKey, product: string, rev: number): SignedRelease {
    return signManifest({ format: 1, product, rev, createdAt: new Date().toISOString(), pieceSize: 1024 * 1024, entries: [] }, signer)
  }

  async function tree(name: string, content: string): Promise<string> {
    const src = join(fx.dir, name)
    await writeTree(src, { 'a.txt': content })
    return src
  }

  it('publish — junk appended to the subject is skipped and reported with stream and sequence; the next revision follows the last genuine one', async () => {
    const product = newProduct()
    const r1 = await publish({ nc: fx.nc, src: await tree('junk1', 'one'), product, key, skipFeed: true })
    const notJson = await append(product, 'not a release {')
    const notRelease = await append(product, JSON.stringify({ hello: 'world' }), 99)
    const r2 = await publish({ nc: fx.nc, src: await tree('junk2', 'two'), product, key, skipFeed: true })
    expect(r2).toMatchObject({ rev: 2, unchanged: false })
    expect(r2.release!.manifest.parent).toBe(r1.manifestSha256)
    expect(r2.skipped).toEqual([
      { stream: RELEASE_STREAM, seq: notJson, kind: 'junk', reason: expect.stringContaining('not a signed release manifest') },
      { stream: RELEASE_STREAM, seq: notRelease, kind: 'junk', reason: expect.stringContaining('not a signed release manifest') },
    ])
    // Junk before the newest release is not read again, unless its header claims a higher revision.
    const r3 = await publish({ nc: fx.nc, src: await tree('junk3', 'three'), product, key, skipFeed: true })
    expect(r3).toMatchObject({ rev: 3, skipped: [{ seq: notRelease, kind: 'junk' }] })
  })

  it('publish — another key\'s release and a forged one on a pinned product do not change the next number', async () => {
    const product = newProduct()
    const trust = join(fx.dir, 'trust-foreign.json')
    const r1 = await publish({ nc: fx.nc, src: await tree('foreign1', 'one'), product, key, trust, skipFeed: true })
    expect(r1).toMatchObject({ rev: 1, pinned: true })
    const foreign = await append(product, encodeRelease(releaseBy(other, product, 7)), 7)
    // Names the publisher's key, signed by another one.
    const forgedRelease = releaseBy(key, product, 8)
    forgedRelease.signature = signBytes(other, canonicalManifestBytes(forgedRelease.manifest))
    const forged = await append(product, encodeRelease(forgedRelease), 8)
    // A genuine release of another product, appended to this product's subject.
    const elsewhere = await append(product, encodeRelease(releaseBy(key, newProduct(), 9)), 9)

    const r2 = await publish({ nc: fx.nc, src: await tree('foreign2', 'two'), product, key, trust, skipFeed: true })
    expect(r2).toMatchObject({ rev: 2, pinned: false })
    expect(r2.release!.manifest.parent).toBe(r1.manifestSha256)
    expect(r2.skipped.map((m) => [m.seq, m.kind])).toEqual([[foreign, 'foreign'], [forged, 'foreign'], [elsewhere, 'foreign']])
    expect(r2.skipped[0]!.reason).toContain(`signed by key ${other.publicKey}, which is not trusted`)
    expect(r2.skipped[1]!.reason).toContain('does not verify')
    expect(r2.skipped[2]!.reason).toContain('a release of another product')
  })

  it('publish — an older genuinely signed release re-appended burns no revision and is never reused as the parent', async () => {
    const product = newProduct()
    const r1 = await publish({ nc: fx.nc, src: await tree('replay1', 'one'), product, key, skipFeed: true })
    const r2 = await publish({ nc: fx.nc, src: await tree('replay2', 'two'), product, key, skipFeed: true })
    const again = await append(product, encodeRelease(r2.release!))
    const replay = await append(product, encodeRelease(r1.release!), 1)
    const r3 = await publish({ nc: fx.nc, src: await tree('replay3', 'three'), product, key, skipFeed: true })
    expect(r3.rev).toBe(3)
    expect(r3.release!.manifest.parent).toBe(r2.manifestSha256)
    expect(r3.skipped).toMatchObject([
      { seq: again, kind: 'replay', reason: expect.stringContaining('the same release again (r2)') },
      { seq: replay, kind: 'replay', reason: expect.stringContaining('revision 1 already exists') },
    ])
    // Publishing the replayed tree again is a new revision, not a silent return to r1.
    const r4 = await publish({ nc: fx.nc, src: await tree('replay1', 'one'), product, key, skipFeed: true })
    expect(r4).toMatchObject({ rev: 4, unchanged: false })
    expect(r4.release!.manifest.parent).toBe(r3.manifestSha256)
  })

  it('publish — a product pinned to another key, or whose newest verified release another key signed, is refused with nothing written', async () => {
    const jsm = await jetstreamManager(fx.nc)
    const { replicas } = await ensureResources(fx.nc)
    const os = await openBlobStore(fx.nc, replicas)
    const subjectCount = async (product: string) =>
      (await jsm.streams.info(RELEASE_STREAM, { subjects_filter: releaseSubject(product) })).state.subjects?.[releaseSubject(product)] ?? 0

    const pinned = newProduct()
    const trust = join(fx.dir, 'trust-pinned.json')
    await pinProduct(trust, pinned, other.publicKey)
    const trustBefore = await readFile(trust, 'utf8')
    const content = randomContent(4096)
    const src = join(fx.dir, 'refused')
    await writeTree(src, { 'unique.bin': content })
    await expect(publish({ nc: fx.nc, src, product: pinned, key, trust, skipFeed: true })).rejects.toMatchObject({
      code: 'UPSWARM_E_CONFIG', message: expect.stringContaining(`product ${pinned} is pinned to key ${other.publicKey}`),
    })
    expect(await os.info(sha256Hex(content))).toBeNull()
    expect(await subjectCount(pinned)).toBe(0)
    expect(await readFile(trust, 'utf8')).toBe(trustBefore)

    // Not pinned anywhere, but the stream says it is another key's product.
    const owned = newProduct()
    await publish({ nc: fx.nc, src: await tree('owned', 'theirs'), product: owned, key: other, skipFeed: true })
    await expect(publish({ nc: fx.nc, src, product: owned, key, trust, skipFeed: true })).rejects.toMatchObject({
      code: 'UPSWARM_E_CONFIG', message: expect.stringMatching(new RegExp(`newest verified release \\(r1, ${RELEASE_STREAM} seq \\d+\\) is signed by key ${other.publicKey}`)),
    })
    expect(await os.info(sha256Hex(content))).toBeNull()
    expect(await subjectCount(owned)).toBe(1)
    expect(await readFile(trust, 'utf8')).toBe(trustBefore)
  })
})
