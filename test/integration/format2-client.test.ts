// docs/formats.md §5 step 6 (issue 13 item 3) on a real cluster with identities and TLS: the
// client reads format 2 — the signed release through `upswarm.proxy.meta`, verified under its
// pinned root, then only the tree nodes it lacks through `upswarm.proxy.nodes` (the nodes of the
// installed revision are kept under .upswarm/nodes), and plans, fetches and verifies the files as
// in format 1. A format-2-only product larger than the format-1 cap inits and updates; rollback
// works offline; a forged node or release is refused and nothing is written.
import { once } from 'node:events'
import { open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish, type PublishResult } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { serverSource } from '../../actors/share-daemon/sources.ts'
import { history, init, openUpdate, prefetchRelease, rollback, status, update } from '../../actors/updater/index.ts'
import { startDaemon } from '../../actors/share-daemon/index.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { WRITER_THREAD_MIN } from '../../actors/updater/downloads.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { encodeEnvelope, signEnvelope, type Envelope } from '../../infra/formats/envelope.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { releaseIdOf } from '../../infra/formats/release.ts'
import { newestRelease2 } from '../../infra/formats/release-stream.ts'
import { RepoClient } from '../../infra/repo-client.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { rootBody, rootText, signRoot, type SignedRoot } from '../../infra/formats/root.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import type { ReleaseSource } from '../../infra/release/source.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { PackStore } from '../../infra/store/pack-store.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree, type TreeSpec } from '../helpers/trees.ts'

const DAY = 86_400_000

