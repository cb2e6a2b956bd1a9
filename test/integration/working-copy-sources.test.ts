// Issue 11 item 7 on a real cluster (credentials + TLS): `init` records where the working copy
// comes from, and `update DIR` then works with no flag and no variable, like `git pull`; a flag
// still wins over what was recorded.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr })
    })
  })
}

describe('working copy sources', { timeout: 120_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let nc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let given: { nats: string; creds: string; tlsCa: string }
  /** The environment without any NATS setting: only what the working copy recorded remains. */
  let bare: NodeJS.ProcessEnv
  const key = generatePublisherKey()
  const product = newProduct()

  beforeAll(async () => {
    dir = await tempDir('upswarm-wc-sources-')
    // A cluster of its own: its proxy and server are the only ones, so the client reaches them.
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    nc = await own.connect('test-wc-sources')
    const src = join(dir.path, 'src')
    const trust = join(dir.path, 'trust.json')
    await writeTree(src, { 'a.txt': 'a1\n' })
    await publish({ nc, src, product, key, trust })
    await writeTree(src, { 'a.txt': 'a2\n', 'b.txt': 'b\n' })
    await publish({ nc, src, product, key, trust })
    server = await startRepoServer({ nc, id: `sources-${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 2, { timeout: 30_000 })
    const client = await own.authority.issue({ kind: 'client', name: 'sources-client' })
    given = { nats: cluster.urls.join(','), creds: client.file, tlsCa: own.authority.paths.caFile }
    const { UPSWARM_NATS: _n, UPSWARM_CREDS: _c, UPSWARM_TLS_CA: _t, UPSWARM_TRACKER: _tr, UPSWARM_BOOTSTRAP: _b, UPSWARM_SITE: _s, ...rest } = process.env
    bare = rest
  }, 120_000)
  afterAll(async () => {
    await proxy?.close()
    await server?.close()
    await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('updater — init records its sources; update and status use them with no flag or variable; a flag wins', async () => {
    const wc = join(dir.path, 'wc')
    const made = await cli(bare, 'init', wc, '--product', product, '--pubkey', key.publicKey, '--rev', '1', '--json',
      '--nats', given.nats, '--creds', given.creds, '--tls-ca', given.tlsCa, '--site', 'eu-west')
    expect(made.code, made.stderr).toBe(0)
    // The site is recorded as given too (issue 14 item 4).
    expect(JSON.parse(await readFile(join(wc, '.upswarm', 'sources.json'), 'utf8'))).toEqual({ format: 1, ...given, site: 'eu-west' })
    const badSite = await cli(bare, 'init', join(dir.path, 'wc-bad-site'), '--product', product, '--pubkey', key.publicKey, '--site', 'two words',
      '--nats', given.nats, '--creds', given.creds, '--tls-ca', given.tlsCa)
    expect(badSite.code).toBe(2)
    expect(badSite.stderr).toContain('--site "two words": a site label is 1 to 64 letters')
    // From the environment, the error names the variable, not a flag the user never typed.
    const badEnvSite = await cli({ ...bare, UPSWARM_SITE: 'a;b' }, 'init', join(dir.path, 'wc-bad-env-site'), '--product', product, '--pubkey', key.publicKey,
      '--nats', given.nats, '--creds', given.creds, '--tls-ca', given.tlsCa)
    expect(badEnvSite.code).toBe(2)
    expect(badEnvSite.stderr).toContain('UPSWARM_SITE "a;b": a site label is 1 to 64 letters')

    const status = await cli(bare, 'status', wc, '--json')
    expect(status.code, status.stderr).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ rev: 1, latest: 2 })

    const updated = await cli(bare, 'update', wc, '--json')
    expect(updated.code, updated.stderr).toBe(0)
    expect(JSON.parse(updated.stdout)).toMatchObject({ from: 1, to: 2 })

    // A flag wins over the record: status goes to the address given (nothing listens there).
    const probe = createServer().listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const elsewhere = `nats://127.0.0.1:${(probe.address() as { port: number }).port}`
    probe.close()
    await once(probe, 'close')
    const flagged = await cli(bare, 'status', wc, '--json', '--nats', elsewhere)
    expect(flagged.code, flagged.stderr).toBe(0)
    expect(flagged.stderr).toContain(`note: NATS at ${elsewhere} unreachable`)
    expect(JSON.parse(flagged.stdout)).toMatchObject({ rev: 2 })
  })
})
