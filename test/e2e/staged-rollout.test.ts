// Issue 16 item 1 end to end, on a real cluster with credentials and TLS: twelve `--auto` clients —
// ten sharing daemons (in process, each its own client identity, chosen so that three of the
// twelve stage hashes fall in the first 20% of the fleet) and two `watch --auto` — and `upswarm rollout`
// as the publisher. A release at 20% reaches exactly the
// clients in stage; resumed at 100% it reaches all; halted, it sends them all back to the previous
// revision (byte for byte); a replayed older "100%" statement changes nothing. Two `watch --auto`
// clients (actors/updater/watch.ts, the same auto-update statechart) follow beside them, one on
// each side of 20%, and move exactly as the daemons on their side do.
import { EventEmitter, once } from 'node:events'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { jetstream } from '@nats-io/jetstream'
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
import { watch, type Watch, type WatchEvent } from '../../actors/updater/watch.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot, newestRoot } from '../../infra/formats/meta-stream.ts'
import { rootBody, rootText, signRoot } from '../../infra/formats/root.ts'
import { readRollouts } from '../../infra/formats/rollout-stream.ts'
import { stageOf } from '../../infra/formats/rollout.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { credsClaims } from '../../infra/nats/identity.ts'
import { rolloutSubject } from '../../infra/nats/names.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey, writeKeyFile } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { snapshotTree } from '../helpers/local-publish.ts'
import { randomContent, writeTree, type TreeSpec } from '../helpers/trees.ts'
import { stopFleet } from '../helpers/fleet-teardown.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
/** `--auto` clients: daemons and, one on each side of the stage, two watchers. */
const CLIENTS = 12
/** The first rollout's share of the fleet (basis points: 20%), and how many of the clients fall in it. */
const STAGE = 2_000
const IN_STAGE = 3

/** The tree byte for byte (SHA-256 of each file), the metadata left out. */
const treeBytes = (root: string): Promise<Record<string, string>> => snapshotTree(root, { hash: true })

interface Client {
  name: string
  key: string
  inStage: boolean
  dir: string
  nc: NatsConnection
  daemon: Daemon
  /** Every run's from → to, in order. */
  runs: string[]
}

interface Watcher {
  name: string
  inStage: boolean
  dir: string
  nc: NatsConnection
  watch: Watch
  rev: number
  /** Every run's from → to, in order. */
  runs: string[]
  /** Each report, also as an event named by its type. */
  events: EventEmitter
}

