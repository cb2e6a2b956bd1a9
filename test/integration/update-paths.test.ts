// Issue 11 on a real cluster (credentials + TLS): a daemon with --auto on a rolled-back working
// copy holds instead of spinning, and stops at once; `update` takes the same options with the
// same meaning through the swarm and directly; a partial update exits 3 and names what is
// blocked; alert delivery is reported as it happened. Issue 15 item 4: `update` of a copy whose
// sharing daemon runs is the daemon's run, handed over its control socket.
import type { StatelyInspectionEvent } from '@statelyai/inspect'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, statSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { startDaemon } from '../../actors/share-daemon/index.ts'
import { serverSource } from '../../actors/share-daemon/sources.ts'
import { init, openUpdate, rollback, update } from '../../actors/updater/index.ts'
import type { Authority } from '../../infra/auth/authority.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { freePort } from '../../infra/cluster/ports.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { INSPECT_SUBJECTS, SERVER_HEARTBEATS } from '../../infra/nats/names.ts'
import { createNatsInspector } from '../../infra/inspect/nats-inspector.ts'
import { checkStatelyInspectionEvent } from '../../infra/inspect/stately-events.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { clusterInfo, newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'
import { daemonCli, type DaemonCli } from '../helpers/daemon-cli.ts'

const exec = promisify(execFile)
const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

