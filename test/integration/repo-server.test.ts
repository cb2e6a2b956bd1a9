import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { decodeRelease } from '../../infra/release/manifest.ts'
import { repoSubject } from '../../infra/nats/names.ts'
import { request, requestJson } from '../../infra/nats/service.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { newProduct, tempDir, testConnection } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'
import { waitFor } from 'xstate'

describe('repository server', () => {
  let nc: NatsConnection
  let dir: { path: string; cleanup: () => Promise<void> }
  const key = generatePublisherKey()
  const product = newProduct()
  const big = randomContent(3 * 1024 * 1024 + 17)

  beforeAll(async () => {
    nc = await testConnection()
    dir = await tempDir()
    await writeTree(join(dir.path, 'src'), { 'a.txt': 'alpha\n', 'bin/big.bin': big, 'lib/link': { symlink: '../a.txt' } })
  })
  afterAll(async () => {
    await nc?.close()
    await dir?.cleanup()
  })

  async function syncedTo(server: RepoServer, rev: number): Promise<void> {
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= rev, { timeout: 30_000 })
  }

  it('repository server — syncs a published release, verifies blobs, serves manifest, SHA-1 list and ranges', async () => {
    const trust = join(dir.path, 'trust.json')
    const result = await publish({ nc, src: join(dir.path, 'src'), product, key, label: '1.0.0', trust })
    expect(result).toMatchObject({ product, rev: 1, label: '1.0.0', files: 2, newBlobs: 2 })
    const server = await startRepoServer({ nc, id: `t${Date.now()}`, dataDir: join(dir.path, 's1'), trust: await new TrustStore(trust).ready() })
    try {
      await syncedTo(server, 1)
      const revs = await requestJson<{ latest: number; revs: { rev: number; manifestSha256: string }[] }>(
        nc, repoSubject(server.id, 'revs'), { product })
      expect(revs.latest).toBe(1)
      expect(revs.revs[0]!.manifestSha256).toBe(result.manifestSha256)
      const bytes = await request(nc, repoSubject(server.id, 'manifest'), { product, rev: 1 })
      expect(decodeRelease(bytes, key.publicKey, 'test').manifest.rev).toBe(1)
      const sha1s = await requestJson<{ files: { path: string; sha1: string }[] }>(nc, repoSubject(server.id, 'sha1s'), { product, rev: 1 })
      expect(sha1s.files.map((f) => f.path)).toEqual(['a.txt', 'bin/big.bin'])
      const range = await request(nc, repoSubject(server.id, 'range'), { sha256: sha256Hex(big), offset: 1024 * 1024, length: 1000 })
      expect(Buffer.from(range).equals(big.subarray(1024 * 1024, 1024 * 1024 + 1000))).toBe(true)
      await expect(request(nc, repoSubject(server.id, 'manifest'), { product, rev: 9 })).rejects.toMatchObject({ code: 'UPSWARM_E_UNKNOWN_REVISION' })
      await expect(request(nc, repoSubject(server.id, 'range'), { sha256: 'zz', offset: 0, length: 1 })).rejects.toMatchObject({ code: 'UPSWARM_E_BAD_REQUEST' })
    } finally {
      await server.close()
    }
  })
})
