// Issue 16 item 2 on a real cluster (credentials + TLS), with real processes: `upswarm update`
// with install hooks and a health check. A health command that fails (or runs past its time)
// takes the working copy back to the previous revision byte for byte, leaves no half-written file,
// records it for `status` and `history`, alerts the administrators, and holds the copy there; a
// failing pre-install hook changes nothing.
import { execFile } from 'node:child_process'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { readAlerts, type StoredAlert } from '../../infra/nats/alert-reader.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { snapshotTree } from '../helpers/local-publish.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr })
    })
  })
}

/** The tree byte for byte (SHA-256 of each file), the metadata left out. */
const treeBytes = (root: string): Promise<Record<string, string>> => snapshotTree(root, { hash: true })

/** Files an interrupted or half-done install would leave in the metadata: staging area and journal. */
async function leftovers(wc: string): Promise<string[]> {
  const meta = await readdir(join(wc, '.upswarm'))
  const staging = meta.includes('staging') ? await readdir(join(wc, '.upswarm', 'staging')) : []
  return [...meta.filter((n) => n === 'journal.json'), ...staging.map((n) => `staging/${n}`)]
}

describe('install hooks and health checks', { timeout: 180_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let nc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let env: NodeJS.ProcessEnv
  const key = generatePublisherKey()
  const product = newProduct()
  let r1: Record<string, string>

  beforeAll(async () => {
    dir = await tempDir('upswarm-install-hooks-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    nc = await own.connect('test-install-hooks')
    const trust = join(dir.path, 'trust.json')
    const src1 = join(dir.path, 'src1')
    const big = randomContent(3 * 1024 * 1024 + 17)
    await writeTree(src1, { 'app.txt': 'version 1\n', 'lib/engine.bin': big, 'conf/app.ini': 'mode=a\n', 'bin/run': { mode: 0o755, content: '#!/bin/sh\necho 1\n' } })
    await publish({ nc, src: src1, product, key, trust })
    const bigger = Buffer.concat([big.subarray(0, 1024 * 1024), randomContent(2 * 1024 * 1024)])
    await writeTree(join(dir.path, 'src2'), { 'app.txt': 'version 2\n', 'lib/engine.bin': bigger, 'lib/new.bin': randomContent(70_000), 'bin/run': { mode: 0o755, content: '#!/bin/sh\necho 2\n' } })
    await publish({ nc, src: join(dir.path, 'src2'), product, key, trust })
    r1 = await treeBytes(src1)
    server = await startRepoServer({ nc, id: `hooks-${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 2, { timeout: 60_000 })
    const client = await own.authority.issue({ kind: 'client', name: 'hooks-client' })
    const { UPSWARM_TRACKER: _t, UPSWARM_BOOTSTRAP: _b, ...rest } = process.env
    env = { ...rest, UPSWARM_NATS: cluster.urls.join(','), UPSWARM_CREDS: client.file, UPSWARM_TLS_CA: own.authority.paths.caFile }
  }, 180_000)
  afterAll(async () => {
    await proxy?.close()
    await server?.close()
    await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('updater — a failing health check rolls the working copy back to the previous revision byte for byte, records it, alerts, and holds it there', async () => {
    const wc = join(dir.path, 'wc')
    const log = join(dir.path, 'hooks.log')
    const made = await cli(env, 'init', wc, '--product', product, '--pubkey', key.publicKey, '--rev', '1')
    expect(made.code, made.stderr).toBe(0)
    expect(await treeBytes(wc)).toEqual(r1)

    const note = `echo "$UPSWARM_HOOK $UPSWARM_RUN r$UPSWARM_FROM_REV->r$UPSWARM_TO_REV $(cat app.txt)" >> ${log}`
    const updated = await cli(env, 'update', wc, '--pre-install', note, '--post-install', note,
      '--health-cmd', `${note}; echo "app says $(cat app.txt)" >&2; grep -q 'version 1' app.txt`, '--health-timeout', '60')
    expect(updated.code).toBe(1)
    expect(updated.stderr).toMatch(/r2 failed its health check at \S+, rolled back to r1 \(.*exited with 1: app says version 2\)/)
    expect(updated.stderr).toContain('[UPSWARM_E_HEALTH]')
    // The hooks ran in the working copy, in order, with the revisions in their environment;
    // post-install ran once more on the revision gone back to.
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual([
      'pre-install update r1->r2 version 1',
      'post-install update r1->r2 version 2',
      'health update r1->r2 version 2',
      'post-install revert r2->r1 version 1',
    ])
    expect(await treeBytes(wc)).toEqual(r1)
    expect(await leftovers(wc)).toEqual([])

    const status = await cli(env, 'status', wc, '--json')
    expect(status.code, status.stderr).toBe(0)
    const s = JSON.parse(status.stdout) as { rev: number; latest: number; target: number; reverted: { rev: number; to: number; phase: string; reason: string; at: string } }
    expect(s).toMatchObject({ rev: 1, latest: 2, target: 1, reverted: { rev: 2, to: 1, phase: 'health' } })
    expect((await cli(env, 'status', wc)).stdout).toContain(`r2 failed its health check at ${s.reverted.at}, rolled back to r1`)
    const history = await cli(env, 'history', wc)
    expect(history.stdout).toMatch(/^\s+r2 .*r2 failed its health check at \S+, rolled back to r1/m)
    expect(history.stdout).toMatch(/^\* r1 /m)

    const alerts: StoredAlert[] = []
    await readAlerts(nc, { product, sinceMs: 0 }, (a) => alerts.push(a))
    expect(alerts.map((a) => ({ from: a.from, body: a.body }))).toEqual([{
      from: 'hooks-client',
      body: { type: 'health', product, clientId: expect.any(String), rev: 2, to: 1, phase: 'health', reason: expect.stringContaining('exited with 1'), at: s.reverted.at },
    }])

    // Held, as after a rollback: an automatic update does not take r2 again.
    const again = await cli(env, 'update', wc, '--json', '--health-cmd', 'exit 1')
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ from: 1, to: 1 })
    expect(await treeBytes(wc)).toEqual(r1)
  })

  it('updater — a failing pre-install hook aborts the install with nothing changed; a health check past --health-timeout is killed and reverted', async () => {
    const wc = join(dir.path, 'wc-pre')
    const made = await cli(env, 'init', wc, '--product', product, '--pubkey', key.publicKey, '--rev', '1')
    expect(made.code, made.stderr).toBe(0)
    const stateBefore = await readFile(join(wc, '.upswarm', 'state.json'), 'utf8')

    const refused = await cli(env, 'update', wc, '--pre-install', 'echo "not in the maintenance window" >&2; exit 3')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/pre-install hook of r2 in .* exited with 3: not in the maintenance window; nothing in .* was changed/)
    expect(refused.stderr).toContain('[UPSWARM_E_HOOK]')
    expect(await treeBytes(wc)).toEqual(r1)
    expect(await leftovers(wc)).toEqual([])
    expect(await readFile(join(wc, '.upswarm', 'state.json'), 'utf8')).toBe(stateBefore)

    const pidFile = join(dir.path, 'health.pid')
    const slow = await cli(env, 'update', wc, '--health-cmd', `echo $$ > ${pidFile}; exec sleep 600`, '--health-timeout', '1')
    expect(slow.code).toBe(1)
    expect(slow.stderr).toMatch(/r2 failed its health check at \S+, rolled back to r1 \(the health check did not finish within 1 s\)/)
    expect(await treeBytes(wc)).toEqual(r1)
    expect(await leftovers(wc)).toEqual([])
    // The health command's process was killed, not left behind.
    const pid = Number((await readFile(pidFile, 'utf8')).trim())
    expect(() => process.kill(pid, 0)).toThrow()
  })
})