describe('update paths', { timeout: 120_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let authority: Authority
  let nc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let env: NodeJS.ProcessEnv
  const key = generatePublisherKey()
  const product = newProduct()

  beforeAll(async () => {
    dir = await tempDir('upswarm-update-paths-')
    // A cluster of its own: its proxy and server are the only ones, so the client reaches them.
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    authority = own.authority
    nc = await own.connect('test-update-paths')
    const src = join(dir.path, 'src')
    const trust = join(dir.path, 'trust.json')
    await writeTree(src, { 'c.ini': 'v=1\n', 'a.txt': 'a\n' })
    await publish({ nc, src, product, key, trust })
    await writeTree(src, { 'c.ini': 'v=2\n', 'd/x.txt': 'x\n' })
    await publish({ nc, src, product, key, trust })
    server = await startRepoServer({ nc, id: `paths-${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 2, { timeout: 30_000 })
    const client = await authority.issue({ kind: 'client', name: 'paths-client' })
    env = { ...process.env, UPSWARM_NATS: cluster.urls.join(','), UPSWARM_CREDS: client.file, UPSWARM_TLS_CA: authority.paths.caFile }
  }, 120_000)
  afterAll(async () => {
    await proxy?.close()
    await server?.close()
    await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  async function workingCopyAt1(name: string): Promise<string> {
    const wc = join(dir.path, name)
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source: serverSource(nc, product), alerts: jetStreamAlertSink(nc) })
    return wc
  }

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return cliWith(env, ...args)
  }

  async function cliWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env, timeout: 90_000 })
      return { code: 0, stdout, stderr }
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string }
      return { code: e.code, stdout: e.stdout, stderr: e.stderr }
    }
  }

  it('share-daemon — --auto on a rolled-back copy holds (one event), runs no update, and closes at once; its actors show in the inspection stream', async () => {
    const wc = await workingCopyAt1('held')
    await update(wc, { source: serverSource(nc, product), alerts: jetStreamAlertSink(nc) })
    await rollback(wc, { rev: 1 })
    const machines: string[] = []
    const daemon = await startDaemon({
      dir: wc, updater: openUpdate, nc, auto: true,
      inspect: (e) => {
        if (e.type === '@xstate.actor') machines.push((e.actorRef as unknown as { logic: { id?: string } }).logic.id ?? 'logic')
      },
    })
    let started = 0
    const held: [number, number][] = []
    daemon.on('update.started', () => started++)
    daemon.on('update.held', (rev, newest) => held.push([rev, newest]))
    try {
      if (held.length === 0) await once(daemon, 'update.held')
      expect(held).toEqual([[1, 2]])
      // Heartbeats keep telling of r2 (three more reach the daemon too): still no update, no second event.
      for await (const _ of nc.subscribe(SERVER_HEARTBEATS, { max: 3 })) { /* each one also reached the daemon */ }
      expect(started).toBe(0)
      expect(held).toHaveLength(1)
      expect(machines).toEqual(expect.arrayContaining(['shareDaemon', 'autoUpdate']))
    } finally {
      const t0 = Date.now()
      await daemon.close()
      expect(Date.now() - t0).toBeLessThan(5_000)
    }
    expect((await WorkingCopy.open(wc)).state.current).toBe(1)
  })

  it('share-daemon — an update through the daemon runs the update-run actor as the daemon\'s child: its inspection comes through the daemon\'s, rooted at the daemon, parented by the updates actor', async () => {
    const wc = await workingCopyAt1('child')
    const got: StatelyInspectionEvent[] = []
    const sub = nc.subscribe(INSPECT_SUBJECTS, {
      callback: (_e, msg) => {
        const checked = checkStatelyInspectionEvent(msg.json())
        if (checked.ok) got.push(checked.event)
      },
    })
    // The daemon's inspection only (no process inspector): whatever shows came through its actor tree.
    const inspector = createNatsInspector('daemon', { nc })
    const daemon = await startDaemon({ dir: wc, updater: openUpdate, nc, inspect: inspector.inspect })
    try {
      expect((await daemon.updateNow()).to).toBe(2)
    } finally {
      await daemon.close()
      await inspector.close()
      await nc.flush()
      sub.unsubscribe()
    }
    const actors = got.filter((m) => m.type === '@xstate.actor')
    const root = actors.find((m) => m.name === 'shareDaemon')!
    const updates = actors.find((m) => m.name === 'updates')!
    const runs = actors.filter((m) => m.name === 'updateRun')
    expect(root.rootId).toBe(root.sessionId)
    expect(root.parentId).toBeUndefined()
    expect(updates).toMatchObject({ rootId: root.sessionId, parentId: root.sessionId })
    expect(runs).toHaveLength(1)
    expect(runs[0]).toMatchObject({ rootId: root.sessionId, parentId: updates.sessionId })
    expect(JSON.parse(runs[0]!.definition!).id).toBe('updateRun')
    // The run's per-file actors (roots of their own in XState) show as its children in the daemon's tree.
    const files = actors.filter((m) => m.name === 'fileStatus')
    expect(files.length).toBeGreaterThan(0)
    for (const f of files) expect(f).toMatchObject({ rootId: root.sessionId, parentId: runs[0]!.sessionId })
    // No actor of the run is a root of its own beside the daemon.
    expect(actors.filter((m) => m.sessionId === m.rootId).map((m) => m.name)).toEqual(['shareDaemon'])
    const states = got.filter((m) => m.type === '@xstate.snapshot' && m.sessionId === runs[0]!.sessionId).map((m) => (m as { snapshot: { value?: unknown } }).snapshot.value)
    expect(states.at(-1)).toBe('done')
    const order = ['idle', 'checking', 'planning', 'downloading', 'applying', 'retaining', 'done']
    expect(states.map((v) => order.indexOf(String(v)))).toEqual([...states.map((v) => order.indexOf(String(v)))].sort((a, b) => a - b))
    expect((await WorkingCopy.open(wc)).state.current).toBe(2)
  })

  it('update — --rev 0 is refused alike directly and through the swarm; --on-conflict=abort is honoured by both', async () => {
    const wc = await workingCopyAt1('paths')
    const swarm = ['--bootstrap', clusterInfo().dhtBootstrap]
    const direct = await cli('update', wc, '--rev', '0', '--json')
    const viaSwarm = await cli('update', wc, '--rev', '0', '--json', ...swarm)
    for (const r of [direct, viaSwarm]) {
      expect(r.code).toBe(2)
      expect(r.stderr).toContain('UPSWARM_E_CONFIG')
    }
    await writeFile(join(wc, 'c.ini'), 'v=mine\n')
    for (const args of [[], swarm]) {
      const r = await cli('update', wc, '--on-conflict', 'abort', '--json', ...args)
      expect(r.code).toBe(1)
      expect(JSON.parse(r.stdout).error.code).toBe('UPSWARM_E_CONFLICT')
      expect((await WorkingCopy.open(wc)).state.current).toBe(1)
    }
  })

  it('update — a partial update exits 3 and lists what is blocked; the alert is reported delivered', async () => {
    const wc = await workingCopyAt1('partial')
    await writeFile(join(wc, 'c.ini'), 'v=mine\n')
    await writeFile(join(wc, 'd'), 'my file where r2 has a directory\n')
    const r = await cli('update', wc, '--json')
    expect(r.code).toBe(3)
    const out = JSON.parse(r.stdout)
    // The user's file `d` is itself a conflict (r2 has a directory there): both are alerted.
    expect(out).toMatchObject({ to: 2, partial: true, blocked: ['d/x.txt'], conflictPaths: ['c.ini', 'd'] })
    expect(out.alerts).toMatchObject({ undelivered: [], earlierDelivered: 0, pending: 0 })
    expect([...out.alerts.delivered].sort()).toEqual(['c.ini', 'd'])
    expect(await readFile(join(wc, 'd'), 'utf8')).toContain('my file')
  })

  const daemonOf = (wc: string): DaemonCli => daemonCli(wc, env)

  /** The environment of a command that cannot reach NATS: a loopback port nothing listens on. */
  async function withoutNats(): Promise<NodeJS.ProcessEnv> {
    return { ...env, UPSWARM_NATS: `tls://127.0.0.1:${await freePort()}` }
  }

  it('update — of a copy whose sharing daemon runs is the daemon\'s run: the command dials no NATS, and --rev, --on-conflict and their errors mean what they mean directly', async () => {
    const wc = await workingCopyAt1('control')
    const daemon = daemonOf(wc)
    try {
      const ready = JSON.parse((await daemon.until((l) => l.startsWith('READY '))).slice(6))
      expect(ready).toMatchObject({ rev: 1, control: join(wc, '.upswarm', 'daemon.sock') })
      expect(statSync(ready.control).mode & 0o777).toBe(0o600)
      const noNats = await withoutNats()

      // An unknown revision: the same error and exit code as the command's own run.
      const unknown = await cliWith(noNats, 'update', wc, '--rev', '9', '--json')
      const direct = await cli('update', wc, '--rev', '9', '--json', '--no-daemon')
      expect(direct.code).not.toBe(0)
      expect({ code: unknown.code, error: JSON.parse(unknown.stdout).error.code }).toEqual({ code: direct.code, error: JSON.parse(direct.stdout).error.code })

      // A hand edit and --on-conflict=abort: refused, nothing installed.
      await writeFile(join(wc, 'c.ini'), 'v=mine\n')
      const abort = await cliWith(noNats, 'update', wc, '--on-conflict', 'abort', '--json')
      expect(abort.code, abort.stderr).toBe(1)
      expect(JSON.parse(abort.stdout).error.code).toBe('UPSWARM_E_CONFLICT')
      expect((await WorkingCopy.open(wc)).state.current).toBe(1)

      // Then the update (the edit left alone, alerted): its result as a run of the command's own.
      const r = await cliWith(noNats, 'update', wc, '--json')
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toBe('')
      expect(JSON.parse(r.stdout)).toMatchObject({ from: 1, to: 2, conflicts: 1, conflictPaths: ['c.ini'], partial: false })
      expect(JSON.parse(await daemon.until((l) => l.includes('"update.done"')))).toMatchObject({ event: 'update.done', from: 1, to: 2 })
      expect((await WorkingCopy.open(wc)).state.current).toBe(2)
      expect(await readFile(join(wc, 'd', 'x.txt'), 'utf8')).toBe('x\n')
      expect(await readFile(join(wc, 'c.ini'), 'utf8')).toBe('v=mine\n')

      // Nothing newer: the daemon says so in the human form too.
      const again = await cliWith(noNats, 'update', wc)
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).toMatch(/^r2 → r2: 0 updated.*\n\(run by the sharing daemon of /)

      // A question that is not an update: answered with what is wrong, the daemon unharmed.
      const bad = await new Promise<string>((resolve, reject) => {
        const c = createConnection(ready.control)
        let got = ''
        c.on('data', (d: Buffer) => (got += d.toString()))
        c.on('end', () => resolve(got))
        c.on('error', reject)
        c.write('{"delete": "everything"}\n')
      })
      expect(JSON.parse(bad)).toEqual({ error: { code: 'UPSWARM_E_BAD_REQUEST', message: 'the daemon\'s control socket takes {"update": {...}}: no "update" object' } })

      daemon.child.kill('SIGTERM')
      await daemon.until((l) => l.includes('"daemon.stopped"'))
      expect(await daemon.exited).toEqual([0, null])
      expect(existsSync(ready.control)).toBe(false)
    } finally {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL')
    }
  })

  it('update — a copy\'s daemon fetches the new release\'s tree once the servers hold it, answers the command when the tree is in place and keeps the history store after; the next command waits for the lock', async () => {
    const wc = await workingCopyAt1('control-ahead')
    const daemon = daemonCli(wc, { ...env, UPSWARM_TIMINGS: '1' })
    try {
      await daemon.until((l) => l.startsWith('READY '))
      // r2 is on the server already: the daemon verifies it (a format-1 product here: its manifest;
      // format2-client has the tree nodes) and keeps it, the tree untouched.
      expect(JSON.parse(await daemon.until((l) => l.includes('"release.prefetched"')))).toEqual({ event: 'release.prefetched', rev: 2 })
      expect((await WorkingCopy.open(wc)).state.current).toBe(1)
      expect(await readFile(join(wc, 'c.ini'), 'utf8')).toBe('v=1\n')

      const noNats = await withoutNats()
      const r = await cliWith(noNats, 'update', wc, '--json')
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({ from: 1, to: 2 })
      // A command right after it takes the lock, waiting for the daemon's retain if need be.
      const st = await cliWith(noNats, 'history', wc, '--json')
      expect(st.code, st.stderr).toBe(0)
      expect(JSON.parse(st.stdout)).toMatchObject({ current: 2 })
      expect(JSON.parse(st.stdout).revisions.filter((x: { local: boolean }) => x.local).map((x: { rev: number }) => x.rev)).toEqual([1, 2])

      daemon.child.kill('SIGTERM')
      await daemon.until((l) => l.includes('"daemon.stopped"'))
      expect(await daemon.exited).toEqual([0, null])
      // The daemon's own marks: the result went out before the history store was kept.
      const marks = daemon.stderr().split('\n').filter((l) => l.startsWith('upswarm timings:')).map((l) => l.replace(/^.*\+\s*[\d.]+\s+/, ''))
      expect(marks.indexOf('daemon: release prefetched')).toBeGreaterThanOrEqual(0)
      expect(marks.indexOf('control: result sent')).toBeGreaterThan(marks.indexOf('daemon: release prefetched'))
      expect(marks.indexOf('retain: done')).toBeGreaterThan(marks.indexOf('control: result sent'))
      expect(marks.indexOf('daemon: history kept')).toBeGreaterThan(marks.indexOf('retain: done'))
    } finally {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL')
    }
  })

  it('update — a daemon killed with SIGKILL leaves its socket behind: the command finds nobody there and runs the update itself', async () => {
    const wc = await workingCopyAt1('control-stale')
    const daemon = daemonOf(wc)
    const ready = JSON.parse((await daemon.until((l) => l.startsWith('READY '))).slice(6))
    daemon.child.kill('SIGKILL')
    expect(await daemon.exited).toEqual([null, 'SIGKILL'])
    expect(existsSync(ready.control)).toBe(true)
    const r = await cli('update', wc, '--json')
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ from: 1, to: 2 })
    expect(JSON.parse(r.stdout).uploadedBytes).toBeUndefined()
    expect((await WorkingCopy.open(wc)).state.current).toBe(2)
  })
})