describe('format-2 client', { timeout: 240_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  const conns: NatsConnection[] = []
  let admin: NatsConnection
  let publisherNc: NatsConnection
  let clientNc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let proxyClosed = false
  const rootKey = generatePublisherKey()
  const key = generatePublisherKey()
  const dual = newProduct()
  const only2 = newProduct()
  const withDeltas = newProduct()
  const behind = newProduct()
  const planned = newProduct()
  const many = newProduct()
  const ahead = newProduct()
  let root: SignedRoot
  const rootDoc = (): { text: string; where: string } => ({ text: rootText(root), where: 'the test root' })

  /** Publishes `spec` over the product's source tree and waits until the proxy's format-2 server holds it. */
  const publishAndSync = async (product: string, src: string, spec: TreeSpec, v1MaxBytes?: number): Promise<PublishResult> => {
    await writeTree(src, spec)
    const r = await publish({ nc: publisherNc, src, product, key, skipFeed: true, ...(v1MaxBytes ? { v1MaxBytes } : {}) })
    await expect.poll(() => proxy.pool.view().find((m) => m.id === 'rs2')?.synced2[product], { timeout: 60_000, interval: 100 }).toBe(r.release2!.rev)
    return r
  }
  const storedNodes = async (wc: string): Promise<Set<string>> => {
    const out = new Set<string>()
    const base = layoutOf(wc).nodes
    for (const d of await readdir(base).catch(() => [] as string[])) for (const n of await readdir(join(base, d))) out.add(n)
    return out
  }

  beforeAll(async () => {
    dir = await tempDir('upswarm-f2-client-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    const connect = async (name: string, kind: 'admin' | 'publisher' | 'server' | 'proxy' | 'client', id = name): Promise<NatsConnection> => {
      const nc = await own.connect(name, { kind, name: id })
      conns.push(nc)
      return nc
    }
    admin = await connect('admin', 'admin')
    publisherNc = await connect('publisher', 'publisher')
    clientNc = await connect('client', 'client', 'f2c')
    const body = rootBody({
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey],
      products: { [dual]: { publish: [key.publicKey] }, [only2]: { publish: [key.publicKey] }, [withDeltas]: { publish: [key.publicKey] }, [behind]: { publish: [key.publicKey] }, [planned]: { publish: [key.publicKey] }, [many]: { publish: [key.publicKey] }, [ahead]: { publish: [key.publicKey] } },
    }) as { products: Record<string, { formats: number[] }> }
    body.products[dual]!.formats = [1, 2]
    body.products[withDeltas]!.formats = [1, 2]
    body.products[behind]!.formats = [1, 2]
    body.products[only2]!.formats = [2]
    body.products[planned]!.formats = [2]
    body.products[many]!.formats = [2]
    body.products[ahead]!.formats = [1, 2]
    root = signRoot(body, [rootKey])
    await appendRoot(admin, rootText(root))
    const trust = join(dir.path, 'trust.json')
    await writeFile(trust, JSON.stringify({ format: 3, root: root.env }))
    server = await startRepoServer({ nc: await connect('rs2', 'server'), id: 'rs2', dataDir: join(dir.path, 'rs2'), trust: await new TrustStore(trust).ready(), log: () => {} })
    proxy = await startProxy({ nc: await connect('proxy', 'proxy', 'px') })
  }, 120_000)
  afterAll(async () => {
    if (!proxyClosed) await proxy?.close()
    await server?.close()
    for (const nc of conns) await nc.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('updater — a formats [1, 2] product: init at r1 and update to r2 read format 2, fetching only the changed directory\'s nodes; rollback to r1 works offline', async () => {
    const src = join(dir.path, 'src-dual')
    // 60 files over 3 directories and one file larger than a 1 MiB piece (format 2 carries no piece hashes).
    const spec: TreeSpec = { 'big.bin': randomContent(2_200_000), link: { symlink: 'big.bin' } }
    for (let i = 0; i < 60; i++) spec[`d${i % 3}/f${i}.txt`] = `file ${i}\n`
    const r1 = await publishAndSync(dual, src, spec)
    const wc = join(dir.path, 'wc-dual')
    const first = await init(wc, { product: dual, root: rootDoc(), source: serverSource(clientNc, dual) })
    // Every dir node of the tree; not big.bin's chunk list (files come whole by their hashes: a node the run does not need).
    expect(first).toMatchObject({ to: 1, format: 2, treeNodes: { nodes: r1.release2!.nodes - 1 } })
    expect((await readFile(join(wc, 'big.bin'))).equals(spec['big.bin'] as Buffer)).toBe(true)
    expect(await readFile(join(wc, 'd1/f1.txt'), 'utf8')).toBe('file 1\n')
    expect((await storedNodes(wc)).size).toBe(r1.release2!.nodes - 1)

    // r2 changes one file of d1: the top node and d1's are new, and only they are fetched, one tree level per request.
    const r2 = await publishAndSync(dual, src, { 'd1/f1.txt': 'file 1, edited\n' })
    const source = serverSource(clientNc, dual)
    expect(await update(wc, { source })).toMatchObject({ from: 1, to: 2, format: 2, updated: 1, treeNodes: { nodes: 2, requests: 2 } })
    expect(await readFile(join(wc, 'd1/f1.txt'), 'utf8')).toBe('file 1, edited\n')
    // The metadata fetched (release document, two nodes) is a fraction of the format-1 manifest of the same revision.
    expect(source.meta.bytes).toBeLessThan(Buffer.byteLength(JSON.stringify(r2.release!)) / 2)
    // r3 deletes a file of d2.
    await rm(join(src, 'd2/f2.txt'))
    await publishAndSync(dual, src, {})
    expect(await update(wc, { source: serverSource(clientNc, dual) })).toMatchObject({ from: 2, to: 3, format: 2, removed: 1, treeNodes: { nodes: 2, requests: 2 } })
    await expect(readFile(join(wc, 'd2/f2.txt'))).rejects.toMatchObject({ code: 'ENOENT' })

    const back = await rollback(wc, { rev: 1 })
    expect(back).toEqual({ from: 3, to: 1, source: 'local' })
    expect(await readFile(join(wc, 'd1/f1.txt'), 'utf8')).toBe('file 1\n')
    expect(await readFile(join(wc, 'd2/f2.txt'), 'utf8')).toBe('file 2\n')
    // `history` lists the format-2 revisions, each with its release id.
    expect((await history(wc)).revisions.map((r) => [r.rev, r.manifest, r.manifestSha256.length])).toEqual([[1, true, 64], [2, true, 64], [3, true, 64]])
    // Forward again: every node is held, none is fetched.
    expect(await update(wc, { source: serverSource(clientNc, dual), rev: 3 })).toMatchObject({ from: 1, to: 3, format: 2, treeNodes: { nodes: 0, requests: 0 } })
    expect((await status(wc, { source: serverSource(clientNc, dual) })).files.filter((f) => f.status !== 'current')).toEqual([])
  })

  it('share-daemon — without --auto, a release the servers hold is verified and its changed tree nodes kept ahead; the update then fetches no node', async () => {
    const src = join(dir.path, 'src-ahead')
    const spec: TreeSpec = {}
    for (let i = 0; i < 30; i++) spec[`d${i % 3}/f${i}.txt`] = `file ${i}\n`
    await publishAndSync(ahead, src, spec)
    const wc = join(dir.path, 'wc-ahead')
    await init(wc, { product: ahead, root: rootDoc(), source: serverSource(clientNc, ahead) })
    const daemon = await startDaemon({ dir: wc, nc: clientNc, updater: openUpdate, prefetch: (d, source) => prefetchRelease(d, { source }) })
    try {
      const heard = once(daemon, 'release.prefetched')
      const before = await storedNodes(wc)
      await publishAndSync(ahead, src, { 'd1/f1.txt': 'file 1, edited\n' })
      expect(await heard).toEqual([2])
      // Kept: r2's release and its two new nodes (the top and d1's); nothing in the tree changed.
      const wcNow = await WorkingCopy.open(wc)
      expect(wcNow.state.current).toBe(1)
      expect(await wcNow.trees.release(2)).toBeDefined()
      expect((await storedNodes(wc)).size).toBe(before.size + 2)
      expect(await readFile(join(wc, 'd1/f1.txt'), 'utf8')).toBe('file 1\n')
      expect(await daemon.updateNow()).toMatchObject({ from: 1, to: 2, format: 2, updated: 1, treeNodes: { nodes: 0, requests: 0 } })
      expect(await readFile(join(wc, 'd1/f1.txt'), 'utf8')).toBe('file 1, edited\n')
    } finally {
      await daemon.close()
    }
  })

  it('updater — the same product without format-2 answers (an older cluster) is read in format 1, to the same tree', async () => {
    const src = join(dir.path, 'src-dual')
    const wc = join(dir.path, 'wc-dual-v1')
    const v1Only: ReleaseSource = { ...serverSource(clientNc, dual), release2: async () => undefined }
    const warnings: string[] = []
    const log = { info: () => {}, warn: (_o: object, m: string) => { warnings.push(m) } }
    expect(await init(wc, { product: dual, root: rootDoc(), source: v1Only, log })).toMatchObject({ to: 3, format: 1 })
    // It keeps r1 and r2 in its history store in format 1 too.
    expect(warnings).toEqual([])
    expect(await readFile(join(wc, 'd1/f1.txt'), 'utf8')).toBe('file 1, edited\n')
    expect((await readFile(join(wc, 'big.bin'))).equals(await readFile(join(src, 'big.bin')))).toBe(true)
    expect((await storedNodes(wc)).size).toBe(0)
  })

  it('updater — a forged tree node from the wire, a release whose signature fails and one with an unknown critical field are refused, naming them; nothing is written', async () => {
    const src = join(dir.path, 'src-dual')
    const wc = join(dir.path, 'wc-dual')
    const r4 = await publishAndSync(dual, src, { 'd0/f0.txt': 'file 0, edited\n' })
    const before = await storedNodes(wc)
    const real = serverSource(clientNc, dual)
    let forged = ''
    const tampering: ReleaseSource = {
      ...real,
      async nodes(p, hashes) {
        const got = await real.nodes!(p, hashes)
        forged = hashes[0]!
        const bytes = Buffer.from(got.get(forged)!)
        bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1
        got.set(forged, bytes)
        return got
      },
    }
    await expect(update(wc, { source: tampering })).rejects.toMatchObject({
      code: 'UPSWARM_E_HASH_MISMATCH', message: expect.stringMatching(/tree node [0-9a-f]{16}… \(\(top\)\) does not hash to its name/),
    })
    expect(forged).toBe(r4.release2!.tree)
    expect(await storedNodes(wc)).toEqual(before)
    expect(await readFile(join(wc, 'd0/f0.txt'), 'utf8')).toBe('file 0\n')

    // A release document whose signature does not verify (one signed field changed).
    const badRelease: ReleaseSource = {
      ...real,
      async release2(p, rev) {
        const text = await real.release2!(p, rev)
        return text === undefined ? text : Buffer.from(text).toString('utf8').replace(/"files":(\d+)/, (_m, n: string) => `"files":${Number(n) + 1}`)
      },
    }
    await expect(update(wc, { source: badRelease })).rejects.toMatchObject({ code: 'UPSWARM_E_SIGNATURE', message: expect.stringMatching(/release r4 of .* carries 0 valid signature/) })
    expect(await storedNodes(wc)).toEqual(before)
    expect(await readFile(join(wc, 'd0/f0.txt'), 'utf8')).toBe('file 0\n')
    // The genuine one still goes through.
    expect(await update(wc, { source: real })).toMatchObject({ to: 4, format: 2, treeNodes: { nodes: 2 } })
    expect(await readFile(join(wc, 'd0/f0.txt'), 'utf8')).toBe('file 0, edited\n')

    // A validly signed r5 that marks a field this upswarm does not know as critical (docs/formats.md §2.3).
    const r4Text = Buffer.from((await real.release2!(dual))!).toString('utf8')
    const r4Env = JSON.parse(r4Text) as Envelope
    const future = encodeEnvelope(signEnvelope({ ...r4Env.signed, rev: 5, parent: releaseIdOf(r4Env), 'x-future': 1, critical: ['x-future'] }, [key])).toString('utf8')
    const critical: ReleaseSource = { ...real, release2: async () => future }
    await expect(update(wc, { source: critical })).rejects.toMatchObject({ code: 'UPSWARM_E_MANIFEST', message: expect.stringMatching(/needs a newer upswarm: it marks x-future critical/) })
    await expect(readFile(join(layoutOf(wc).releases2, '5.json'))).rejects.toMatchObject({ code: 'ENOENT' })
    expect((await status(wc)).rev).toBe(4)
  })

  it('updater — a formats [2] product larger than the (lowered) format-1 cap inits and updates in format 2', async () => {
    const src = join(dir.path, 'src-only2')
    const spec: TreeSpec = {}
    for (let i = 0; i < 40; i++) spec[`a/b${i % 4}/f${i}.txt`] = `only two ${i}\n`
    const r1 = await publishAndSync(only2, src, spec, 2048)
    expect(r1).toMatchObject({ formats: [2], manifestSha256: null })
    const wc = join(dir.path, 'wc-only2')
    expect(await init(wc, { product: only2, root: rootDoc(), source: serverSource(clientNc, only2) })).toMatchObject({ to: 1, format: 2, checkedOut: 40 })
    await publishAndSync(only2, src, { 'a/b3/f3.txt': 'changed\n', 'a/b3/new.txt': 'new\n' }, 2048)
    // top, a, a/b3 change.
    expect(await update(wc, { source: serverSource(clientNc, only2) })).toMatchObject({ from: 1, to: 2, format: 2, updated: 1, checkedOut: 1, treeNodes: { nodes: 3, requests: 3 } })
    expect(await readFile(join(wc, 'a/b3/new.txt'), 'utf8')).toBe('new\n')
    expect(await rollback(wc, { rev: 1 })).toEqual({ from: 2, to: 1, source: 'local' })
    await expect(readFile(join(wc, 'a/b3/new.txt'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('update (issue 13 item 3) — planned from the tree diff and the stat index: only the changed paths and those changed on disk are classified; a deleted unchanged file is restored, a local edit kept, a conflict alerted; the index it leaves says what a full classification says', async () => {
    const src = join(dir.path, 'src-planned')
    const spec: TreeSpec = { 'top.txt': 'top\n' }
    for (let i = 0; i < 40; i++) spec[`keep/d${i % 4}/k${i}.txt`] = `kept ${i}\n`
    for (let i = 0; i < 5; i++) spec[`gone/x${i}.txt`] = `gone ${i}\n`
    for (let i = 0; i < 5; i++) spec[`chg/c${i}.txt`] = `old ${i}\n`
    await publishAndSync(planned, src, spec)
    const wc = join(dir.path, 'wc-planned')
    await init(wc, { product: planned, root: rootDoc(), source: serverSource(clientNc, planned) })
    // The init leaves an index of r1 (no status classifies the tree again), which agrees with a full classification.
    const installed = await status(wc)
    expect(installed).toMatchObject({ statIndex: 'indexed', hashed: 0, notCurrent: [] })
    const installedFiles = installed.files
    await rm(layoutOf(wc).statCache)
    expect(installedFiles).toEqual((await status(wc)).files)
    // Local changes: a deleted and an edited unchanged file, an edit of a file r2 changes too, untracked files.
    await rm(join(wc, 'keep/d1/k1.txt'))
    await writeFile(join(wc, 'keep/d2/k2.txt'), 'mine\n')
    await writeFile(join(wc, 'chg/c0.txt'), 'mine too\n')
    await writeFile(join(wc, 'gone/untracked.txt'), 'not versioned\n')
    await writeFile(join(wc, 'loose.txt'), 'not versioned\n')
    // r2: chg/ rewritten, gone/ removed, fresh/ added; keep/ and top.txt as they were.
    await rm(join(src, 'gone'), { recursive: true })
    const next: TreeSpec = {}
    for (let i = 0; i < 5; i++) next[`chg/c${i}.txt`] = `new ${i}\n`
    for (let i = 0; i < 3; i++) next[`fresh/n${i}.txt`] = `fresh ${i}\n`
    await publishAndSync(planned, src, next)
    const logged: { obj: Record<string, unknown>; msg: string }[] = []
    const log = { info: (obj: object, msg: string) => logged.push({ obj: obj as Record<string, unknown>, msg }), warn: (obj: object, msg: string) => logged.push({ obj: obj as Record<string, unknown>, msg }) }
    const res = await update(wc, { source: serverSource(clientNc, planned), log })
    expect(res).toMatchObject({ from: 1, to: 2, format: 2, conflicts: ['chg/c0.txt'], checkedOut: 4, updated: 4, removed: 5 })
    // 17 of 61 paths: the 15 the diff names (5 changed, gone/ and its 5 files, fresh/ and its 3) and the 2 versioned ones changed on disk.
    expect(logged.find((l) => l.msg === 'planned update')?.obj).toMatchObject({ paths: 17 })
    expect(await readFile(join(wc, 'keep/d1/k1.txt'), 'utf8')).toBe('kept 1\n')
    expect(await readFile(join(wc, 'keep/d2/k2.txt'), 'utf8')).toBe('mine\n')
    expect(await readFile(join(wc, 'chg/c0.txt'), 'utf8')).toBe('mine too\n')
    expect(await readFile(join(wc, 'chg/c1.txt'), 'utf8')).toBe('new 1\n')
    expect(await readFile(join(wc, 'fresh/n2.txt'), 'utf8')).toBe('fresh 2\n')
    expect((await readdir(join(wc, 'gone'))).sort()).toEqual(['untracked.txt'])
    // The index the update rewrote for r2, and a full classification without it, agree.
    const after = await status(wc)
    expect(after.statIndex).toBe('indexed')
    await rm(layoutOf(wc).statCache)
    const full = await status(wc)
    expect(full.statIndex).toBe('no index')
    expect(after.notCurrent).toEqual(full.notCurrent)
    expect(full.notCurrent).toEqual([
      { path: 'chg/c0.txt', status: 'modified' },
      { path: 'gone', status: 'unversioned' },
      { path: 'gone/untracked.txt', status: 'unversioned' },
      { path: 'keep/d2/k2.txt', status: 'modified' },
      { path: 'loose.txt', status: 'unversioned' },
    ])
    expect(after.files).toEqual(full.files)
  })

  it('units (issue 13 item 4) — a first install of a packed release fetches its small files by the batch from the server\'s packs, each checked; one the batch lacks or brings wrong comes the per-file way', async () => {
    const src = serverSource(clientNc, only2)
    const calls = { units: 0, unitsAsked: 0, perFile: [] as string[] }
    // Tampers with the first batch of an install only (its older revision's files come in a second one).
    let tamper: 'none' | 'drop' | 'garble' = 'none'
    const counted: ReleaseSource = {
      ...src,
      units: async (p, hashes) => {
        calls.units++
        calls.unitsAsked += hashes.length
        const got = await src.units!(p, hashes)
        const first = [...got.keys()].sort()[0]!
        if (tamper === 'drop') got.delete(first)
        if (tamper === 'garble') got.set(first, Buffer.from('not what the tree says'))
        tamper = 'none'
        return got
      },
      fetchBlob: (entry, into, o) => {
        calls.perFile.push(entry.path)
        return src.fetchBlob(entry, into, o)
      },
    }
    // The release is format 2 only: its small files are in packs on the server, not blobs of their own.
    expect((await newestRelease2(clientNc, only2))!.signed.release.packs).toMatch(/^[0-9a-f]{64}$/)
    const wc = join(dir.path, 'wc-units')
    const res = await init(wc, { product: only2, root: rootDoc(), source: counted })
    expect(res).toMatchObject({ format: 2, checkedOut: 41 })
    // 41 files of r2, then r1's version of the one file r2 changed (kept for an offline rollback): no file alone.
    expect(calls).toEqual({ units: 2, unitsAsked: 42, perFile: [] })
    expect(res.bytesFromServers).toBeGreaterThan(0)
    expect((await status(wc, { source: src })).files.filter((f) => f.status !== 'current')).toEqual([])
    // The history store keeps each batch as one pack, not a file per blob.
    const hist = layoutOf(wc).history
    expect((await readdir(hist)).filter((n) => n !== 'packs' && n !== 'tmp')).toEqual([])
    expect((await readdir(join(hist, 'packs'))).filter((n) => n.endsWith('.pack'))).toHaveLength(2)
    // An offline rollback stages r1's version of the changed file from its pack.
    expect(await rollback(wc, { rev: 1 })).toEqual({ from: 2, to: 1, source: 'local' })
    expect(await readFile(join(wc, 'a/b3/f3.txt'), 'utf8')).toBe('only two 3\n')
    await expect(readFile(join(wc, 'a/b3/new.txt'))).rejects.toMatchObject({ code: 'ENOENT' })
    // A unit that rotted inside its pack is found when it is next used (R-VERIFY), dropped and fetched again.
    const packs = new PackStore(join(hist, 'packs'))
    await packs.open()
    const rotten = packs.locate(sha256Hex('changed\n'))!
    packs.close()
    const fh = await open(join(hist, 'packs', `${rotten.pack}.pack`), 'r+')
    await fh.write(Buffer.from('X'), 0, 1, rotten.offset)
    await fh.close()
    const warned: string[] = []
    const log = { info: () => {}, warn: (_: object, msg: string) => { warned.push(msg) } }
    expect(await update(wc, { source: src, log, rev: 2 })).toMatchObject({ from: 1, to: 2 })
    expect(await readFile(join(wc, 'a/b3/f3.txt'), 'utf8')).toBe('changed\n')
    expect(warned.filter((m) => m.includes('a/b3/f3.txt') && m.includes('is corrupt'))).toEqual([expect.any(String)])

    // The same, with one unit missing from the batch and then one whose bytes are wrong: that file
    // (and only it) is fetched alone, and verified, and the working copy is the release.
    for (const how of ['drop', 'garble'] as const) {
      tamper = how
      calls.units = 0
      calls.unitsAsked = 0
      calls.perFile = []
      const other = join(dir.path, `wc-units-${how}`)
      expect(await init(other, { product: only2, root: rootDoc(), source: counted })).toMatchObject({ format: 2, checkedOut: 41 })
      expect(calls.units).toBe(2)
      expect(calls.perFile).toHaveLength(1)
      expect((await status(other, { source: src })).files.filter((f) => f.status !== 'current')).toEqual([])
    }

    // An update that needs two small files asks for both in one batch, not one request each.
    const two = join(dir.path, 'wc-units-update')
    expect(await init(two, { product: only2, root: rootDoc(), source: src, rev: 1 })).toMatchObject({ format: 2 })
    Object.assign(calls, { units: 0, unitsAsked: 0, perFile: [] })
    expect(await update(two, { source: counted, rev: 2 })).toMatchObject({ from: 1, to: 2 })
    expect(calls).toEqual({ units: 1, unitsAsked: 2, perFile: [] })
    expect(await readFile(join(two, 'a/b3/new.txt'), 'utf8')).toBe('new\n')

    // The server's side: held units come back, a hash it does not hold is neither sent nor left.
    const reader = new RepoClient(clientNc).rangeReader(only2)
    const held = await Promise.all(['a/b0/f0.txt', 'a/b1/f1.txt'].map(async (path) => sha256Hex(await readFile(join(wc, path)))))
    const got = await reader.readUnits([...held, 'f'.repeat(64)])
    expect([...got.keys()].sort()).toEqual([...held].sort())
    for (const h of held) expect(sha256Hex(Buffer.from(got.get(h)!))).toBe(h)
  })

  it('units (issue 13 item 4) — a first install of 2 100 small files writes them on a worker thread, in place: every file and mode is the release, the stat index has each one\'s stat, nothing is left staged', async () => {
    const spec: TreeSpec = {}
    for (let i = 0; i < 2100; i++) spec[`d${i % 30}/f${i}.txt`] = `small file ${i}\n`.repeat(1 + (i % 7))
    spec['bin/run.sh'] = { mode: 0o755, content: '#!/bin/sh\necho run\n' }
    spec['secret.txt'] = { mode: 0o600, content: 'only mine\n' }
    // Enough files for the worker thread (fewer are written inline).
    expect(Object.keys(spec).length).toBeGreaterThanOrEqual(WRITER_THREAD_MIN)
    await publishAndSync(many, join(dir.path, 'src-many'), spec)
    const wc = join(dir.path, 'wc-many')
    expect(await init(wc, { product: many, root: rootDoc(), source: serverSource(clientNc, many) })).toMatchObject({ format: 2, checkedOut: 2102 })
    for (const i of [0, 1049, 2099]) expect(await readFile(join(wc, `d${i % 30}/f${i}.txt`), 'utf8')).toBe(`small file ${i}\n`.repeat(1 + (i % 7)))
    expect((await stat(join(wc, 'bin/run.sh'))).mode & 0o777).toBe(0o755)
    expect((await stat(join(wc, 'secret.txt'))).mode & 0o777).toBe(0o600)
    // The stat index the init leaves has each file's stat as the writer took it: no file is read again.
    expect(await status(wc)).toMatchObject({ statIndex: 'indexed', hashed: 0, notCurrent: [] })
    expect((await status(wc, { source: serverSource(clientNc, many) })).files.filter((f) => f.status !== 'current')).toEqual([])
    await expect(readdir(layoutOf(wc).staging)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('deltas (issue 15) — an edited text file, a changed binary and a new text file come as deltas or compressed and are rebuilt byte for byte; a rotten base is discarded with a warning and its file fetched whole', async () => {
    const src = join(dir.path, 'src-deltas')
    const text = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `line ${i}: ${tag}, the quick brown fox jumps over ${i * 7} lazy dogs\n`).join('')
    const bin = randomContent(300_000)
    const r1 = await publishAndSync(withDeltas, src, { 'a/app.js': text(4000, 'v1'), 'a/data.bin': bin, 'b/readme.txt': 'hello\n' })
    // A first release has compressed copies only: app.js (text) compresses, data.bin (random) does not, readme.txt is small.
    expect(r1.deltas).toMatchObject({ count: 1, targetBytes: Buffer.byteLength(text(4000, 'v1')) })
    const wc = join(dir.path, 'wc-deltas')
    const first = await init(wc, { product: withDeltas, root: rootDoc(), source: serverSource(clientNc, withDeltas) })
    expect(first).toMatchObject({ to: 1, format: 2, deltas: { files: 1, chunked: 0, failed: 0 } })
    expect(first.bytesFromServers).toBeLessThan(bin.length + Buffer.byteLength(text(4000, 'v1')) / 5)

    // r2: one line of app.js, 4 KiB inside data.bin, and a new text file.
    const js2 = text(4000, 'v1').replace('line 2000: v1', 'line 2000: v2')
    const bin2 = Buffer.from(bin)
    randomContent(4096).copy(bin2, 100_000)
    const added = text(2000, 'new')
    const r2 = await publishAndSync(withDeltas, src, { 'a/app.js': js2, 'a/data.bin': bin2, 'b/new.txt': added })
    // app.js: a delta and the file compressed; data.bin: a delta (random bytes do not compress); new.txt: compressed.
    expect(r2.deltas).toMatchObject({ count: 4, indexes: 1 })
    const changed = Buffer.byteLength(js2) + bin2.length + Buffer.byteLength(added)
    const res = await update(wc, { source: serverSource(clientNc, withDeltas) })
    expect(res).toMatchObject({ from: 1, to: 2, format: 2, updated: 2, checkedOut: 1, deltas: { files: 3, failed: 0, chunked: 0, fileBytes: changed }, warnings: [] })
    // The 4 KiB of new random bytes, a few hundred bytes for the edited line, and new.txt compressed.
    expect(res.bytesFromServers).toBeLessThan(4096 + 12_000)
    expect(await readFile(join(wc, 'a/app.js'), 'utf8')).toBe(js2)
    expect((await readFile(join(wc, 'a/data.bin'))).equals(bin2)).toBe(true)
    expect(await readFile(join(wc, 'b/new.txt'), 'utf8')).toBe(added)

    // r3 edits app.js again. Its base (r2's app.js) in the local history store has rotted: the
    // rebuilt file does not hash to the signed one, so it is discarded and app.js fetched whole.
    const js3 = js2.replace('line 10: v1', 'line 10: v3')
    await publishAndSync(withDeltas, src, { 'a/app.js': js3 })
    const { createHash } = await import('node:crypto')
    const base = layoutOf(wc)
    const found = await readdir(base.history, { recursive: true }).then((names) => names.map(String).find((n) => n.endsWith(createHash('sha256').update(js2).digest('hex'))))
    expect(found).toBeDefined()
    const rotten = join(base.history, found!)
    // A file of its own in the history's place: the tree's app.js, which was installed as a link
    // of the history file (one copy on disk), stays pristine, so only the base has rotted.
    const { rename } = await import('node:fs/promises')
    await writeFile(`${rotten}.rot`, js2.replace('line 3000', 'line 3001'))
    await rename(`${rotten}.rot`, rotten)
    const warned: string[] = []
    const log = { info: () => {}, warn: (_o: object, m: string) => { warned.push(m) } }
    const res3 = await update(wc, { source: serverSource(clientNc, withDeltas), log })
    expect(res3).toMatchObject({ from: 2, to: 3, updated: 1, deltas: { files: 0, failed: 1 } })
    expect(res3.bytesFromServers).toBe(Buffer.byteLength(js3))
    expect(res3.warnings).toEqual([expect.stringMatching(/1 delta\(s\) did not give the signed file/)])
    expect(warned).toContainEqual(expect.stringMatching(/the delta [0-9a-f]{16}… for a\/app\.js \(from .*\) did not give the signed file .*; fetching a\/app\.js whole instead/))
    expect(await readFile(join(wc, 'a/app.js'), 'utf8')).toBe(js3)
  })

  it('chunks (issue 15) — a client two revisions behind, with no delta from its version, fetches only the chunks of a large file it does not hold', async () => {
    const src = join(dir.path, 'src-deltas')
    const big = randomContent(2_000_000)
    await publishAndSync(withDeltas, src, { 'c/big.bin': big })
    const wc = join(dir.path, 'wc-chunks')
    const at = await init(wc, { product: withDeltas, root: rootDoc(), source: serverSource(clientNc, withDeltas) })
    // Two edits of 4 KiB in two later revisions: the newest release's delta is from the version in between.
    const v2 = Buffer.from(big)
    randomContent(4096).copy(v2, 500_000)
    await publishAndSync(withDeltas, src, { 'c/big.bin': v2 })
    const v3 = Buffer.from(v2)
    randomContent(4096).copy(v3, 1_500_000)
    const r = await publishAndSync(withDeltas, src, { 'c/big.bin': v3 })
    const res = await update(wc, { source: serverSource(clientNc, withDeltas) })
    expect(res).toMatchObject({ from: at.to, to: r.rev, updated: 1, deltas: { files: 1, chunked: 1, failed: 0, fileBytes: v3.length }, warnings: [] })
    // Two edited regions: at most two or three chunks of ≤ 256 KiB each, not the 2 MB file.
    expect(res.bytesFromServers).toBeLessThan(800_000)
    expect(res.bytesFromServers).toBe(res.deltas!.bytes)
    expect((await readFile(join(wc, 'c/big.bin'))).equals(v3)).toBe(true)
  })

  it('deltas (issue 15 item 2) — a source that checks pieces by format 1\'s hashes (the swarm\'s) plans in format 1 and still takes the deltas of the format-2 release naming that manifest', async () => {
    const src = join(dir.path, 'src-deltas')
    const pieces = (): ReleaseSource => ({ ...serverSource(clientNc, withDeltas), needsPieceHashes: true })
    const wc = join(dir.path, 'wc-deltas-v1')
    const at = await init(wc, { product: withDeltas, root: rootDoc(), source: pieces() })
    expect(at).toMatchObject({ format: 1 })
    const before = await readFile(join(src, 'a/app.js'), 'utf8')
    const next = before.replace('line 20: v1', 'line 20: v4')
    const r = await publishAndSync(withDeltas, src, { 'a/app.js': next })
    const res = await update(wc, { source: pieces() })
    expect(res).toMatchObject({ from: at.to, to: r.rev, format: 1, updated: 1, deltas: { files: 1, failed: 0 }, warnings: [] })
    expect(res.bytesFromServers).toBeLessThan(1000)
    expect(await readFile(join(wc, 'a/app.js'), 'utf8')).toBe(next)
  })

  it('rollback — offline to a revision installed in format 2 from one a swarm run installed in format 1 (its format-2 release stored for the deltas, its tree not): the old tree is walked whole from what the copy holds', async () => {
    const src = join(dir.path, 'src-mixed')
    const spec: TreeSpec = {}
    for (let i = 0; i < 12; i++) spec[`m${i % 2}/f${i}.txt`] = `mixed ${i}\n`
    const r1 = await publishAndSync(dual, src, spec)
    const wc = join(dir.path, 'wc-mixed')
    // The first revision in format 2 (a daemon with no peer, or the command), the next as the swarm plans it.
    expect(await init(wc, { product: dual, root: rootDoc(), source: serverSource(clientNc, dual), rev: r1.rev })).toMatchObject({ format: 2 })
    const r2 = await publishAndSync(dual, src, { 'm1/f1.txt': 'mixed 1, edited\n' })
    expect(await update(wc, { source: { ...serverSource(clientNc, dual), needsPieceHashes: true }, rev: r2.rev })).toMatchObject({ from: r1.rev, to: r2.rev, format: 1 })
    expect((await history(wc)).revisions.find((v) => v.rev === r1.rev)?.local).toBe(true)
    const back = await rollback(wc, { rev: r1.rev })
    expect(back).toEqual({ from: r2.rev, to: r1.rev, source: 'local' })
    expect(await readFile(join(wc, 'm1/f1.txt'), 'utf8')).toBe('mixed 1\n')
    expect((await status(wc, {})).files.filter((f) => f.status !== 'current')).toEqual([])
  })

  it('status — after an update to an older --rev, the newest revision\'s tree is fetched by a connected status; offline, status compares with the installed revision and says why', async () => {
    const src = join(dir.path, 'src-behind')
    await publishAndSync(behind, src, { 'a/one.txt': 'one\n', 'b/two.txt': 'two\n' })
    const wc = join(dir.path, 'wc-behind')
    await init(wc, { product: behind, root: rootDoc(), source: serverSource(clientNc, behind) })
    await publishAndSync(behind, src, { 'a/one.txt': 'one, r2\n' })
    await publishAndSync(behind, src, { 'b/two.txt': 'two, r3\n' })
    // The update learns r3 (newest verified) but fetches only r2's tree.
    expect(await update(wc, { source: serverSource(clientNc, behind), rev: 2 })).toMatchObject({ from: 1, to: 2, format: 2 })
    const offline = await status(wc)
    expect(offline).toMatchObject({ rev: 2, latest: 3, target: 2 })
    expect(offline.targetUnavailable).toMatch(/^r3 is the newest verified revision, but its file list is not held here \(tree node [0-9a-f]{16}… of r3 is missing in .*\); statuses compare with the installed r2/)
    expect(offline.files.filter((f) => f.status !== 'current')).toEqual([])
    const online = await status(wc, { source: serverSource(clientNc, behind) })
    expect(online).toMatchObject({ rev: 2, latest: 3, target: 3 })
    expect(online.targetUnavailable).toBeUndefined()
    expect(online.files.filter((f) => f.status !== 'current')).toEqual([{ path: 'b/two.txt', status: 'outdated' }])
    // Its nodes are held now: offline sees r3 too.
    const after = await status(wc)
    expect(after).toMatchObject({ target: 3 })
    expect(after.files.filter((f) => f.status !== 'current')).toEqual([{ path: 'b/two.txt', status: 'outdated' }])
  })

  it('serverSource — with no `meta` responder (a cluster of the previous release) the format-2 source answers "none" (the updater then reads format 1, as above), not an error', async () => {
    const other = newProduct()
    // No responder on the subject the source asks: the proxy's `meta`, with the proxy stopped.
    await proxy.close()
    proxyClosed = true
    await expect(serverSource(clientNc, other).release2!(other)).resolves.toBeUndefined()
  })
})