describe('staged rollout', { timeout: 300_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let admin: NatsConnection
  let publisher: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let tracker: Tracker
  let publisherCreds: string
  let caFile: string
  const clients: Client[] = []
  const watchers: Watcher[] = []
  const product = newProduct()
  const pub = generatePublisherKey()
  const rootKey = generatePublisherKey()
  const trees: Record<string, string>[] = []

  beforeAll(async () => {
    dir = await tempDir('upswarm-staged-rollout-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    caFile = own.authority.paths.caFile
    admin = await own.connect('rollout-admin')
    publisherCreds = (await own.authority.issue({ kind: 'publisher', name: 'publisher' })).file
    publisher = await connectNats(cluster.urls, 'rollout-publisher', { creds: publisherCreds, tlsCa: caFile })
    // The root names the product with its publish key and no rollout role: the publish key rolls out.
    const root = signRoot(rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey], products: { [product]: { publish: [pub.publicKey] } } }), [rootKey])
    await appendRoot(admin, rootText(root))
    const trust = join(dir.path, 'trust.json')
    const specs: TreeSpec[] = [{ 'app.txt': 'version 1\n', 'lib/a.bin': randomContent(200_000) }, { 'app.txt': 'version 2\n', 'lib/a.bin': randomContent(200_000), 'lib/b.bin': randomContent(50_000) }]
    for (const [i, spec] of specs.entries()) {
      await writeTree(join(dir.path, `src${i + 1}`), spec)
      trees.push(await treeBytes(join(dir.path, `src${i + 1}`)))
    }
    await publish({ nc: publisher, src: join(dir.path, 'src1'), product, key: pub, trust, skipFeed: true })
    server = await startRepoServer({ nc: admin, id: `rollout-${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc: admin })
    tracker = await startTracker({ nc: admin, id: 'rollout' })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 1, { timeout: 60_000 })

    // Client identities until three fall in the first 20% of the fleet and nine outside it.
    const chosen: { name: string; file: string; key: string; inStage: boolean }[] = []
    for (let i = 0; chosen.length < CLIENTS && i < 300; i++) {
      const name = `fleet-${i}`
      const issued = await own.authority.issue({ kind: 'client', name })
      const key = credsClaims(await readFile(issued.file, 'utf8'), issued.file).sub
      const inStage = stageOf(product, key) < STAGE
      if (chosen.filter((c) => c.inStage === inStage).length < (inStage ? IN_STAGE : CLIENTS - IN_STAGE)) chosen.push({ name, file: issued.file, key, inStage })
    }
    expect(chosen.map((c) => c.inStage).sort()).toEqual([...Array<boolean>(CLIENTS - IN_STAGE).fill(false), ...Array<boolean>(IN_STAGE).fill(true)])
    // The first of each side watches instead of running a daemon.
    const watching = [chosen.find((c) => c.inStage)!, chosen.find((c) => !c.inStage)!]

    // Staged from now on: r1 at 100%; every later release waits for its own statement.
    await rollout({ nc: publisher, product, rev: 1, action: { percent: 10_000 }, keys: [pub] })
    for (const c of chosen) {
      const nc = await connectNats(cluster.urls, `rollout-${c.name}`, { creds: c.file, tlsCa: caFile })
      const wc = join(dir.path, c.name)
      await init(wc, { product, root: { text: rootText(root), where: 'root.json' }, source: serverSource(nc, product), rev: 1 })
      if (watching.includes(c)) {
        const events = new EventEmitter()
        const w: Watcher = { name: c.name, inStage: c.inStage, dir: wc, nc, rev: 1, runs: [], events, watch: undefined as unknown as Watch }
        w.watch = await watch({
          dir: wc, nc, source: serverSource(nc, product), auto: true,
          report: (e: WatchEvent) => {
            if (e.type === 'update.done') {
              w.runs.push(`r${e.result.from}→r${e.result.to}`)
              w.rev = e.result.to
            }
            events.emit(e.type, e)
          },
        })
        watchers.push(w)
        continue
      }
      const daemon = await startDaemon({ dir: wc, nc, updater: openUpdate, auto: true, host: '127.0.0.1', announceIntervalMs: 1_000 })
      const client: Client = { ...c, dir: wc, nc, daemon, runs: [] }
      daemon.on('update.started', (from, to) => client.runs.push(`r${from}→r${to}`))
      clients.push(client)
    }
  }, 300_000)

  afterAll(async () => {
    for (const w of watchers) {
      await w.watch.stop().catch(() => {})
      await w.nc.close().catch(() => {})
    }
    await stopFleet({ clients, tracker, proxy, server, publisher, admin, cluster, dir })
  })

  /** Resolves once every client in `which` is at `rev` (from the daemon's own update events). */
  const reach = (which: Client[], rev: number): Promise<unknown> => Promise.all(which.map((c) => new Promise<void>((resolve, reject) => {
    const check = (): boolean => {
      if (c.daemon.rev() !== rev) return false
      c.daemon.off('update.done', onDone)
      c.daemon.off('update.failed', onFailed)
      resolve()
      return true
    }
    const onDone = (): void => void check()
    const onFailed = (err: Error): void => reject(new Error(`${c.name}: ${err.message}`))
    c.daemon.on('update.done', onDone)
    c.daemon.on('update.failed', onFailed)
    check()
  })))

  /** Resolves once every watcher in `which` is at `rev` (from its own update reports). */
  const reachW = (which: Watcher[], rev: number): Promise<unknown> => Promise.all(which.map(async (w) => {
    while (w.rev !== rev) {
      await Promise.race([once(w.events, 'update.done'), once(w.events, 'update.failed').then(([f]) => { throw new Error(`${w.name}: ${String((f as { error: unknown }).error)}`) })])
    }
  }))

  it('rollout — a release at 20% reaches exactly the clients in stage; at 100% all; halted, all go back; a replayed 100% changes nothing', async () => {
    const inside = clients.filter((c) => c.inStage)
    const outside = clients.filter((c) => !c.inStage)
    // Every daemon hears of r2, and none takes it: it waits for its statement.
    const heard = Promise.all([
      ...clients.map((c) => new Promise<void>((resolve) => c.daemon.on('release.available', (rev) => { if (rev === 2) resolve() }))),
      ...watchers.map((w) => new Promise<void>((resolve) => w.events.on('release.available', (e: { rev: number }) => { if (e.rev === 2) resolve() }))),
    ])
    /** The revision each watcher's stage allows once it has read statement `seq`. */
    const statement = (seq: number): Promise<(number | undefined)[]> => Promise.all(watchers.map((w) =>
      new Promise<number | undefined>((resolve) => w.events.on('rollout.statement', (e: { seq: number; target: number | undefined }) => { if (e.seq === seq) resolve(e.target) }))))
    const second = statement(2)
    await publish({ nc: publisher, src: join(dir.path, 'src2'), product, key: pub, trust: join(dir.path, 'trust.json'), skipFeed: true })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 2, { timeout: 60_000 })
    await heard

    const staged = await rollout({ nc: publisher, product, rev: 2, action: { percent: STAGE }, keys: [pub] })
    expect(staged).toMatchObject({ rev: 2, seq: 2, state: 'active', percent: STAGE })
    await reach(inside, 2)
    expect(await second).toEqual(watchers.map((w) => (w.inStage ? 2 : 1)))
    await reachW(watchers.filter((w) => w.inStage), 2)
    expect(watchers.map((w) => w.runs)).toEqual(watchers.map((w) => (w.inStage ? ['r1→r2'] : [])))
    for (const c of inside) expect(await treeBytes(c.dir)).toEqual(trees[1])
    // The others know r2 and the statement, and stay: nothing of theirs ran.
    for (const c of outside) {
      expect(c.daemon.rev()).toBe(1)
      expect(c.runs).toEqual([])
      expect(await treeBytes(c.dir)).toEqual(trees[0])
    }

    const full = await rollout({ nc: publisher, product, rev: 2, action: { resume: true, percent: 10_000 }, keys: [pub] })
    expect(full).toMatchObject({ seq: 3, state: 'active', percent: 10_000, previous: { seq: 2, percent: STAGE } })
    await reach(outside, 2)
    await reachW(watchers, 2)
    for (const c of clients) expect(await treeBytes(c.dir)).toEqual(trees[1])

    // The halt through the command line, as an operator would, with the publisher's identity.
    const keyFile = join(dir.path, 'pub.key')
    await writeKeyFile(keyFile, pub)
    const halted = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'rollout', product, '2', '--halt', '--key', keyFile, '--json', '--nats', cluster.urls.join(','), '--creds', publisherCreds, '--tls-ca', caFile],
        { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr }))
    })
    expect(halted.code, halted.stderr).toBe(0)
    expect(JSON.parse(halted.stdout)).toMatchObject({ rev: 2, seq: 4, state: 'halted' })
    await reach(clients, 1)
    await reachW(watchers, 1)
    for (const c of clients) expect(await treeBytes(c.dir)).toEqual(trees[0])

    // A replay of the signed "100%" (seq 3), byte for byte, then a new statement: every daemon has
    // read the replay once it has taken the next one (one subscription, stream order), and none
    // went back to r2.
    const root = (await newestRoot(admin))!.signed.root
    const replayed = (await readRollouts(admin, product, root)).statements.find((s) => s.rollout.seq === 3)!
    await jetstream(publisher).publish(rolloutSubject(product), replayed.text)
    const watchersTaken = statement(5)
    const taken = Promise.all(clients.map((c) => new Promise<number | undefined>((resolve) => c.daemon.on('rollout.statement', (seq, _rev, _state, target) => { if (seq === 5) resolve(target) }))))
    await rollout({ nc: publisher, product, rev: 1, action: { percent: 10_000 }, keys: [pub] })
    expect((await readRollouts(admin, product, root)).statements.map((s) => s.rollout.seq)).toEqual([1, 2, 3, 4, 3, 5])
    expect(await taken).toEqual(clients.map(() => 1))
    expect(await watchersTaken).toEqual(watchers.map(() => 1))
    for (const c of clients) expect(c.daemon.rev()).toBe(1)
    expect(inside.map((c) => c.runs)).toEqual(inside.map(() => ['r1→r2', 'r2→r1']))
    expect(outside.map((c) => c.runs)).toEqual(outside.map(() => ['r1→r2', 'r2→r1']))
    for (const w of watchers) {
      expect(w.runs).toEqual(['r1→r2', 'r2→r1'])
      expect(await treeBytes(w.dir)).toEqual(trees[0])
    }
  })
})
