// docs/formats.md §5 step 4 (issue 13 item 3) on a real cluster with identities and TLS: a product
// whose root `formats` holds 2 is published as a signed format-2 release whose tree nodes are
// objects of `upswarm-blobs`, followed by the format-1 manifest of the same revision when
// `formats` holds 1; a publish that died between the two appends is repaired by the next one; a
// format-2-only product is not held to the format-1 manifest's cap.
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publish } from '../../actors/publisher/publish.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { verifyRelease } from '../../infra/formats/release.ts'
import { newestRelease2 } from '../../infra/formats/release-stream.ts'
import { rootBody, rootText, signRoot, type SignedRoot } from '../../infra/formats/root.ts'
import { format1Entries, walkStoredTree } from '../../infra/formats/tree-objects.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { readReleaseChain } from '../../infra/release/release-log.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree, type TreeSpec } from '../helpers/trees.ts'

const DAY = 86_400_000

describe('format-2 publish', { timeout: 180_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  const conns: NatsConnection[] = []
  let admin: NatsConnection
  let publisherNc: NatsConnection
  const rootKey = generatePublisherKey()
  const key = generatePublisherKey()
  const dual = newProduct()
  const gapped = newProduct()
  const capped = newProduct()
  const only2 = newProduct()
  let root: SignedRoot

  beforeAll(async () => {
    dir = await tempDir('upswarm-f2-publish-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    admin = await own.connect('admin')
    publisherNc = await own.connect('publisher', { kind: 'publisher', name: 'publisher' })
    conns.push(admin, publisherNc)
    const body = rootBody({
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey],
      products: Object.fromEntries([dual, gapped, capped, only2].map((p) => [p, { publish: [key.publicKey] }])),
    }) as { products: Record<string, { formats: number[] }> }
    for (const p of [dual, gapped, capped]) body.products[p]!.formats = [1, 2]
    body.products[only2]!.formats = [2]
    root = signRoot(body, [rootKey])
    await appendRoot(admin, rootText(root))
  }, 120_000)
  afterAll(async () => {
    for (const nc of conns) await nc.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  async function tree(name: string, spec: TreeSpec): Promise<string> {
    const src = join(dir.path, name)
    await rm(src, { recursive: true, force: true })
    await writeTree(src, spec)
    return src
  }

  /** The format-1 chain's head on the release stream. */
  const v1Head = async (product: string) => (await readReleaseChain(admin, product, () => true)).head

  // A small file (one unit), a chunked one (inline chunks), one of several 1 MiB pieces, a symlink, subdirectories.
  const spec = (): TreeSpec => ({
    'README.md': 'hello\n',
    'bin/tool': { mode: 0o755, content: '#!/bin/sh\necho tool\n' },
    'data/big.bin': randomContent(2_500_000),
    'data/mid.bin': randomContent(300_000),
    'docs/a.txt': 'a\n',
    'docs/b.txt': 'b\n',
    'link': { symlink: 'README.md' },
  })

  it('publisher — formats [1, 2]: the format-2 release verifies under the root and names the format-1 manifest; its tree walked from the object store is that manifest; an unchanged tree appends nothing; one changed file uploads only the nodes on its path', async () => {
    const files = spec()
    const r1 = await publish({ nc: publisherNc, src: await tree('dual', files), product: dual, key, skipFeed: true })
    expect(r1).toMatchObject({ rev: 1, formats: [1, 2], unchanged: false, release2: { rev: 1, seq: expect.any(Number) } })
    // Top, bin, data, docs, and data/big.bin's chunk list (more than 16 chunks): five nodes, all new.
    expect(r1.release2).toMatchObject({ nodes: 5, newNodes: 5 })

    const stored = (await newestRelease2(admin, dual))!
    const verified = verifyRelease(stored.text, root.root, 'the test')
    expect(verified.release).toMatchObject({ product: dual, rev: 1, v1: r1.manifestSha256, tree: r1.release2!.tree, stats: { files: 6 } })
    expect(verified.release.parent).toBeUndefined()
    expect(verified.release.createdAt).toBe(r1.release!.manifest.createdAt)
    expect((await v1Head(dual))?.manifestSha256).toBe(r1.manifestSha256)

    // deriveV1: the tree, walked node by node from the object store (each checked against its
    // hash), plus the piece hashes read from the blobs, is exactly the format-1 manifest's entries.
    const { blobs } = await openRepository(admin)
    const walked = await walkStoredTree(blobs, verified.release.tree)
    expect(walked.nodes.size).toBe(r1.release2!.nodes)
    expect(await format1Entries(blobs, walked.entries)).toEqual(r1.release!.manifest.entries)
    const big = walked.entries.find((e) => e.path === 'data/big.bin')
    expect(big).toMatchObject({ content: { tag: 2 } })
    expect(walked.entries.find((e) => e.path === 'data/mid.bin')).toMatchObject({ content: { tag: 1 } })

    const same = await publish({ nc: publisherNc, src: await tree('dual', files), product: dual, key, skipFeed: true })
    expect(same).toMatchObject({ rev: 1, unchanged: true, manifestSha256: r1.manifestSha256 })
    expect((await newestRelease2(admin, dual))!.seq).toBe(stored.seq)

    const r2 = await publish({ nc: publisherNc, src: await tree('dual', { ...files, 'docs/b.txt': 'b, changed\n' }), product: dual, key, skipFeed: true })
    // docs and the top node changed; bin and data kept their hashes.
    expect(r2).toMatchObject({ rev: 2, unchanged: false, release2: { rev: 2, newNodes: 2 } })
    const stored2 = verifyRelease((await newestRelease2(admin, dual))!.text, root.root, 'the test')
    expect(stored2.release).toMatchObject({ rev: 2, parent: verified.id, v1: r2.manifestSha256 })
    expect(r2.release!.manifest.parent).toBe(r1.manifestSha256)
  })

  it('publisher — a publish that dies between the format-2 and the format-1 append leaves a gap the next publish repairs first, byte for byte', async () => {
    const files = spec()
    const r1 = await publish({ nc: publisherNc, src: await tree('gap', files), product: gapped, key, skipFeed: true })
    const changed = { ...files, 'docs/a.txt': 'a, changed\n' }
    await expect(publish({
      nc: publisherNc, src: await tree('gap', changed), product: gapped, key, skipFeed: true,
      betweenAppends: async () => { throw new Error('killed between the appends') },
    })).rejects.toThrow(/killed between the appends/)
    const r2v2 = (await newestRelease2(admin, gapped))!.signed.release
    expect(r2v2.rev).toBe(2)
    expect((await v1Head(gapped))?.release.manifest.rev).toBe(1)

    // The same tree again: the gap is filled (the format-1 r2 the format-2 r2 names), nothing new is signed.
    const again = await publish({ nc: publisherNc, src: await tree('gap', changed), product: gapped, key, skipFeed: true })
    expect(again).toMatchObject({ rev: 2, unchanged: true })
    const head = (await v1Head(gapped))!
    expect(head.release.manifest).toMatchObject({ rev: 2, parent: r1.manifestSha256 })
    expect(head.manifestSha256).toBe(r2v2.v1)

    const r3 = await publish({ nc: publisherNc, src: await tree('gap', { ...changed, 'new.txt': 'new\n' }), product: gapped, key, skipFeed: true })
    expect(r3).toMatchObject({ rev: 3, unchanged: false })
    expect(r3.release!.manifest.parent).toBe(head.manifestSha256)
  })

  it('publisher — a format-1 manifest over the cap is refused before anything is appended; with formats [2] the same tree publishes', async () => {
    // The cap lowered to 2 KiB for the test: 30 files make a ~6 KiB format-1 manifest.
    const files: TreeSpec = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`f/${String(i).padStart(3, '0')}.txt`, `file ${i}\n`]))
    const src = await tree('many', files)
    await expect(publish({ nc: publisherNc, src, product: capped, key, skipFeed: true, v1MaxBytes: 2048 }))
      .rejects.toThrow(new RegExp(`product ${capped} still publishes format 1 for format-1 clients; at 30 files it cannot .*end format-1 compatibility first`))
    expect(await newestRelease2(admin, capped)).toBeUndefined()
    expect(await v1Head(capped)).toBeNull()

    const r = await publish({ nc: publisherNc, src, product: only2, key, skipFeed: true, v1MaxBytes: 2048 })
    expect(r).toMatchObject({ rev: 1, formats: [2], manifestSha256: null, files: 30, release2: { rev: 1 } })
    expect(r.release).toBeUndefined()
    expect(await v1Head(only2)).toBeNull()
    const verified = verifyRelease((await newestRelease2(admin, only2))!.text, root.root, 'the test')
    expect(verified.release.v1).toBeUndefined()
    const { blobs } = await openRepository(admin)
    expect((await walkStoredTree(blobs, verified.release.tree)).entries.filter((e) => e.kind === 'file')).toHaveLength(30)
  })
})
