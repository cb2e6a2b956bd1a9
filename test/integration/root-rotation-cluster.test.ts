// Issue 10 item 7 end to end on a real cluster with identities and TLS: the root holder rotates a
// product's publish key on UPSWARM_META; the publisher, a server whose trust file pins the root
// (format 3) and a client pinned to the root all follow it without a new trust file or a
// reinstall; the retired key's late release is refused by the server and the client alike, and
// the notary's fresh statement reaches the client's `status`.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { headers } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import { startNotary, type Notary } from '../../actors/notary/index.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { serverSource } from '../../actors/share-daemon/sources.ts'
import { init, status, update } from '../../actors/updater/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { encodeEnvelope } from '../../infra/formats/envelope.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { draftOf, rootBody, signRoot, type SignedRoot } from '../../infra/formats/root.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { releaseSubject } from '../../infra/nats/names.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { encodeRelease, signManifest } from '../../infra/release/manifest.ts'
import { REV_HEADER } from '../../infra/release/release-log.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { snapshotTree } from '../helpers/local-publish.ts'
import { writeTree } from '../helpers/trees.ts'

const DAY = 86_400_000
const text = (s: SignedRoot): string => encodeEnvelope(s.env).toString('utf8')

describe('root of trust on the cluster', { timeout: 180_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  const conns: NatsConnection[] = []
  let admin: NatsConnection
  let publisherNc: NatsConnection
  let clientNc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let notary: Notary
  const lines: string[] = []
  const rootKey = generatePublisherKey()
  const freshKey = generatePublisherKey()
  const k1 = generatePublisherKey()
  const k2 = generatePublisherKey()
  const product = newProduct()
  let v1: SignedRoot

  beforeAll(async () => {
    dir = await tempDir('upswarm-root-cluster-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    const connect = async (name: string, kind: 'admin' | 'publisher' | 'server' | 'proxy' | 'client' | 'notary', id = name): Promise<NatsConnection> => {
      const nc = await own.connect(name, { kind, name: id })
      conns.push(nc)
      return nc
    }
    admin = await connect('admin', 'admin')
    publisherNc = await connect('publisher', 'publisher')
    clientNc = await connect('client', 'client', 'rootclient')
    v1 = signRoot(rootBody({
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: [rootKey.publicKey], rootThreshold: 1,
      freshKeys: [freshKey.publicKey], freshLifetimeS: 3600, products: { [product]: { publish: [k1.publicKey] } },
    }), [rootKey])
    await appendRoot(admin, text(v1))
    const trust = join(dir.path, 'trust.json')
    await writeFile(trust, JSON.stringify({ format: 3, root: v1.env }))
    server = await startRepoServer({
      nc: await connect('server', 'server', 'rs1'), id: 'rs1', dataDir: join(dir.path, 'rs1'), trust: await new TrustStore(trust).ready(), log: (m) => lines.push(m),
    })
    proxy = await startProxy({ nc: await connect('proxy', 'proxy', 'px') })
    notary = await startNotary({ nc: await connect('notary', 'notary', 'notary'), dataDir: join(dir.path, 'notary'), freshKey, rootText: text(v1) })
  }, 180_000)
  afterAll(async () => {
    await notary?.close()
    await proxy?.close()
    await server?.close()
    for (const nc of conns) await nc.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  async function tree(name: string, content: string): Promise<string> {
    const src = join(dir.path, name)
    await writeTree(src, { 'a.txt': content })
    return src
  }

  it('a publish key rotated on the root stream is followed by publisher, server, notary and client; the retired key is refused everywhere', async () => {
    const r1 = await publish({ nc: publisherNc, src: await tree('t1', 'one\n'), product, key: k1, skipFeed: true })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 1, { timeout: 60_000 })
    await expect.poll(() => proxy.pool.view().find((m) => m.id === 'rs1')?.synced[product], { timeout: 30_000, interval: 100 }).toBe(1)
    const wc = join(dir.path, 'wc')
    await init(wc, { product, root: { text: text(v1), where: 'root.json' }, source: serverSource(clientNc, product), alerts: jetStreamAlertSink(clientNc) })

    // The new key is refused by the publisher until the root names it.
    await expect(publish({ nc: publisherNc, src: await tree('t2', 'two\n'), product, key: k2, skipFeed: true })).rejects.toThrow(/is not a publish key of product .* in root version 1/)

    const d = draftOf(v1.root)
    d.version = 2
    d.products[product] = { publish: [k2.publicKey], retired: [{ key: k1.publicKey, lastRev: 1, lastRelease: r1.manifestSha256! }] }
    await appendRoot(admin, text(signRoot(rootBody(d), [rootKey])))
    const r2 = await publish({ nc: publisherNc, src: await tree('t2', 'two\n'), product, key: k2, skipFeed: true })
    expect(r2.rev).toBe(2)
    // The server's trust file still pins root 1: it finds root 2 on the stream when k2's release arrives.
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 2, { timeout: 60_000 })
    await expect.poll(() => proxy.pool.view().find((m) => m.id === 'rs1')?.synced[product], { timeout: 30_000, interval: 100 }).toBe(2)

    const u = await update(wc, { source: serverSource(clientNc, product), alerts: jetStreamAlertSink(clientNc) })
    expect(u.to).toBe(2)
    expect(await snapshotTree(wc)).toEqual({ 'a.txt': 'file 644 two\n' })
    const s = await status(wc, { source: serverSource(clientNc, product) })
    expect(s.rootVersion).toBe(2)
    // The notary vouches for r2 once it follows root 2.
    await expect.poll(async () => (await status(wc, { source: serverSource(clientNc, product) })).freshness?.newestRev, { timeout: 30_000, interval: 200 }).toBe(2)

    // k1 (retired after r1) signs r3 and appends it: the server skips it, the client never installs it.
    const h = headers()
    h.set(REV_HEADER, '3')
    const late = signManifest({ format: 1, product, rev: 3, createdAt: new Date().toISOString(), pieceSize: 1024 * 1024, parent: r2.manifestSha256!, entries: [] }, k1)
    const lateSeq = (await jetstream(publisherNc).publish(releaseSubject(product), encodeRelease(late), { headers: h })).seq
    await expect.poll(() => lines.some((l) => l.startsWith(`rejected release seq ${lateSeq}:`) && /retired after r1 in root version 2/.test(l)), { timeout: 30_000, interval: 100 }).toBe(true)
    expect(server.store.synced[product]).toBe(2)
    const after = await update(wc, { source: serverSource(clientNc, product), alerts: jetStreamAlertSink(clientNc) })
    expect(after.to).toBe(2)
    expect(await snapshotTree(wc)).toEqual({ 'a.txt': 'file 644 two\n' })
  })
})
