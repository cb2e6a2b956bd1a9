// Issue 12 item 6: docs/ops.md's table of services is what the running services serve. Every
// service answers $SRV.PING and $SRV.INFO; the endpoints they announce are exactly the subjects
// the table lists (nothing listed that nothing serves, nothing served that is not listed); and
// every example request of the table, sent as written, gets an answer that is not an error.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { rootBody, rootText, signRoot } from '../../infra/formats/root.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { identityOf } from '../../infra/nats/identity.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { fileEntries } from '../../infra/release/manifest.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'

interface Row { subject: string; example: { subject: string; body: string } }

/** The rows of the services table of docs/ops.md's "NATS subjects": subject and example request. */
async function documentedServices(): Promise<Row[]> {
  const page = await readFile(join(PROJECT_ROOT, 'docs', 'ops.md'), 'utf8')
  const table = page.split('## NATS subjects')[1]!.split('**Services**')[1]!.split('\n\n')[1]!
  return table.split('\n').filter((l) => l.startsWith('| `')).map((l) => {
    const cells = l.split(' | ')
    const example = /nats req (\S+) '([^']*)'/.exec(cells[2]!)
    if (!example) throw new Error(`docs/ops.md: no example request in the row of ${cells[0]}`)
    return { subject: /`([^`]+)`/.exec(cells[0]!)![1]!, example: { subject: example[1]!, body: example[2]! } }
  })
}

describe('ops doc — NATS subjects', { timeout: 120_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let nc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let tracker: Tracker
  const product = newProduct()
  const serverId = `ops-${process.pid}`
  let sha256 = ''
  let node = ''

  beforeAll(async () => {
    dir = await tempDir('upswarm-ops-subjects-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    nc = await own.connect('test-ops-subjects')
    const trust = join(dir.path, 'trust.json')
    await writeTree(join(dir.path, 'src'), { 'a.txt': 'the first file of r1\n' })
    // A root that has the product publish format 2 beside format 1, so `meta` and `nodes` have something to serve.
    const key = generatePublisherKey()
    const body = rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [key.publicKey], rootThreshold: 1, freshKeys: [key.publicKey], products: { [product]: { publish: [key.publicKey] } } }) as { products: Record<string, { formats: number[] }> }
    body.products[product]!.formats = [1, 2]
    await appendRoot(nc, rootText(signRoot(body, [key])))
    const r = await publish({ nc, src: join(dir.path, 'src'), product, key, trust, skipFeed: true })
    sha256 = fileEntries(r.release!.manifest)[0]!.sha256
    node = r.release2!.tree
    server = await startRepoServer({ nc, id: serverId, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc })
    tracker = await startTracker({ nc, id: 'ops' })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 1, { timeout: 30_000 })
    await waitFor(server.meta.actor, () => server.meta.store.synced[product] === 1, { timeout: 30_000 })
    // The proxy learns it from the heartbeat sent at once: its `meta` and `nodes` examples go to this server.
    await waitFor(server.actor, () => proxy.pool.member(serverId) !== undefined, { timeout: 10_000 })
    await waitFor(proxy.pool.member(serverId)!, (m) => m.context.status.synced2?.[product] === 1, { timeout: 10_000 })
  }, 120_000)
  afterAll(async () => {
    await tracker?.close()
    await proxy?.close()
    await server?.close()
    await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('ops — every service answers $SRV.PING and $SRV.INFO, and serves exactly the subjects docs/ops.md lists', async () => {
    const ask = async (subject: string) => {
      const out: Record<string, unknown>[] = []
      for await (const m of await nc.requestMany(subject, '', { strategy: 'count', maxMessages: 3, maxWait: 10_000 })) out.push(m.json())
      return out
    }
    expect((await ask('$SRV.PING')).map((p) => p.name).sort()).toEqual(['upswarm-proxy', 'upswarm-repo', 'upswarm-tracker'])
    const infos = await ask('$SRV.INFO') as { name: string; endpoints: { subject: string }[] }[]
    expect(infos.map((i) => i.name).sort()).toEqual(['upswarm-proxy', 'upswarm-repo', 'upswarm-tracker'])
    const served = infos.flatMap((i) => i.endpoints.map((e) => e.subject
      .replace(`upswarm.repo.${serverId}.`, 'upswarm.repo.<server>.')
      .replace(/^(upswarm\.tracker\.[a-z]+)\.\*$/, '$1.<identity>'))).sort()
    expect((await documentedServices()).map((r) => r.subject).sort()).toEqual(served)
  })

  it('ops — every example request of docs/ops.md, sent as written, is answered without an error', async () => {
    const fill = (s: string) => s.replaceAll('<server>', serverId).replaceAll('<product>', product).replaceAll('<sha256>', sha256).replaceAll('<node>', node)
      .replaceAll('<identity>', identityOf(nc)).replaceAll('<peer-id>', 'ab'.repeat(20))
    const answers: string[] = []
    for (const row of await documentedServices()) {
      const reply = await nc.request(fill(row.example.subject), fill(row.example.body), { timeout: 10_000 })
      const error = reply.headers?.get('Nats-Service-Error')
      expect(error ?? '', `${row.example.subject}: ${error}`).toBe('')
      expect(reply.data.length, row.example.subject).toBeGreaterThan(0)
      answers.push(row.subject)
    }
    expect(answers.length).toBe(17)
  })
})
