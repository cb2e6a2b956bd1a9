// Issue 10 item 4 on the servers' side, on the suite's real cluster: a repository server syncs
// only the releases its trust file allows, skips the rest with one log line each, and goes on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { waitFor } from 'xstate'
import { headers } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer } from '../../actors/repo-server/index.ts'
import { RELEASE_STREAM, releaseSubject } from '../../infra/nats/names.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { encodeRelease, signManifest } from '../../infra/release/manifest.ts'
import { REV_HEADER } from '../../infra/release/release-log.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { newProduct, tempDir, testConnection } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'

describe('repository server — trust file', () => {
  let nc: NatsConnection
  let dir: { path: string; cleanup: () => Promise<void> }
  const key = generatePublisherKey()
  const other = generatePublisherKey()

  beforeAll(async () => {
    nc = await testConnection()
    dir = await tempDir()
  })
  afterAll(async () => {
    await nc?.close()
    await dir?.cleanup()
  })

  async function tree(name: string, content: string): Promise<string> {
    const src = join(dir.path, name)
    await writeTree(src, { 'a.txt': content })
    return src
  }

  it('repository server — skips releases of unpinned products and of other keys with a log line naming sequence, product and key, and keeps syncing the pinned product', async () => {
    const trust = join(dir.path, 'trust.json')
    const pinned = newProduct()
    const unpinned = newProduct()
    const js = jetstream(nc)
    const p1 = await publish({ nc, src: await tree('p1', 'one'), product: pinned, key, trust, skipFeed: true })
    const u1 = await publish({ nc, src: await tree('u1', 'theirs'), product: unpinned, key: other, skipFeed: true })
    const h = headers()
    h.set(REV_HEADER, '2')
    const foreign = signManifest({ format: 1, product: pinned, rev: 2, createdAt: new Date().toISOString(), pieceSize: 1024 * 1024, entries: [] }, other)
    const foreignSeq = (await js.publish(releaseSubject(pinned), encodeRelease(foreign), { headers: h })).seq
    const p2 = await publish({ nc, src: await tree('p2', 'two'), product: pinned, key, trust, skipFeed: true })
    expect(p2.rev).toBe(2)
    const unpinnedSeq = (await jetstreamManager(nc).then((jsm) => jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(unpinned) })))!.seq

    const lines: string[] = []
    const server = await startRepoServer({
      nc, id: `trust${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready(), log: (m) => lines.push(m),
    })
    try {
      // One message at a time, in stream order: r2 synced means every earlier message was handled.
      await waitFor(server.actor, () => (server.store.synced[pinned] ?? 0) >= 2, { timeout: 60_000 })
      expect(server.store.release(pinned, 2)?.sha).toBe(p2.manifestSha256)
      expect(server.store.release(pinned, 1)?.sha).toBe(p1.manifestSha256)
      expect(server.store.synced[unpinned]).toBeUndefined()
      const about = (seq: number) => lines.filter((l) => l.startsWith(`rejected release seq ${seq}:`))
      expect(about(unpinnedSeq)).toEqual([expect.stringContaining(`(product ${unpinned} r1, key ${other.publicKey}) skipped: product ${unpinned} is not pinned in trust file ${trust}`)])
      expect(about(foreignSeq)).toEqual([expect.stringContaining(`(product ${pinned} r2, key ${other.publicKey}) skipped: product ${pinned} is pinned to key ${key.publicKey}`)])
      expect(u1.rev).toBe(1)

      // A product pinned while the server runs is trusted from its next release on, no restart.
      const later = newProduct()
      const l1 = await publish({ nc, src: await tree('l1', 'later'), product: later, key, trust, skipFeed: true })
      await waitFor(server.actor, () => (server.store.synced[later] ?? 0) >= 1, { timeout: 30_000 })
      expect(server.store.release(later, 1)?.sha).toBe(l1.manifestSha256)
    } finally {
      await server.close()
    }
  })
})
