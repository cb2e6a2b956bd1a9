// Issue 11 item 6: a release a server cannot sync (here: a blob that is not in the object store)
// is parked after a bounded number of tries, with an alert to the administrators; the server
// goes on with the next releases and products, its heartbeat (and so `stats`) shows what is
// parked and why, and it syncs the parked release once the cause is gone.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { headers } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer } from '../../actors/repo-server/index.ts'
import { ALERT_STREAM, alertSubject, releaseSubject } from '../../infra/nats/names.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { encodeRelease, signManifest } from '../../infra/release/manifest.ts'
import { REV_HEADER } from '../../infra/release/release-log.ts'
import { TrustStore, pinProduct } from '../../infra/release/trust.ts'
import { connectionAndDir, newProduct, roleConnection } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'

describe('repository server — parking', () => {
  const fx = connectionAndDir()
  const key = generatePublisherKey()

  it('repository server — a release whose blob never arrives is parked with an alert after its tries, later releases sync, and it syncs once the blob is there', async () => {
    const trust = join(fx.dir, 'trust.json')
    const stuck = newProduct()
    const fine = newProduct()
    await pinProduct(trust, stuck, key.publicKey)
    // r1 of `stuck` names a blob nobody uploaded (a publish that died between append and upload, or a lost object).
    const content = Buffer.from(`missing ${stuck}\n`)
    const sha256 = createHash('sha256').update(content).digest('hex')
    const sha1 = createHash('sha1').update(content).digest('hex')
    const manifest = signManifest({
      format: 1, product: stuck, rev: 1, createdAt: new Date().toISOString(), pieceSize: PIECE_SIZE,
      entries: [{ path: 'a.txt', kind: 'file', mode: 0o644, size: content.length, sha1, sha256 }],
    }, key)
    const h = headers()
    h.set(REV_HEADER, '1')
    const stuckSeq = (await jetstream(fx.nc).publish(releaseSubject(stuck), encodeRelease(manifest), { headers: h })).seq
    const src = join(fx.dir, 'fine')
    await writeTree(src, { 'b.txt': 'fine\n' })
    await publish({ nc: fx.nc, src, product: fine, key, trust, skipFeed: true })

    const id = `park${process.pid}`
    const conn = await roleConnection({ kind: 'server', name: id })
    const lines: string[] = []
    const server = await startRepoServer({
      nc: conn, id, dataDir: join(fx.dir, id), trust: await new TrustStore(trust).ready(), log: (m) => lines.push(m),
      syncAttempts: 3, parkRetryMs: 60 * 60_000,
    })
    try {
      // The later release of another product is not held up behind the stuck one.
      await waitFor(server.actor, () => (server.store.synced[fine] ?? 0) >= 1, { timeout: 60_000 })
      expect(server.store.synced[stuck]).toBeUndefined()
      expect(server.store.parked).toEqual([expect.objectContaining({ seq: stuckSeq, product: stuck, rev: 1, reason: expect.stringMatching(new RegExp(`blob ${sha256} .* is not in the object store yet.*after 3 tries`)) })])
      expect(server.heartbeat().parked).toEqual([expect.objectContaining({ seq: stuckSeq, product: stuck, rev: 1 })])
      expect(lines.filter((l) => l.startsWith(`sync of seq ${stuckSeq} failed, will retry`))).toHaveLength(2)
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^parked release seq ${stuckSeq} \\(${stuck} r1\\); going on`)))
      const alert = await (await jetstreamManager(fx.nc)).streams.getMessage(ALERT_STREAM, { last_by_subj: alertSubject(stuck, id) })
      expect(alert?.json()).toMatchObject({ type: 'release.parked', server: id, product: stuck, rev: 1, seq: stuckSeq })
    } finally {
      await server.close()
    }

    // The blob arrives; a server that tries parked releases again soon syncs it and unparks it.
    const { blobs } = await openRepository(fx.nc)
    await blobs.putBlob({ name: sha256 }, content)
    const again = await startRepoServer({
      nc: conn, id, dataDir: join(fx.dir, id), trust: await new TrustStore(trust).ready(), log: (m) => lines.push(m), syncAttempts: 3, parkRetryMs: 1,
    })
    try {
      await waitFor(again.actor, () => (again.store.synced[stuck] ?? 0) >= 1, { timeout: 60_000 })
      expect(again.store.parked).toEqual([])
      expect(again.heartbeat().parked).toEqual([])
    } finally {
      await again.close()
      await conn.close()
    }
  })
})
