// Issue 16 item 3 on a real cluster with credentials and TLS: three `--auto` sharing daemons (in
// process, each its own client identity, two of them in the first half of the fleet) report to
// the fleet view; a release at 50% moves the two; `upswarm fleet --json` (admin creds, through the
// CLI) shows each client at its revision and stage, the rollout's state and the peer share; and
// each client's reports stay at most one per 10 s (counted as they arrive, by their own stamps); a
// one-shot `upswarm update` reports once, after its run, and `watch` as it starts.
import { execFile, spawn } from 'node:child_process'
import { once as onceEvent } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { rollout } from '../../actors/operator/rollout.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { startDaemon, type Daemon } from '../../actors/share-daemon/index.ts'
import { serverSource } from '../../actors/share-daemon/sources.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import { init, openUpdate } from '../../actors/updater/index.ts'
import type { FleetView } from '../../actors/operator/fleet.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { rootBody, rootText, signRoot } from '../../infra/formats/root.ts'
import { stageOf } from '../../infra/formats/rollout.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { FleetReportSchema, type FleetReport } from '../../infra/nats/fleet.ts'
import { credsClaims } from '../../infra/nats/identity.ts'
import { fleetSubject } from '../../infra/nats/names.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { FLEET_REPORT_MIN_INTERVAL_MS } from '../../machines/fleet-report.machine.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'
import { stopFleet } from '../helpers/fleet-teardown.ts'

const exec = promisify(execFile)
const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
const HALF = 5_000

interface Client { name: string; key: string; inStage: boolean; nc: NatsConnection; daemon: Daemon }

