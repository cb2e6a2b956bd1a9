// A real update to inspect (issue 12): a cluster of the test's own (credentials + TLS), r1 and r2
// published, a repository server and the proxy, a client working copy at r1 made by `upswarm
// init`; `update()` runs `upswarm update --inspect` as that client machine.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { waitFor } from 'xstate'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import type { Authority } from '../../infra/auth/authority.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from './cluster.ts'
import { randomContent, writeTree } from './trees.ts'

export const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

export interface CliResult { code: number; stdout: string; stderr: string }

export function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr })
    })
  })
}

export interface UpdateFixture {
  dir: string
  cluster: NatsCluster
  authority: Authority
  /** The operator's connection (admin): reads upswarm.inspect.>. */
  admin: NatsConnection
  /** The client machine's identity name: its update publishes on upswarm.inspect.updater.<name>. */
  clientName: string
  /** Environment of the client machine's commands (its creds, the cluster, the CA). */
  clientEnv: NodeJS.ProcessEnv
  /** Environment of the operator's commands (admin creds). */
  adminEnv: NodeJS.ProcessEnv
  wc: string
  /** `upswarm update WC --inspect --json` as the client machine, r1 → r2. */
  update(): Promise<CliResult>
  close(): Promise<void>
}

export async function updateFixture(prefix: string): Promise<UpdateFixture> {
  const tmp = await tempDir(prefix)
  const own = await startOwnCluster(tmp.path, 1)
  const admin = await own.connect('test-inspect-admin')
  const key = generatePublisherKey()
  const product = newProduct()
  const src = join(tmp.path, 'src')
  const trust = join(tmp.path, 'trust.json')
  const files = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`lib/f${i}.bin`, randomContent(40_000 + i)]))
  await writeTree(src, { ...files, 'conf/app.ini': 'v=1\n' })
  await publish({ nc: admin, src, product, key, trust, skipFeed: true })
  let server: RepoServer | undefined
  let proxy: Proxy | undefined
  const close = async (): Promise<void> => {
    await proxy?.close()
    await server?.close()
    await admin.close()
    await own.cluster.stop()
    await tmp.cleanup()
  }
  try {
    server = await startRepoServer({ nc: admin, id: `inspect-${process.pid}`, dataDir: join(tmp.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc: admin })
    await waitFor(server.actor, () => (server!.store.synced[product] ?? 0) >= 1, { timeout: 30_000 })
    const clientName = 'inspect-client'
    const client = await own.authority.issue({ kind: 'client', name: clientName })
    const adminCreds = await own.authority.issue({ kind: 'admin', name: 'inspect-admin' })
    const { UPSWARM_NATS: _n, UPSWARM_CREDS: _c, UPSWARM_TLS_CA: _t, UPSWARM_TRACKER: _tr, UPSWARM_BOOTSTRAP: _b, UPSWARM_INSPECT: _i, ...rest } = process.env
    const base = { ...rest, UPSWARM_NATS: own.cluster.urls.join(','), UPSWARM_TLS_CA: own.authority.paths.caFile }
    const clientEnv = { ...base, UPSWARM_CREDS: client.file }
    const adminEnv = { ...base, UPSWARM_CREDS: adminCreds.file }
    const wc = join(tmp.path, 'wc')
    const made = await cli(clientEnv, 'init', wc, '--product', product, '--pubkey', key.publicKey, '--json')
    if (made.code !== 0) throw new Error(`init failed: ${made.stderr}`)
    await writeTree(src, { 'lib/f0.bin': randomContent(50_000), 'lib/f3.bin': randomContent(30_000), 'new/n.txt': 'new in r2\n', 'conf/app.ini': 'v=2\n' })
    await publish({ nc: admin, src, product, key, trust, skipFeed: true })
    await waitFor(server.actor, () => (server!.store.synced[product] ?? 0) >= 2, { timeout: 30_000 })
    // …and the proxy knows it from the server's heartbeat, so that it assigns r2.
    // (Its pool member exists: the server has sent heartbeats every second since before `init`.)
    const member = proxy.pool.member(server.id)
    if (!member) throw new Error(`the proxy has no pool member for server ${server.id}: no heartbeat arrived`)
    await waitFor(member, (m) => (m.context.status.synced[product] ?? 0) >= 2, { timeout: 30_000 })
    return {
      dir: tmp.path, cluster: own.cluster, authority: own.authority, admin, clientName, clientEnv, adminEnv, wc, close,
      update: () => cli(clientEnv, 'update', wc, '--inspect', '--json'),
    }
  } catch (err) {
    await close()
    throw err
  }
}
