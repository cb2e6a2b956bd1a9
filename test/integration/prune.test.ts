// Issue 11 item 8, bounded storage on the server side: `upswarm prune` on the suite's real
// cluster (credentials, TLS). Publishes r1 … r4 sharing blobs (and one blob with another
// product), prunes to keep 2, and checks what left the object store and a repository server's
// store, that `stats` shows the range, that kept revisions still install from scratch, that a
// pruned one is refused by name by init, update and rollback (also when the prune lands while a
// download waits), that a wiped server replays the pruned revisions as manifests only, and that
// `--dry-run` counts the bytes without touching anything.
// Then the race the leases exist for, interleaved by hooks: a publish that relies on a blob the
// store holds, and a prune that would delete it.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Kvm } from '@nats-io/kv'
import { prune } from '../../actors/operator/prune.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { serverSource } from '../../actors/share-daemon/sources.ts'
import { init, rollback, update } from '../../actors/updater/index.ts'
import type { ReleaseSource } from '../../infra/release/source.ts'
import { isUpswarmError } from '../../infra/errors.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import type { LeaseHolder } from '../../infra/nats/leases.ts'
import { readPruneRecord } from '../../infra/nats/prune-records.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { LEASE_BUCKET, publishLeaseKey } from '../../infra/nats/names.ts'
import { readReleaseChain } from '../../infra/release/release-log.ts'
import { PieceSession, type RemoteHave } from '../../infra/swarm/piece-protocol.ts'
import { makeNode } from './swarm-fixtures.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore, pinProduct } from '../../infra/release/trust.ts'
import { clusterInfo, connectionAndDir, newProduct, roleConnection } from '../helpers/cluster.ts'
import { randomContent, writeTree, type TreeSpec } from '../helpers/trees.ts'

const exec = promisify(execFile)
const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Settles once the peer's announced blobs satisfy `ok` (checked now and at every `have`). */
function announcedSo(session: PieceSession, ok: () => boolean): Promise<void> {
  if (ok()) return Promise.resolve()
  return new Promise((resolve) => {
    const on = (_: RemoteHave): void => {
      if (!ok()) return
      session.off('have', on)
      resolve()
    }
    session.on('have', on)
  })
}

/** A promise and the function that settles it: the hooks below park an actor until the test lets it go. */
function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void
  const promise = new Promise<T>((r) => { open = r })
  return { promise, open }
}

