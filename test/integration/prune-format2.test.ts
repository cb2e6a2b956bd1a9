// Issue 15 (and issue 11 item 8): `upswarm prune` of a product that publishes only format 2. The
// objects only pruned revisions reference — their tree nodes, file blobs, delta-index nodes and
// deltas — leave the object store and the servers; everything a kept revision references stays;
// a server that replays UPSWARM_META afterwards keeps the pruned revisions as documents only.
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { prune } from '../../actors/operator/prune.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { readRelease2 } from '../../infra/formats/release-stream.ts'
import { rootBody, rootText, signRoot } from '../../infra/formats/root.ts'
import { addReleaseRefs } from '../../infra/formats/tree-refs.ts'
import { readPackIndex, readPackList } from '../../infra/formats/pack-objects.ts'
import { getNodeObject } from '../../infra/formats/tree-objects.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const DAY = 86_400_000

describe('prune of format 2', { timeout: 240_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  const conns: NatsConnection[] = []
  const servers: RepoServer[] = []
  let connect: (name: string, kind: 'admin' | 'publisher' | 'server') => Promise<NatsConnection>
  let trust: string

  beforeAll(async () => {
    dir = await tempDir('upswarm-prune2-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    connect = async (name, kind) => {
      const nc = await own.connect(name, { kind, name })
      conns.push(nc)
      return nc
    }
  }, 120_000)
  afterAll(async () => {
    for (const s of servers) await s.close()
    for (const nc of conns) await nc.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('prune — keep 1 of r1 … r3 of a format-2-only product: nodes, blobs and deltas only r1/r2 reference go from the object store and from a server; what r3 references stays; a server started afterwards syncs r3 and keeps r1/r2 as documents only', async () => {
    const admin = await connect('admin', 'admin')
    const publisherNc = await connect('publisher', 'publisher')
    const rootKey = generatePublisherKey()
    const key = generatePublisherKey()
    const product = newProduct()
    const body = rootBody({
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey],
      products: { [product]: { publish: [key.publicKey] } },
    }) as { products: Record<string, { formats: number[] }> }
    body.products[product]!.formats = [2]
    const root = signRoot(body, [rootKey])
    await appendRoot(admin, rootText(root))
    trust = join(dir.path, 'trust.json')
    await writeFile(trust, JSON.stringify({ format: 3, root: root.env }))

    // r1 {a1, b1, s}, r2 {a1, b2 (a few bytes edited: a delta), s, c}, r3 {a3, b2, s, c}.
    const a1 = randomContent(300_000)
    const b1 = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i} of b\n`).join(''))
    const b2 = Buffer.from(b1.toString().replace('line 2000 of b', 'line 2000 of B, edited'))
    const s = randomContent(90_000)
    const src = join(dir.path, 'src')
    const revs: Record<string, Buffer>[] = [
      { 'a.bin': a1, 'b.txt': b1, 'd/s.bin': s },
      { 'a.bin': a1, 'b.txt': b2, 'd/s.bin': s, 'c.bin': randomContent(50_000) },
    ]
    revs.push({ ...revs[1]!, 'a.bin': randomContent(300_000) })
    for (const [i, files] of revs.entries()) {
      await writeTree(join(src, String(i)), files)
      expect(await publish({ nc: publisherNc, src: join(src, String(i)), product, key, skipFeed: true })).toMatchObject({ rev: i + 1, formats: [2] })
    }
    const { blobs: os } = await openRepository(admin)
    const refsOf = async (rev: number): Promise<Set<string>> => {
      const r = (await readRelease2(admin, product, rev))!.signed.release
      const into = new Set<string>()
      await addReleaseRefs(r, (h) => getNodeObject(os, h), into, `r${rev}`)
      return into
    }
    const [r1, r2, r3] = [await refsOf(1), await refsOf(2), await refsOf(3)]
    expect((await readRelease2(admin, product, 2))!.signed.release.deltas?.length).toBeGreaterThan(0)
    const only12 = [...new Set([...r1, ...r2])].filter((h) => !r3.has(h))
    // a1, b1, the delta b1 → b2, its index, and the top nodes of r1 and r2 at least.
    expect(only12.length).toBeGreaterThanOrEqual(6)
    // Issue 13 item 4: a formats [2] product packs its small units, so some references are units
    // inside packs (no object of their own) and some are the packs and pack lists themselves.
    const isObject = async (h: string): Promise<boolean> => !!(await os.info(h).then((i) => i && !i.deleted))
    const objects12 = (await Promise.all(only12.map(async (h) => ((await isObject(h)) ? [h] : [])))).flat()
    const objects3 = (await Promise.all([...r3].map(async (h) => ((await isObject(h)) ? [h] : [])))).flat()
    const packs = async (rev: number): Promise<string[]> => (await readPackList(os, (await readRelease2(admin, product, rev))!.signed.release.packs!)).map((p) => p.pack)
    // r1's file pack holds s, which r3 still uses: it stays; the packs of r1's and r2's deltas
    // (b1 compressed, b1 → b2) are theirs alone: they go.
    const [packs1, packs2, packs3] = [await packs(1), await packs(2), await packs(3)]
    expect(packs3.filter((p) => packs1.includes(p))).toHaveLength(1)
    const deltaPacks = [...packs1, ...packs2].filter((p) => !packs3.includes(p))
    expect(deltaPacks.length).toBeGreaterThan(0)
    expect(objects12).toEqual(expect.arrayContaining(deltaPacks))
    const units12 = only12.filter((h) => !objects12.includes(h) && !packs2.includes(h))
    expect(units12.length).toBeGreaterThanOrEqual(3) // a1, b1 and the delta b1 → b2, packed

    const startServer = async (id: string): Promise<RepoServer> => {
      const server = await startRepoServer({ nc: await connect(id, 'server'), id, dataDir: join(dir.path, id), trust: await new TrustStore(trust).ready() })
      servers.push(server)
      return server
    }
    const before = await startServer('early')
    await waitFor(before.actor, () => before.meta.store.synced[product] === 3, { timeout: 60_000 })
    // Units and nodes are held (units from the packs they came in); packs are containers, not units.
    const served12 = only12.filter((h) => !packs1.includes(h) && !packs2.includes(h))
    for (const h of served12) expect(await before.store.blobs.has(h)).toBe(true)

    const dry = await prune({ nc: admin, product, keep: 1, dryRun: true })
    expect(dry).toMatchObject({ newest: 3, through: 2, blobs: objects12.length })
    const done = await prune({ nc: admin, product, keep: 1 })
    expect(done).toMatchObject({ newest: 3, through: 2, blobs: objects12.length, recordSeq: expect.any(Number) })
    for (const h of objects12) expect(await isObject(h)).toBe(false)
    for (const h of objects3) expect(await isObject(h)).toBe(true)

    // The server that held them drops its copies at its next look at the prune records: units only
    // r1/r2 reference are no longer served, though r1's pack stays on its disk for s.
    await expect.poll(async () => (await Promise.all(served12.map((h) => before.store.blobs.has(h)))).filter(Boolean).length, { timeout: 60_000, interval: 200 }).toBe(0)
    const served3 = [...r3].filter((h) => !packs3.includes(h))
    for (const h of served3) expect(await before.store.blobs.has(h)).toBe(true)

    // A server started now syncs r3 whole and r1/r2 as documents only, parking nothing.
    const after = await startServer('late')
    await waitFor(after.actor, () => after.meta.store.synced[product] === 3, { timeout: 60_000 })
    for (const h of served3) expect(await after.store.blobs.has(h)).toBe(true)
    // What r1/r2 alone use and no pack r3 lists is not there (r1's file pack, which r3 lists, also holds r1's units and nodes).
    const inPacks3 = (await readPackIndex(os, (await readRelease2(admin, product, 3))!.signed.release.packs)).unitPack
    const gone12 = served12.filter((x) => !inPacks3.has(x))
    expect(gone12.length).toBeGreaterThan(0)
    for (const h of gone12) expect(await after.store.blobs.has(h)).toBe(false)
    expect(after.meta.store.isPruned(product, 2)).toBe(true)
    expect(after.store.parked).toEqual([])
    // A second prune finds nothing more to do.
    expect(await prune({ nc: admin, product, keep: 1 })).toMatchObject({ through: 2, blobs: 0, recordSeq: null })

    // A server whose store lost a node of a held release (a prune stopped between its deletions
    // and its record, or damage) still opens: the document stays, that release's nodes are not served.
    const top3 = (await readRelease2(admin, product, 3))!.signed.release.tree
    await after.close()
    servers.splice(servers.indexOf(after), 1)
    // The node is in a pack on the server's disk (issue 13 item 4): the pack goes with it.
    const packOfTop = after.store.blobs.packs!.locate(top3)?.pack
    await rm(packOfTop ? join(after.store.dir, 'packs', `${packOfTop}.pack`) : after.store.blobs.path(top3))
    const reopened = await startServer('late')
    expect(reopened.meta.store.synced[product]).toBe(3)
    expect(reopened.meta.store.hasNode(top3)).toBe(false)
  })
})
