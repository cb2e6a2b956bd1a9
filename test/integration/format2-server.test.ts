// docs/formats.md §5 step 5 (issue 13 item 3) on a real cluster with identities and TLS: a
// repository server copies and verifies everything a format-2 release reaches through its own
// durable consumer of UPSWARM_META, serves `meta` and `nodes`, says `formats: [1, 2]` in its
// heartbeat, and the proxy hands format-2 requests only to servers that say so.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish, type PublishResult } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { fetchMeta, fetchNodes } from '../../infra/formats/meta-wire.ts'
import { verifyRelease } from '../../infra/formats/release.ts'
import { rootBody, rootText, signRoot, type SignedRoot } from '../../infra/formats/root.ts'
import { walkReachable } from '../../infra/formats/tree-objects.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { serverHeartbeat, serverMetaConsumer, META_STREAM } from '../../infra/nats/names.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { jetstreamManager } from '@nats-io/jetstream'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const DAY = 86_400_000

describe('format-2 servers', { timeout: 180_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  const conns: NatsConnection[] = []
  let admin: NatsConnection
  let publisherNc: NatsConnection
  let clientNc: NatsConnection
  let oldServerNc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  const lines: string[] = []
  const rootKey = generatePublisherKey()
  const key = generatePublisherKey()
  const product = newProduct()
  let root: SignedRoot
  let published: PublishResult

  beforeAll(async () => {
    dir = await tempDir('upswarm-f2-server-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    const connect = async (name: string, kind: 'admin' | 'publisher' | 'server' | 'proxy' | 'client', id = name): Promise<NatsConnection> => {
      const nc = await own.connect(name, { kind, name: id })
      conns.push(nc)
      return nc
    }
    admin = await connect('admin', 'admin')
    publisherNc = await connect('publisher', 'publisher')
    clientNc = await connect('client', 'client', 'f2client')
    oldServerNc = await connect('old1', 'server')
    const body = rootBody({
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey],
      products: { [product]: { publish: [key.publicKey] } },
    }) as { products: Record<string, { formats: number[] }> }
    body.products[product]!.formats = [1, 2]
    root = signRoot(body, [rootKey])
    await appendRoot(admin, rootText(root))
    const trust = join(dir.path, 'trust.json')
    await writeFile(trust, JSON.stringify({ format: 3, root: root.env }))
    server = await startRepoServer({
      nc: await connect('rs2', 'server'), id: 'rs2', dataDir: join(dir.path, 'rs2'), trust: await new TrustStore(trust).ready(), log: (m) => lines.push(m),
    })
    proxy = await startProxy({ nc: await connect('proxy', 'proxy', 'px') })
    const src = join(dir.path, 'src')
    // 150 files over 3 directories, one large file with a chunk-list node, a symlink.
    const spec: Record<string, string | Buffer | { symlink: string }> = { 'big.bin': randomContent(2_200_000), link: { symlink: 'big.bin' } }
    for (let i = 0; i < 150; i++) spec[`d${i % 3}/f${i}.txt`] = `file ${i}\n`
    await writeTree(src, spec)
    published = await publish({ nc: publisherNc, src, product, key, skipFeed: true })
  }, 120_000)
  afterAll(async () => {
    await proxy?.close()
    await server?.close()
    for (const nc of conns) await nc.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('repo-server — syncs the format-2 release through server-<id>-meta; a client identity gets the release and every node of its tree through the proxy, each verifying, and the server holds every unit', async () => {
    await expect.poll(() => proxy.pool.view().find((m) => m.id === 'rs2')?.synced2[product], { timeout: 60_000, interval: 100 }).toBe(1)
    expect(proxy.pool.view().find((m) => m.id === 'rs2')?.formats).toEqual([1, 2])
    expect(server.heartbeat()).toMatchObject({ formats: [1, 2], synced2: { [product]: 1 } })
    // The heartbeat may carry the new state before the actor's event reaches the log.
    await expect.poll(() => lines, { timeout: 10_000, interval: 50 }).toContain(`synced format-2 ${product} r1 (meta seq ${published.release2!.seq})`)
    const jsm = await jetstreamManager(admin)
    expect((await jsm.consumers.info(META_STREAM, serverMetaConsumer('rs2'))).ack_floor.stream_seq).toBe(published.release2!.seq)

    // The release, as the publisher signed it, from a client machine (CLIENTS account) through the proxy.
    for (const req of [{ kind: 'release' as const, product }, { kind: 'release' as const, product, rev: 1 }]) {
      const text = await fetchMeta(clientNc, req)
      const r = verifyRelease(text, root.root, 'proxy.meta')
      expect(r).toMatchObject({ id: published.release2!.id, release: { rev: 1, tree: published.release2!.tree, v1: published.manifestSha256 } })
    }
    await expect(fetchMeta(clientNc, { kind: 'release', product, rev: 2 })).rejects.toMatchObject({ code: 'UPSWARM_E_UNKNOWN_REVISION' })

    // The top node, then the whole tree node by node (walkReachable checks each against its hash).
    const { tree, nodes: nodeCount } = published.release2!
    const top = await fetchNodes(clientNc, product, [tree])
    expect([...top.keys()]).toEqual([tree])
    let asks = 0
    const walked = await walkReachable(tree, async (hash) => {
      asks++
      return (await fetchNodes(clientNc, product, [hash])).get(hash)!
    })
    expect(walked.nodes.size).toBe(nodeCount)
    expect(asks).toBe(nodeCount)
    // Many hashes in one ask come back in one reply.
    expect((await fetchNodes(clientNc, product, [...walked.nodes.keys()])).size).toBe(nodeCount)
    expect(walked.entries.map(({ content: _c, ...e }) => e)).toEqual(published.release!.manifest.entries.map((e) => (e.kind === 'file' ? (({ pieces: _p, ...f }) => f)(e) : e)))
    await expect(fetchNodes(clientNc, product, ['00'.repeat(32)])).rejects.toMatchObject({ code: 'UPSWARM_E_NOT_FOUND' })

    // Units: every whole-file blob is on the server's disk (a large file's chunks are ranges of it).
    for (const e of walked.entries) if (e.kind === 'file') expect(await server.store.blobs.has(e.sha256)).toBe(true)
  })

  it('proxy — a server whose heartbeat lists no formats (a format-1 server) is never assigned a format-2 request, though it gets format-1 ones', async () => {
    await expect.poll(() => proxy.pool.view().find((m) => m.id === 'rs2')?.synced2[product], { timeout: 60_000, interval: 100 }).toBe(1)
    // A format-1 server's heartbeat: what it holds, no `formats`, ten times rs2's weight.
    const beat = (): void => oldServerNc.publish(serverHeartbeat('old1'), JSON.stringify({ id: 'old1', weight: 10, synced: { [product]: 1 } }))
    beat()
    await expect.poll(() => { beat(); return proxy.pool.view().find((m) => m.id === 'old1')?.healthy }, { timeout: 30_000, interval: 200 }).toBe(true)
    expect(proxy.pool.view().find((m) => m.id === 'old1')?.formats).toEqual([1])

    const format2 = Array.from({ length: 30 }, () => proxy.pool.assign2(product, undefined))
    const format1 = Array.from({ length: 30 }, () => proxy.pool.assign(product, 1))
    expect(new Set(format2)).toEqual(new Set(['rs2']))
    expect(format1.filter((s) => s === 'old1').length).toBeGreaterThan(20)
    // And through the service: every meta and nodes request is answered (by rs2).
    for (let i = 0; i < 10; i++) {
      expect(verifyRelease(await fetchMeta(clientNc, { kind: 'release', product }), root.root, 'proxy.meta').id).toBe(published.release2!.id)
      expect((await fetchNodes(clientNc, product, [published.release2!.tree])).size).toBe(1)
    }
  })
})