describe('fleet view', { timeout: 240_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let own: Awaited<ReturnType<typeof startOwnCluster>>
  let admin: NatsConnection
  let adminCreds: string
  let caFile: string
  let publisher: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let tracker: Tracker
  const clients: Client[] = []
  const product = newProduct()
  const pub = generatePublisherKey()
  const rootKey = generatePublisherKey()
  /** Every report admin saw, per client, in arrival order. */
  const reports = new Map<string, FleetReport[]>()
  const arrived: Array<() => void> = []

  beforeAll(async () => {
    dir = await tempDir('upswarm-fleet-')
    own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    caFile = own.authority.paths.caFile
    adminCreds = (await own.authority.issue({ kind: 'admin', name: 'admin' })).file
    admin = await own.connect('fleet-admin')
    publisher = await connectNats(cluster.urls, 'fleet-publisher', { creds: (await own.authority.issue({ kind: 'publisher', name: 'publisher' })).file, tlsCa: caFile })
    const root = signRoot(rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey], products: { [product]: { publish: [pub.publicKey] } } }), [rootKey])
    await appendRoot(admin, rootText(root))
    const trust = join(dir.path, 'trust.json')
    await writeTree(join(dir.path, 'src1'), { 'app.txt': 'version 1\n', 'lib/a.bin': randomContent(200_000) })
    await writeTree(join(dir.path, 'src2'), { 'app.txt': 'version 2\n', 'lib/a.bin': randomContent(200_000) })
    await publish({ nc: publisher, src: join(dir.path, 'src1'), product, key: pub, trust, skipFeed: true })
    server = await startRepoServer({ nc: admin, id: `fleet-${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc: admin })
    tracker = await startTracker({ nc: admin, id: 'fleet' })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 1, { timeout: 60_000 })
    await rollout({ nc: publisher, product, rev: 1, action: { percent: 10_000 }, keys: [pub] })

    // Admin follows the reports as the stream takes them (the service import brings them into UPSWARM).
    admin.subscribe(fleetSubject(product, '*'), {
      callback: (_e, m) => {
        const r = FleetReportSchema.parse(m.json())
        reports.set(m.subject.split('.')[3]!, [...(reports.get(m.subject.split('.')[3]!) ?? []), r])
        for (const f of arrived.splice(0)) f()
      },
    })
    await admin.flush()

    // Client identities until two fall in the first half of the fleet and one outside it.
    const chosen: { name: string; file: string; key: string; inStage: boolean }[] = []
    for (let i = 0; chosen.length < 3 && i < 200; i++) {
      const issued = await own.authority.issue({ kind: 'client', name: `fleet-c${i}` })
      const key = credsClaims(await readFile(issued.file, 'utf8'), issued.file).sub
      const inStage = stageOf(product, key) < HALF
      if (chosen.filter((c) => c.inStage === inStage).length < (inStage ? 2 : 1)) chosen.push({ name: `fleet-c${i}`, file: issued.file, key, inStage })
    }
    for (const c of chosen) {
      const nc = await connectNats(cluster.urls, `fleet-${c.name}`, { creds: c.file, tlsCa: caFile })
      const wc = join(dir.path, c.name)
      await init(wc, { product, root: { text: rootText(root), where: 'root.json' }, source: serverSource(nc, product), rev: 1 })
      const daemon = await startDaemon({ dir: wc, nc, updater: openUpdate, auto: true, fleet: true, host: '127.0.0.1', announceIntervalMs: 1_000 })
      clients.push({ ...c, nc, daemon })
    }
  }, 240_000)

  afterAll(async () => {
    await stopFleet({ clients, tracker, proxy, server, publisher, admin, cluster, dir })
  })

  /** Resolves once every client's newest report says `rev`. */
  const reported = (which: Client[], rev: number): Promise<void> => new Promise((resolve) => {
    const check = (): void => {
      if (which.every((c) => reports.get(c.name)?.at(-1)?.rev === rev)) resolve()
      else arrived.push(check)
    }
    check()
  })

  it('fleet — three daemons report; `fleet --json` shows each at its revision and stage and the rollout at 50%; at most one report per 10 s per client; a one-shot update reports once and watch as it starts; the human view lists revisions with their rollouts', async () => {
    await reported(clients, 1)
    const inside = clients.filter((c) => c.inStage)
    const outside = clients.filter((c) => !c.inStage)
    await publish({ nc: publisher, src: join(dir.path, 'src2'), product, key: pub, trust: join(dir.path, 'trust.json'), skipFeed: true })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 2, { timeout: 60_000 })
    await rollout({ nc: publisher, product, rev: 2, action: { percent: HALF }, keys: [pub] })
    // The update's report waits for the end of the interval that began with the report at start.
    await reported(inside, 2)
    for (const c of inside) expect(c.daemon.rev()).toBe(2)
    for (const c of outside) expect(c.daemon.rev()).toBe(1)

    const { stdout } = await exec(process.execPath, [CLI, 'fleet', '--product', product, '--json', '--nats', cluster.urls.join(','), '--creds', adminCreds, '--tls-ca', caFile])
    const view = JSON.parse(stdout) as FleetView
    expect(view.products.map((p) => p.product)).toEqual([product])
    const [p] = view.products
    expect(p!.clients.map((c) => ({ from: c.from, rev: c.rev, stage: c.stage, role: c.role })).sort((a, b) => a.from.localeCompare(b.from)))
      .toEqual(clients.map((c) => ({ from: c.name, rev: c.inStage ? 2 : 1, stage: stageOf(product, c.key), role: 'daemon' })).sort((a, b) => a.from.localeCompare(b.from)))
    expect(p!.releases).toMatchObject([
      { rev: 2, clients: inside.map((c) => c.name).sort(), rollout: { state: 'active', percent: HALF, seq: 2 } },
      { rev: 1, clients: outside.map((c) => c.name), rollout: { state: 'active', percent: 10_000, seq: 1 } },
    ])
    expect(p!.failures).toEqual([])
    const last = p!.clients.filter((c) => c.last)
    expect(last.map((c) => c.from).sort()).toEqual(inside.map((c) => c.name).sort())
    const fromPeers = last.reduce((n, c) => n + c.last!.bytesFromPeers, 0)
    const fromServers = last.reduce((n, c) => n + c.last!.bytesFromServers, 0)
    expect(fromPeers + fromServers).toBeGreaterThan(0)
    expect(p!.peerShare).toEqual({ bytesFromPeers: fromPeers, bytesFromServers: fromServers, share: fromPeers / (fromPeers + fromServers) })

    // The rate bound, from every report that arrived: numbered 1, 2, … without a gap, each sent
    // at least the minimum interval after the one before. The clients that updated sent exactly
    // two (at start, after the update); the other one.
    for (const c of clients) {
      const mine = reports.get(c.name)!
      expect(mine.map((r) => r.seq)).toEqual(mine.map((_, i) => i + 1))
      // (The stamps are wall-clock time, the timers monotonic: a few ms either way.)
      for (let i = 1; i < mine.length; i++) expect(Date.parse(mine[i]!.sentAt) - Date.parse(mine[i - 1]!.sentAt)).toBeGreaterThanOrEqual(FLEET_REPORT_MIN_INTERVAL_MS - 10)
      expect(mine.map((r) => r.rev)).toEqual(c.inStage ? [1, 2] : [1])
    }
    // A one-shot `upswarm update` (its own identity, through the CLI) reports once, after its run.
    const oneShot = await own.authority.issue({ kind: 'client', name: 'fleet-once' })
    const once = join(dir.path, 'fleet-once')
    const env = { ...process.env, UPSWARM_NATS: cluster.urls.join(','), UPSWARM_CREDS: oneShot.file, UPSWARM_TLS_CA: caFile, UPSWARM_TRACKER: '', UPSWARM_BOOTSTRAP: '' }
    await exec(process.execPath, [CLI, 'init', once, '--product', product, '--pubkey', pub.publicKey, '--rev', '1', '--json'], { env })
    const reportedOnce = new Promise<void>((resolve) => {
      const check = (): void => (reports.get('fleet-once')?.length ? resolve() : void arrived.push(check))
      check()
    })
    await exec(process.execPath, [CLI, 'update', once, '--json'], { env })
    await reportedOnce
    expect(reports.get('fleet-once')).toMatchObject([{ role: 'update', rev: 2, seq: 1, health: { state: 'ok', rev: 2 }, last: { from: 1, to: 2 } }])
    // `watch` reports as it starts.
    const watching = new Promise<void>((resolve) => {
      const check = (): void => (reports.get('fleet-once')?.some((r) => r.role === 'watch') ? resolve() : void arrived.push(check))
      check()
    })
    const watch = spawn(process.execPath, [CLI, 'watch', once, '--json'], { env, stdio: 'ignore' })
    try {
      await watching
    } finally {
      watch.kill('SIGTERM')
      await onceEvent(watch, 'exit')
    }
    expect(reports.get('fleet-once')!.at(-1)).toMatchObject({ role: 'watch', rev: 2, seq: 1, health: { state: 'none' } })
    // The human view: one line per revision with its clients and its rollout.
    const human = (await exec(process.execPath, [CLI, 'fleet', '--product', product, '--nats', cluster.urls.join(','), '--creds', adminCreds, '--tls-ca', caFile])).stdout
    expect(human).toContain(`${product}: 4 client(s)`)
    expect(human).toMatch(/^ {2}r2 +3 client\(s\) +active at 50% \(statement 2\)/m)
    expect(human).toMatch(/^ {2}r1 +1 client\(s\) +active at 100% \(statement 1\)/m)
    process.stdout.write(`fleet: ${clients.length} clients, ${[...reports.values()].reduce((n, r) => n + r.length, 0)} reports; peer share ${(p!.peerShare.share! * 100).toFixed(1)}%\n`)
  })
})
