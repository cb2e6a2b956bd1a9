// Issue 10 item 4 on the servers' side, on the suite's real cluster: a repository server syncs
// only the releases its trust file allows, skips the rest with one log line each, and goes on;
// a release skipped because its product was not pinned yet is synced once the file pins it.
import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { waitFor } from 'xstate'
import { headers } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { RELEASE_STREAM, releaseSubject } from '../../infra/nats/names.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { encodeRelease, signManifest } from '../../infra/release/manifest.ts'
import { REV_HEADER } from '../../infra/release/release-log.ts'
import { TrustStore, pinProduct } from '../../infra/release/trust.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { connectionAndDir, newProduct, roleConnection } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'

describe('repository server — trust file', () => {
  const fx = connectionAndDir()
  const key = generatePublisherKey()
  const other = generatePublisherKey()

  async function tree(name: string, content: string): Promise<string> {
    const src = join(fx.dir, name)
    await writeTree(src, { 'a.txt': content })
    return src
  }

  it('repository server — skips releases of unpinned products and of other keys with a log line naming sequence, product and key, and keeps syncing the pinned product', async () => {
    const trust = join(fx.dir, 'trust.json')
    const pinned = newProduct()
    const unpinned = newProduct()
    const js = jetstream(fx.nc)
    const p1 = await publish({ nc: fx.nc, src: await tree('p1', 'one'), product: pinned, key, trust, skipFeed: true })
    const u1 = await publish({ nc: fx.nc, src: await tree('u1', 'theirs'), product: unpinned, key: other, skipFeed: true })
    const h = headers()
    h.set(REV_HEADER, '2')
    const foreign = signManifest({ format: 1, product: pinned, rev: 2, createdAt: new Date().toISOString(), pieceSize: 1024 * 1024, entries: [] }, other)
    const foreignSeq = (await js.publish(releaseSubject(pinned), encodeRelease(foreign), { headers: h })).seq
    const p2 = await publish({ nc: fx.nc, src: await tree('p2', 'two'), product: pinned, key, trust, skipFeed: true })
    expect(p2.rev).toBe(2)
    const unpinnedSeq = (await jetstreamManager(fx.nc).then((jsm) => jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(unpinned) })))!.seq

    const lines: string[] = []
    const server = await startRepoServer({
      nc: fx.nc, id: `trust${process.pid}`, dataDir: join(fx.dir, 'server'), trust: await new TrustStore(trust).ready(), log: (m) => lines.push(m),
    })
    try {
      // One message at a time, in stream order: r2 synced means every earlier message was handled.
      await waitFor(server.actor, () => (server.store.synced[pinned] ?? 0) >= 2, { timeout: 30_000 })
      expect(server.store.release(pinned, 2)?.sha).toBe(p2.manifestSha256)
      expect(server.store.release(pinned, 1)?.sha).toBe(p1.manifestSha256)
      expect(server.store.synced[unpinned]).toBeUndefined()
      const about = (seq: number) => lines.filter((l) => l.startsWith(`rejected release seq ${seq}:`))
      expect(about(unpinnedSeq)).toEqual([expect.stringContaining(`(product ${unpinned} r1, key ${other.publicKey}) skipped: product ${unpinned} is not pinned in trust file ${trust}`)])
      expect(about(foreignSeq)).toEqual([expect.stringContaining(`(product ${pinned} r2, key ${other.publicKey}) skipped: product ${pinned} is pinned to key ${key.publicKey}`)])
      expect(u1.rev).toBe(1)

      // A product pinned while the server runs is trusted from its next release on, no restart.
      const later = newProduct()
      const l1 = await publish({ nc: fx.nc, src: await tree('l1', 'later'), product: later, key, trust, skipFeed: true })
      await waitFor(server.actor, () => (server.store.synced[later] ?? 0) >= 1, { timeout: 30_000 })
      expect(server.store.release(later, 1)?.sha).toBe(l1.manifestSha256)
    } finally {
      await server.close()
    }
  })

  /** A server as its own role identity, as `up` runs it (the re-examination reads the stream by sequence). */
  async function serverOf(id: string, trust: string, lines: string[] = []): Promise<RepoServer & { nc: NatsConnection }> {
    const conn = await roleConnection({ kind: 'server', name: id })
    const server = await startRepoServer({ nc: conn, id, dataDir: join(fx.dir, id), trust: await new TrustStore(trust).ready(), log: (m) => lines.push(m) })
    return { ...server, nc: conn, close: async () => { await server.close(); await conn.close() } }
  }
  const awaiting = (server: RepoServer, product: string, count: number) =>
    waitFor(server.actor, () => (server.store.awaitingPin[product]?.length ?? 0) >= count, { timeout: 30_000 })
  const held = (server: RepoServer, product: string, revs: number[]) =>
    waitFor(server.actor, () => revs.every((r) => server.store.release(product, r)), { timeout: 30_000 })

  it('repository server — a release skipped because its product was not pinned is synced once the trust file pins the product: live, with no new release, and across a restart', async () => {
    const trust = join(fx.dir, 'trust-later.json')
    const id = `later${process.pid}`
    const lines: string[] = []
    let server = await serverOf(id, trust, lines)
    try {
      // Pinned while the server runs, with no new release in the stream: picked up at its next poll.
      const live = newProduct()
      const l1 = await publish({ nc: fx.nc, src: await tree('live1', `live ${live}`), product: live, key, skipFeed: true })
      await awaiting(server, live, 1)
      expect(server.store.release(live, 1)).toBeUndefined()
      await pinProduct(trust, live, key.publicKey)
      await held(server, live, [1])
      expect(server.store.release(live, 1)?.sha).toBe(l1.manifestSha256)
      expect(server.store.awaitingPin[live]).toBeUndefined()
      expect(lines.some((l) => l.startsWith('examining release stream seq') && l.includes(`product ${live} is pinned now`))).toBe(true)

      // Pinned by the publish of r2 (`publish --trust`, as `up` does): r1, skipped before, is held
      // too, whichever of the two the server handles first.
      const pub = newProduct()
      const p1 = await publish({ nc: fx.nc, src: await tree('pub1', `pub1 ${pub}`), product: pub, key, skipFeed: true })
      await awaiting(server, pub, 1)
      const p2 = await publish({ nc: fx.nc, src: await tree('pub2', `pub2 ${pub}`), product: pub, key, trust, skipFeed: true })
      await held(server, pub, [1, 2])
      expect(server.store.revisions(pub).map((r) => [r.rev, r.manifestSha256])).toEqual([[1, p1.manifestSha256], [2, p2.manifestSha256]])
      expect(server.store.synced[pub]).toBe(2)

      // The list of releases waiting for a pin is kept on disk: pinned while the server is down,
      // they are synced when it starts again.
      const down = newProduct()
      const d1 = await publish({ nc: fx.nc, src: await tree('down1', `down1 ${down}`), product: down, key, skipFeed: true })
      const d2 = await publish({ nc: fx.nc, src: await tree('down2', `down2 ${down}`), product: down, key, skipFeed: true })
      await awaiting(server, down, 2)
      await server.close()
      await pinProduct(trust, down, key.publicKey)
      server = await serverOf(id, trust, lines)
      await held(server, down, [1, 2])
      expect(server.store.revisions(down).map((r) => r.manifestSha256)).toEqual([d1.manifestSha256, d2.manifestSha256])
      expect(server.store.awaitingPin[down]).toBeUndefined()
    } finally {
      await server.close()
    }
  })

  it('repository server — a release of a product pinned to another key is refused for good, not kept waiting for a pin', async () => {
    const trust = join(fx.dir, 'trust-other.json')
    const product = newProduct()
    await pinProduct(trust, product, key.publicKey)
    await publish({ nc: fx.nc, src: await tree('theirs', `theirs ${product}`), product, key: other, skipFeed: true })
    const theirs = (await jetstreamManager(fx.nc).then((jsm) => jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(product) })))!
    const lines: string[] = []
    const server = await serverOf(`other${process.pid}`, trust, lines)
    try {
      await waitFor(server.actor, () => server.store.lastSeq >= theirs.seq, { timeout: 30_000 })
      expect(server.store.awaitingPin[product]).toBeUndefined()
      expect(lines.filter((l) => l.startsWith(`rejected release seq ${theirs.seq}:`))).toEqual([expect.stringContaining(`is pinned to key ${key.publicKey}`)])
    } finally {
      await server.close()
    }
  })

  it('repository server — `upswarm server` without --trust is a usage error naming the flag (exit 2, UPSWARM_E_CONFIG)', async () => {
    const env = { ...process.env }
    delete env.UPSWARM_TRUST
    const run = promisify(execFile)(process.execPath, [join(PROJECT_ROOT, 'bin', 'upswarm.cjs'), 'server', '--id', 'notrust', '--data', join(fx.dir, 'notrust')], { env })
    const failed = await run.then(() => null, (err: { code: number; stderr: string }) => err)
    expect(failed?.code).toBe(2)
    expect(failed?.stderr).toMatch(/server notrust: --trust FILE \(or UPSWARM_TRUST\) is required.*\[UPSWARM_E_CONFIG\]/)
  })
})
