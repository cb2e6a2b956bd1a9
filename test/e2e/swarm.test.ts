// Issue 6, done when: real processes (cluster roles and client daemons), a real local DHT.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { Swarm, type SwarmClient } from '../../actors/demo/swarm.ts'
import { generateTree, mutateTree } from '../../actors/demo/tree-gen.ts'
import * as updater from '../../actors/updater/index.ts'
import { startDaemon, type Daemon } from '../../actors/share-daemon/index.ts'
import { tempDir } from '../helpers/cluster.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { spawnGuarded } from '../../infra/cluster/children.ts'

async function verifiedAt(client: SwarmClient, rev: number): Promise<void> {
  const status = await updater.status(client.dir)
  expect(status.rev).toBe(rev)
  expect(status.files.filter((f) => f.status !== 'current')).toEqual([])
}

// Whole swarms of processes on two cores: generous bounds, the work itself is event-driven.
describe('swarm', { timeout: 240_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let swarm: Swarm

  beforeAll(async () => {
    dir = await tempDir('upswarm-swarm-')
    // Servers capped at 4 MiB/s each: the servers are the scarce resource peers relieve.
    swarm = new Swarm({ dir: dir.path, servers: 3, weights: [2, 1, 1], serverMaxUploadRate: 4 * 1024 * 1024 })
    await swarm.start()
  }, 120_000)
  afterAll(async () => {
    await swarm?.stop()
    await dir?.cleanup()
  })

  it('share-daemon — 6 clients install r1 and update to r2 together; servers send well under 6× the bytes each time; the daemons report what they served', async () => {
    const src = join(dir.path, 'src-a')
    await generateTree(src, { files: 60, totalBytes: 6 * 1024 * 1024, seed: 'swarm-a' })
    await swarm.publish(src, '1.0')
    await swarm.serversSynced(1)
    const clients = await Promise.all(Array.from({ length: 6 }, (_, i) => swarm.addClient(`a${i}`)))
    // Six installs at once go through the swarm too (init with a tracker and DHT configured).
    const installed = clients.map((c) => c.initResult!)
    const initServers = installed.reduce((n, r) => n + r.bytesFromServers, 0)
    const initPeers = installed.reduce((n, r) => n + r.bytesFromPeers, 0)
    console.info(`6 installs of ${6 * 1024 * 1024} bytes: ${initServers} from servers, ${initPeers} from peers`)
    expect(installed.every((r) => r.to === 1)).toBe(true)
    expect(initPeers).toBeGreaterThan(0)
    expect(initServers).toBeLessThan(3 * 6 * 1024 * 1024)
    await Promise.all(clients.map((c) => c.start()))
    const change = await mutateTree(src, { seed: 'swarm-a-r2', changeFraction: 0.3, add: 4, remove: 2 })
    await swarm.publish(src, '2.0')
    const done = await Promise.all(clients.map((c) => c.reached(2)))
    console.info(`update times (ms): ${done.map((d) => d.ms).join(', ')}`)
    for (const c of clients) await verifiedAt(c, 2)
    const fromServers = done.reduce((n, d) => n + d.bytesFromServers, 0)
    const fromPeers = done.reduce((n, d) => n + d.bytesFromPeers, 0)
    console.info(`6 clients, ${change.changedBytes} changed bytes: ${fromServers} from servers (${(fromServers / change.changedBytes).toFixed(2)}×), ${fromPeers} from peers`)
    expect(fromServers + fromPeers).toBeGreaterThanOrEqual(6 * change.changedBytes * 0.9)
    expect(fromServers).toBeLessThan(3 * change.changedBytes)
    await Promise.all(clients.map((c) => c.stop()))
    // Each daemon says on exit what it served: together at least what the peers received.
    const stopped = await Promise.all(clients.map((c) => c.waitFor((e) => e.event === 'daemon.stopped', 10_000)))
    const uploaded = stopped.reduce((n, e) => n + (e.uploadedBytes as number), 0)
    console.info(`6 clients served ${uploaded} bytes to peers`)
    expect(uploaded).toBeGreaterThanOrEqual(fromPeers)
    for (const d of done) expect(d.uploadedBytes).toEqual(expect.any(Number))
  })

  it('watch — `upswarm watch` tells of a new release; with --auto it installs it, without it leaves the tree alone', async () => {
    swarm.product = crypto.randomUUID()
    const src = join(dir.path, 'src-w')
    await generateTree(src, { files: 8, totalBytes: 256 * 1024, seed: 'swarm-w' })
    await swarm.publish(src)
    await swarm.serversSynced(1)
    const [notice, auto] = await Promise.all([swarm.addClient('w-notice'), swarm.addClient('w-auto')])
    const watchers = [notice, auto].map((c) => {
      // Guarded: the watchers die with this test process even if it is torn down mid-test.
      const child = spawnGuarded(process.execPath, [join(PROJECT_ROOT, 'bin', 'upswarm.cjs'), 'watch', c.dir, '--json', ...(c === auto ? ['--auto'] : [])],
        { stdio: ['ignore', 'pipe', 'inherit'], env: c.env })
      const events: Record<string, unknown>[] = []
      const waiters: { event: string; resolve: (e: Record<string, unknown>) => void }[] = []
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const e = JSON.parse(line) as Record<string, unknown>
        events.push(e)
        for (const w of waiters.filter((x) => x.event === e.event)) w.resolve(e)
      })
      const next = (event: string): Promise<Record<string, unknown>> =>
        new Promise((resolve) => waiters.push({ event, resolve }))
      return { child, events, next }
    })
    try {
      // Both follow the release stream from its start: r1 is what they hold, so nothing is said yet.
      const available = watchers.map((w) => w.next('release.available'))
      const installed = watchers[1]!.next('update.done')
      await mutateTree(src, { seed: 'swarm-w-r2', changeFraction: 0.5, add: 1, remove: 1 })
      await swarm.publish(src)
      for (const e of await Promise.all(available)) expect(e).toMatchObject({ event: 'release.available', rev: 2, current: 1 })
      expect(await installed).toMatchObject({ event: 'update.done', from: 1, to: 2, conflicts: 0 })
      await verifiedAt(auto, 2)
      expect((await updater.status(notice.dir)).rev).toBe(1)
      expect(watchers[0]!.events.map((e) => e.event)).toEqual(['release.available'])
    } finally {
      for (const w of watchers) {
        const exited = once(w.child, 'exit')
        w.child.kill('SIGTERM')
        const [code] = await exited
        expect(code).toBe(0)
      }
    }
  })

  /**
   * A fresh product (tree under src-<tag>) with r1 published and synced, two working copies at r1, then r2 (half
   * the files changed, `add` added, `remove` removed) published.
   */
  async function twoRevisions(tag: string, files: number, mib: number, names: [string, string], add: number, remove: number): Promise<[SwarmClient, SwarmClient]> {
    swarm.product = crypto.randomUUID()
    const src = join(dir.path, `src-${tag}`)
    await generateTree(src, { files, totalBytes: mib * 1024 * 1024, seed: `swarm-${tag}` })
    await swarm.publish(src)
    await swarm.serversSynced(1)
    const clients = await Promise.all([swarm.addClient(names[0]), swarm.addClient(names[1])])
    await mutateTree(src, { seed: `swarm-${tag}-r2`, changeFraction: 0.5, add, remove })
    await swarm.publish(src)
    return clients
  }

  /** An in-process daemon on the swarm's endpoints, updated by hand once it sees `peerKey` holding blobs. */
  async function handDaemon(client: SwarmClient): Promise<Daemon> {
    const ep = swarm.launched.endpoints
    const alive = !!swarm.launched.children.get('tracker') && swarm.launched.children.get('tracker')!.exitCode === null
    return startDaemon({
      dir: client.dir, updater: updater.openUpdate, nc: swarm.nc, bootstrap: ep.dhtBootstrap,
      ...(alive ? { trackerHttp: ep.trackerHttp, trackerUdp: ep.trackerUdp } : {}),
    })
  }

  /** Resolves once the daemon is connected to `peerKey` and knows what it holds (bounded: 120 s). */
  async function holdsBlobs(d: Daemon, peerKey: string): Promise<void> {
    const held = await d.peers.waitFor((peers) => peers.some((p) => p.key === peerKey && p.session.remote.blobs.size > 0), 120_000)
    if (!held) throw new Error(`never connected to peer ${peerKey}`)
  }

  it('share-daemon — a peer serving corrupted blobs is detected, banned, and nothing bad is installed', async () => {
    const [bad, victim] = await twoRevisions('b', 12, 3, ['bad', 'victim'], 0, 0)
    await swarm.serversSynced(2)
    await bad.start()
    await bad.reached(2)
    // The bad peer's stored copies change under it, same size: it will serve garbage.
    // Every stored file: blobs (<2 hex>/<sha256>) and the packs a batch of small files came in (the empty layout marker stays).
    const history = join(bad.dir, '.upswarm', 'history')
    for (const e of await readdir(history, { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || relative(history, e.parentPath).split(sep)[0] === 'tmp') continue
      const file = join(e.parentPath, e.name)
      const bytes = await readFile(file)
      // A new file in its place (a blob installed as a tree file is that file: the tree stays pristine).
      if (bytes.length > 0) {
        await writeFile(`${file}.bad`, Buffer.alloc(bytes.length, 0x5a))
        await rename(`${file}.bad`, file)
      }
    }
    const d = await handDaemon(victim)
    try {
      await holdsBlobs(d, String(bad.ready!.publicKey))
      const done = await d.updateNow()
      expect(done.sources.badPieces).toBeGreaterThan(0)
      expect(d.peers.isBanned(String(bad.ready!.publicKey))).toBe(true)
    } finally {
      await d.close()
    }
    await verifiedAt(victim, 2)
    await bad.stop()
  })

  it('share-daemon — issue 15: a release that edits a few KiB inside files reaches the daemons as deltas; daemons that come later get them from the peer that kept them', async () => {
    swarm.product = crypto.randomUUID()
    swarm.formats = [1, 2]
    const src = join(dir.path, 'src-deltas')
    await mkdir(join(src, 'lib'), { recursive: true })
    const parts = Array.from({ length: 8 }, () => randomBytes(96 * 1024))
    for (const [i, p] of parts.entries()) await writeFile(join(src, 'lib', `part${i}.bin`), p)
    await swarm.publish(src, '1.0')
    await swarm.serversSynced(1)
    const [first, ...later] = await Promise.all(['d0', 'd1', 'd2'].map((n) => swarm.addClient(n)))
    // r2: 2 KiB overwritten inside four of the eight files; the servers hold it in both formats
    // before any daemon runs (a daemon that comes first fetches whole files, not deltas).
    for (const i of [1, 3, 5, 7]) {
      randomBytes(2048).copy(parts[i]!, 40_000)
      await writeFile(join(src, 'lib', `part${i}.bin`), parts[i]!)
    }
    await swarm.publish(src, '2.0')
    await swarm.serversSynced(2)
    const wholeFiles = 4 * 96 * 1024
    await first!.start()
    const d0 = await first!.reached(2)
    expect(d0.deltas).toMatchObject({ files: 4, failed: 0, fileBytes: wholeFiles })
    expect(d0.bytesFromServers + d0.bytesFromPeers).toBeLessThan(wholeFiles / 16)
    await verifiedAt(first!, 2)
    // The others find d0 (tracker), wait for what it holds, and take the deltas it kept from it.
    await Promise.all(later.map((c) => c.start()))
    const done = await Promise.all(later.map((c) => c.reached(2)))
    for (const d of done) {
      expect(d.deltas).toMatchObject({ files: 4, failed: 0 })
      expect(d.bytesFromServers + d.bytesFromPeers).toBeLessThan(wholeFiles / 16)
    }
    console.info(`deltas of r2: d0 ${d0.bytesFromServers} B from servers; later daemons ${done.map((d) => `${d.bytesFromPeers} B from peers, ${d.bytesFromServers} from servers`).join('; ')}`)
    expect(done.reduce((n, d) => n + d.bytesFromPeers, 0)).toBeGreaterThan(0)
    for (const c of later) await verifiedAt(c, 2)
    await Promise.all([first!, ...later].map((c) => c.stop()))
    swarm.formats = undefined
  })

  it('share-daemon — a product without format-1 manifests: its daemons learn of a release from the format-2 documents and trade a large file in chunk-checked pieces', async () => {
    swarm.product = crypto.randomUUID()
    swarm.formats = [2]
    const src = join(dir.path, 'src-format2')
    await mkdir(join(src, 'lib'), { recursive: true })
    for (let i = 0; i < 6; i++) await writeFile(join(src, 'lib', `small${i}.txt`), randomBytes(4000 + i))
    await swarm.publish(src, '1.0')
    await swarm.serversSynced(1)
    const [first, ...later] = await Promise.all(['f0', 'f1', 'f2'].map((n) => swarm.addClient(n)))
    // r2 adds 3.5 MiB: more than 16 chunks, so its tree lists them in a chunk-list node.
    const big = randomBytes(3.5 * 1024 * 1024)
    await writeFile(join(src, 'lib', 'big.bin'), big)
    await swarm.publish(src, '2.0')
    await swarm.serversSynced(2)
    await first!.start()
    const f0 = await first!.reached(2)
    expect(f0.format).toBe(2)
    await verifiedAt(first!, 2)
    // The others find f0 and take the big file from it piece by piece, each piece's chunks checked.
    await Promise.all(later.map((c) => c.start()))
    const done = await Promise.all(later.map((c) => c.reached(2)))
    for (const d of done) {
      expect(d.format).toBe(2)
      expect(d.sources.badPieces).toBe(0)
    }
    console.info(`format-2 swarm: f0 ${f0.bytesFromServers} B from servers; later daemons ${done.map((d) => `${d.bytesFromPeers} B from peers (${d.sources.piecesFromPeers} pieces), ${d.bytesFromServers} from servers`).join('; ')}`)
    // More than a whole chunk-planned file's worth came from peers: the large file was traded.
    expect(done.reduce((n, d) => n + d.bytesFromPeers, 0)).toBeGreaterThan(big.length)
    for (const c of later) await verifiedAt(c, 2)
    await Promise.all([first!, ...later].map((c) => c.stop()))
    swarm.formats = undefined
  })

  it('share-daemon — with the tracker stopped, a new client finds peers through the DHT and updates from them', async () => {
    const [seed, late] = await twoRevisions('c', 20, 4, ['c-seed', 'c-late'], 2, 1)
    await seed.start()
    await seed.reached(2)
    await swarm.stopRole('tracker')
    const d = await handDaemon(late)
    try {
      const seedKey = String(seed.ready!.publicKey)
      await holdsBlobs(d, seedKey)
      expect(d.connections().find((c) => c.key === seedKey)?.via).toBe('dht')
      const done = await d.updateNow()
      expect(done.bytesFromPeers).toBeGreaterThan(0)
    } finally {
      await d.close()
    }
    await verifiedAt(late, 2)
  })

  it('share-daemon — tracker and every server stopped: a release that reached one client reaches the others from peers', async () => {
    const seed = swarm.clients.find((c) => c.name === 'c-seed')!
    // A newcomer with a key no peer has seen, at the newest revision while the servers are up.
    const newcomer = await swarm.addClient('c-new')
    const src = join(dir.path, 'src-c')
    await mutateTree(src, { seed: 'swarm-c-r3', changeFraction: 0.3, add: 1, remove: 0 })
    await swarm.publish(src)
    await seed.reached(3)
    for (const role of [...swarm.launched.children.keys()].filter((r) => r.startsWith('server-'))) await swarm.stopRole(role)
    const d = await handDaemon(newcomer)
    try {
      await holdsBlobs(d, String(seed.ready!.publicKey))
      const done = await d.updateNow()
      expect(done.to).toBe(3)
      expect(done.bytesFromServers).toBe(0)
      expect(done.bytesFromPeers).toBeGreaterThan(0)
    } finally {
      await d.close()
    }
    await verifiedAt(newcomer, 3)
  })
})