describe('prune', () => {
  const fx = connectionAndDir('upswarm-prune-')
  const key = generatePublisherKey()
  let publisher: NatsConnection
  let client: NatsConnection
  let serverConn: NatsConnection
  let proxyConn: NatsConnection
  let proxy: Proxy
  const servers: RepoServer[] = []
  let trust: string
  let revs = 0

  const publishRev = async (product: string, spec: TreeSpec, extra: Partial<Parameters<typeof publish>[0]> = {}) => {
    const src = join(fx.dir, `src-${revs++}`)
    await writeTree(src, spec)
    return publish({ nc: publisher, src, product, key, trust, skipFeed: true, ...extra })
  }
  const startServer = async (id: string, dataDir: string, nc = serverConn): Promise<RepoServer> => {
    const s = await startRepoServer({ nc, id, dataDir, trust: await new TrustStore(trust).ready() })
    servers.push(s)
    return s
  }
  const blobGone = async (sha: string): Promise<boolean> => {
    const info = await (await openRepository(fx.nc)).blobs.info(sha)
    return !info || info.deleted
  }

  beforeAll(async () => {
    trust = join(fx.dir, 'trust.json')
    publisher = await roleConnection({ kind: 'publisher', name: 'prune-publisher' })
    client = await roleConnection({ kind: 'client', name: 'prune-client' })
    serverConn = await roleConnection({ kind: 'server', name: `prune${process.pid}` })
    proxyConn = await roleConnection({ kind: 'proxy', name: 'prune-proxy' })
    proxy = await startProxy({ nc: proxyConn, httpPort: 0 })
  })
  afterAll(async () => {
    for (const s of servers) await s.close()
    await proxy?.close()
    for (const nc of [publisher, client, serverConn, proxyConn]) await nc?.close()
  })

  it('prune — keep 2 of r1 … r4: blobs only r1/r2 use leave the object store and the server (its seed stops announcing them, stats shows the range), shared ones stay, r3/r4 install from scratch; init, update and rollback to r1/r2 are refused naming r3, also an install already downloading; --dry-run counts the same bytes first', async () => {
    const product = newProduct()
    const other = newProduct()
    await pinProduct(trust, product, key.publicKey)
    await pinProduct(trust, other, key.publicKey)
    const shared = randomContent(200_000) // r1 … r4
    const only1 = randomContent(300_000) // r1 only: goes
    const early = randomContent(120_000) // r1, r2: goes
    const only2 = randomContent(250_000) // r2, and the other product: stays
    const late = randomContent(90_000) // r2 … r4: stays
    await publishRev(product, { 'shared.bin': shared, 'only1.bin': only1, 'early.bin': early })
    await publishRev(product, { 'shared.bin': shared, 'early.bin': early, 'only2.bin': only2, 'late.bin': late })
    await publishRev(product, { 'shared.bin': shared, 'late.bin': late, 'only3.bin': randomContent(70_000) })
    await publishRev(product, { 'shared.bin': shared, 'late.bin': late, 'only4.bin': randomContent(60_000) })
    await publishRev(other, { 'x.bin': only2 })
    const server = await startServer(`prune${process.pid}`, join(fx.dir, 'server'))
    await expect.poll(() => [server.store.synced[product], server.store.synced[other]], { timeout: 60_000 }).toEqual([4, 1])

    // A peer connected to the server's seed sees it announce r1's blob …
    const sessions = new Map<string, PieceSession>()
    const peer = makeNode((stream, info) => sessions.set(info.peer, new PieceSession(stream)))
    const { host, port, publicKey } = server.seed.info()
    const seedSession = sessions.get((await peer.transport.dial(host, port, { remotePublicKey: Buffer.from(publicKey, 'hex') })).peer)!
    await announcedSo(seedSession, () => seedSession.peerHas(sha256(only1)) && seedSession.peerHas(sha256(shared)))

    // A client starts installing r2 before the prune; its downloads wait at a gate.
    const downloads = gate()
    const src = serverSource(client, product)
    const gated: ReleaseSource = { ...src, fetchBlob: async (e, into, o) => { await downloads.promise; return src.fetchBlob(e, into, o) } }
    const lateInstall = init(join(fx.dir, 'wc-r2'), { product, publicKey: key.publicKey, rev: 2, source: gated }).then(() => 'installed', (err: unknown) => err)

    const cli = async (...args: string[]) => JSON.parse((await exec(process.execPath, [CLI, 'prune', product, ...args, '--trust', trust, '--json',
      '--nats', clusterInfo().nats.join(','), '--creds', clusterInfo().auth.admin])).stdout) as Record<string, unknown>
    const freed = only1.length + early.length
    const dry = await cli('--keep', '2', '--dry-run')
    expect(dry).toMatchObject({ product, dryRun: true, newest: 4, through: 2, previous: 0, blobs: 2, bytes: freed, shared: 3, recordSeq: null })
    expect(await blobGone(sha256(only1))).toBe(false)
    expect(await readPruneRecord(fx.nc, product)).toBeNull()

    const done = await cli('--keep', '2')
    expect(done).toMatchObject({ product, dryRun: false, newest: 4, through: 2, blobs: 2, bytes: freed, shared: 3, recordSeq: expect.any(Number) })
    process.stdout.write(`prune: keep 2 of r1 … r4: ${String(done.blobs)} blobs, ${String(done.bytes)} bytes freed from the object store; ${String(done.shared)} blobs of r1/r2 stay (kept revisions, another product)\n`)
    expect(await Promise.all([only1, early].map((b) => blobGone(sha256(b))))).toEqual([true, true])
    expect(await Promise.all([shared, only2, late].map((b) => blobGone(sha256(b))))).toEqual([false, false, false])
    expect((await readPruneRecord(fx.nc, product))?.record).toMatchObject({ product, through: 2, newest: 4, keep: 2, by: expect.any(String), blobs: 2, bytes: freed })

    // The server learns it from the record and drops its copies of the same blobs.
    await expect.poll(() => server.heartbeat().pruned?.[product], { timeout: 30_000 }).toBe(2)
    expect(await Promise.all([only1, early, shared, only2, late].map((b) => server.store.blobs.has(sha256(b))))).toEqual([false, false, true, true, true])
    expect(server.store.revisions(product).map((r) => r.rev)).toEqual([3, 4])
    // … and no longer once it dropped it; the shared one it still announces.
    await announcedSo(seedSession, () => !seedSession.peerHas(sha256(only1)))
    expect(seedSession.peerHas(sha256(shared))).toBe(true)
    await peer.transport.close()
    // `upswarm stats` shows the range under the server, from its heartbeat.
    const stats = async (): Promise<string> => (await exec(process.execPath, [CLI, 'stats', '--nats', clusterInfo().nats.join(',')])).stdout
    await expect.poll(stats, { timeout: 15_000 }).toMatch(new RegExp(`pruned ${product} r1 … r2 \\(file contents removed by an operator\\)`))

    // The install that was waiting fails by name and leaves nothing behind.
    downloads.open()
    const failed = await lateInstall
    expect(isUpswarmError(failed, 'UPSWARM_E_PRUNED')).toBe(true)
    expect((failed as Error).message).toMatch(/revision 2 of .* was pruned from the servers by an operator.*oldest revision still available is r3/)
    expect(await readdir(join(fx.dir, 'wc-r2')).catch(() => 'absent')).toBe('absent')

    // Kept revisions install from scratch; a pruned one is refused before anything is fetched.
    for (const rev of [3, 4]) {
      const wc = join(fx.dir, `wc-r${rev}`)
      await init(wc, { product, publicKey: key.publicKey, rev, source: serverSource(client, product) })
      expect(await readFile(join(wc, 'shared.bin'))).toEqual(shared)
      expect(await readFile(join(wc, 'late.bin'))).toEqual(late)
    }
    // A copy at r4 asking for r1 or r2, which its history does not hold: refused by name, nothing changes.
    const wc4 = join(fx.dir, 'wc-r4')
    await expect(rollback(wc4, { rev: 1, source: serverSource(client, product) })).rejects.toMatchObject({ code: 'UPSWARM_E_PRUNED', message: expect.stringMatching(/revision 1 of .*oldest revision still available is r3/) })
    await expect(update(wc4, { rev: 2, source: serverSource(client, product) })).rejects.toMatchObject({ code: 'UPSWARM_E_PRUNED', message: expect.stringMatching(/revision 2 of .*oldest revision still available is r3/) })
    expect(await readFile(join(wc4, 'only4.bin'))).toHaveLength(60_000)
    const refused = await exec(process.execPath, [CLI, 'init', join(fx.dir, 'wc-r1'), '--product', product, '--pubkey', key.publicKey, '--rev', '1',
      '--nats', clusterInfo().nats.join(',')], { env: { ...process.env, UPSWARM_TRACKER: '', UPSWARM_BOOTSTRAP: '' } }).then(() => null, (err: { code: number; stderr: string }) => err)
    expect(refused?.code).toBe(1)
    expect(refused?.stderr).toMatch(/revision 1 of .* was pruned from the servers by an operator \(r1 … r2, .*\).*The oldest revision still available is r3.*\[UPSWARM_E_PRUNED\]/)

    // A wiped server replays the stream: the pruned revisions as manifests only, nothing parked.
    const wipedConn = await roleConnection({ kind: 'server', name: `prune${process.pid}w` })
    const wiped = await startServer(`prune${process.pid}w`, join(fx.dir, 'server-wiped'), wipedConn)
    await expect.poll(() => wiped.store.synced[product], { timeout: 60_000 }).toBe(4)
    expect(wiped.store.parked).toEqual([])
    expect(wiped.store.revisions(product).map((r) => r.rev)).toEqual([3, 4])
    expect(wiped.store.release(product, 1)?.release.manifest.rev).toBe(1)
    expect(await wiped.store.blobs.has(sha256(only1))).toBe(false)
    await wiped.close()
    await wipedConn.close()
    servers.splice(servers.indexOf(wiped), 1)

    // A second prune asking for less changes nothing: a range only grows.
    expect(await prune({ nc: fx.nc, product, keep: 3, trust })).toMatchObject({ through: 2, previous: 2, blobs: 0, recordSeq: null })
  }, 240_000)

  it('prune — a publish that found a blob in the store holds it until its release is appended: a prune that starts meanwhile waits for it and keeps the blob', async () => {
    const product = newProduct()
    await pinProduct(trust, product, key.publicKey)
    const reused = randomContent(150_000) // only r1 uses it, until the r4 being published
    const dropped = randomContent(80_000)
    const y2 = randomContent(1000)
    await publishRev(product, { 'x.bin': reused, 'y.bin': dropped })
    await publishRev(product, { 'y.bin': y2 })
    await publishRev(product, { 'y.bin': randomContent(1000) })

    const atAppend = gate()
    const letAppend = gate()
    const publishing = publishRev(product, { 'x.bin': reused, 'y.bin': randomContent(1000) }, {
      beforeAppend: async () => { atAppend.open(); await letAppend.promise },
    })
    await atAppend.promise // the publish saw `reused` in the store and did not upload it
    const waiting = gate<LeaseHolder[]>()
    const pruning = prune({ nc: fx.nc, product, keep: 2, trust, onWaiting: (ps) => { if (ps.some((p) => p.what === `publish ${product}`)) waiting.open(ps) } })
    expect((await waiting.promise).map((p) => p.identity)).toContain('prune-publisher')
    letAppend.open()
    const published = await publishing
    expect(published).toMatchObject({ rev: 4, newBlobs: 1 })
    const pruned = await pruning
    // The prune counted r4, which names `reused`: it stays; r1's and r2's other blobs go.
    expect(pruned).toMatchObject({ newest: 4, through: 2, blobs: 2, bytes: dropped.length + y2.length })
    expect(await blobGone(sha256(reused))).toBe(false)
    expect(await blobGone(sha256(dropped))).toBe(true)
  })

  it('prune — a publish that starts while a prune deletes waits for it, then uploads the blob the prune removed', async () => {
    const product = newProduct()
    await pinProduct(trust, product, key.publicKey)
    const reused = randomContent(140_000)
    await publishRev(product, { 'x.bin': reused })
    await publishRev(product, { 'y.bin': randomContent(1000) })
    await publishRev(product, { 'y.bin': randomContent(1000) })

    const atDelete = gate()
    const letDelete = gate()
    const pruning = prune({ nc: fx.nc, product, keep: 2, trust, beforeDelete: async () => { atDelete.open(); await letDelete.promise } })
    await atDelete.promise // the prune holds its lease and has decided to delete `reused`
    const waiting = gate<LeaseHolder>()
    const publishing = publishRev(product, { 'x.bin': reused }, { onWaitingForPrune: (p) => waiting.open(p) })
    expect(await waiting.promise).toMatchObject({ what: `prune ${product} --keep 2` })
    letDelete.open()
    expect(await pruning).toMatchObject({ through: 1, blobs: 1, bytes: reused.length })
    // The publish checked the store only after the prune: it uploaded `reused` again.
    expect(await publishing).toMatchObject({ rev: 4, newBlobs: 1, newBytes: reused.length })
    const obj = await (await openRepository(fx.nc)).blobs.getBlob(sha256(reused))
    expect(obj && sha256(Buffer.from(obj))).toBe(sha256(reused))
    // And r4 installs from a server that syncs it now.
    const server = servers[0] ?? (await startServer(`prune${process.pid}`, join(fx.dir, 'server')))
    await expect.poll(() => server.store.synced[product], { timeout: 60_000 }).toBe(4)
    // …and the proxy has heard so (its heartbeat), before a client asks the proxy for r4.
    await expect.poll(() => proxy.pool.view().some((m) => m.id === server.id && (m.synced[product] ?? 0) >= 4), { timeout: 60_000, interval: 100 }).toBe(true)
    const wc = join(fx.dir, 'wc-race')
    await init(wc, { product, publicKey: key.publicKey, source: serverSource(client, product) })
    expect(await readFile(join(wc, 'x.bin'))).toEqual(reused)
  }, 120_000)

  it('prune — a publish whose lease ran out before its append (a paused process) appends nothing and says why', async () => {
    const product = newProduct()
    await pinProduct(trust, product, key.publicKey)
    const leases = await new Kvm(fx.nc).open(LEASE_BUCKET)
    const attempt = publishRev(product, { 'a.bin': randomContent(1000) }, {
      // What expiry does to a lease not renewed in time: it is gone.
      beforeAppend: async () => {
        for await (const k of await leases.keys(publishLeaseKey('prune-publisher', '*'))) await leases.delete(k)
      },
    })
    await expect(attempt).rejects.toMatchObject({ code: 'UPSWARM_E_PUBLISH', message: expect.stringMatching(/lost its lease on the blob store .* nothing was appended\. Run the publish again/) })
    expect(await readReleaseChain(fx.nc, product, () => true)).toMatchObject({ head: null })
  })

  it('prune — a second prune while one runs is refused, naming who runs it', async () => {
    const product = newProduct()
    await pinProduct(trust, product, key.publicKey)
    await publishRev(product, { 'a.bin': randomContent(1000) })
    await publishRev(product, { 'a.bin': randomContent(1000) })
    const atDelete = gate()
    const letDelete = gate()
    const first = prune({ nc: fx.nc, product, keep: 1, trust, beforeDelete: async () => { atDelete.open(); await letDelete.promise } })
    await atDelete.promise
    await expect(prune({ nc: fx.nc, product, keep: 1, trust })).rejects.toMatchObject({ code: 'UPSWARM_E_CONFLICT', message: expect.stringMatching(new RegExp(`another prune is running \\(prune ${product} --keep 1, by .* since`)) })
    letDelete.open()
    expect(await first).toMatchObject({ through: 1, blobs: 1 })
  })

  it('prune — --before REV prunes every revision before it and says so; the newest always stays', async () => {
    const product = newProduct()
    await pinProduct(trust, product, key.publicKey)
    const first = randomContent(5000)
    await publishRev(product, { 'a.bin': first })
    await publishRev(product, { 'a.bin': randomContent(1000) })
    await publishRev(product, { 'a.bin': randomContent(1000) })
    const run = (...args: string[]) => exec(process.execPath, [CLI, 'prune', product, ...args, '--trust', trust,
      '--nats', clusterInfo().nats.join(','), '--creds', clusterInfo().auth.admin]).then((r) => r, (err: { code: number; stdout: string; stderr: string }) => err)
    expect(await run('--before', '4')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--before 4 would prune the newest revision r3 of .*; the newest always stays/) })
    expect((await run('--before', '2', '--dry-run')).stdout).toMatch(new RegExp(`^${product}: dry run: would prune r1 \\(newest r3\\); would remove 1 blobs, 4\\.9 KiB \\(5000 bytes\\)`))
    expect((await run('--before', '2')).stdout).toMatch(new RegExp(`^${product}: pruned r1 \\(newest r3\\): removed 1 blobs, 4\\.9 KiB \\(5000 bytes\\); 0 blobs stay, used by kept revisions; recorded in UPSWARM_PRUNE seq \\d+`))
    expect((await readPruneRecord(fx.nc, product))?.record).toMatchObject({ through: 1, before: 2, newest: 3 })
    expect(await blobGone(sha256(first))).toBe(true)
  })

  it('prune — usage errors name what is wrong and exit 2; a product nobody pinned is refused', async () => {
    const run = (...args: string[]) => exec(process.execPath, [CLI, 'prune', ...args, '--nats', clusterInfo().nats.join(','), '--creds', clusterInfo().auth.admin])
      .then(() => null, (err: { code: number; stderr: string }) => err)
    const product = newProduct()
    expect(await run(product)).toMatchObject({ code: 2, stderr: expect.stringMatching(/give either --keep N .* or --before REV/) })
    expect(await run(product, '--keep', '0')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--keep 0: at least the newest revision stays/) })
    expect(await run(product, '--before', 'r2')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--before "r2": a revision is a decimal number/) })
    expect(await run(product, '--keep', '2')).toMatchObject({ code: 2, stderr: expect.stringMatching(/cannot tell .* releases from forgeries.*give --trust FILE/) })
  })
})
