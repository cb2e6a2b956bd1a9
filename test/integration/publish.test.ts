import { describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { publish } from '../../actors/publisher/publish.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { decodeRelease, manifestSha256 } from '../../infra/release/manifest.ts'
import { RELEASE_STREAM, releaseSubject } from '../../infra/nats/names.ts'
import { withRetry } from '../../infra/nats/retry.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { connectionAndDir, newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

async function releasesOf(nc: NatsConnection, product: string, publicKey: string) {
  return withRetry(() => readReleases(nc, product, publicKey), { attempts: 30 })
}

async function readReleases(nc: NatsConnection, product: string, publicKey: string) {
  const jsm = await jetstreamManager(nc)
  const info = await jsm.streams.info(RELEASE_STREAM, { subjects_filter: releaseSubject(product) })
  const count = info.state.subjects?.[releaseSubject(product)] ?? 0
  const consumer = await jetstream(nc).consumers.get(RELEASE_STREAM, { filter_subjects: [releaseSubject(product)] })
  const out = []
  for (let i = 0; i < count; i++) {
    const msg = await consumer.next({ expires: 5000 })
    out.push(decodeRelease(msg!.data, publicKey, 'stream').manifest)
  }
  return out
}

describe('publish', () => {
  const fx = connectionAndDir()
  const key = generatePublisherKey()

  it('publish — two concurrent publishes of one product get revisions 1 and 2, chained, never two 1s', async () => {
    const product = newProduct()
    await writeTree(join(fx.dir, 'c1'), { 'a.txt': 'one' })
    await writeTree(join(fx.dir, 'c2'), { 'a.txt': 'two' })
    const [a, b] = await Promise.all([
      publish({ nc: fx.nc, src: join(fx.dir, 'c1'), product, key }),
      publish({ nc: fx.nc, src: join(fx.dir, 'c2'), product, key }),
    ])
    expect([a.rev, b.rev].sort()).toEqual([1, 2])
    const stored = await releasesOf(fx.nc, product, key.publicKey)
    expect(stored.map((m) => m.rev)).toEqual([1, 2])
    expect(stored[1]!.parent).toBe(manifestSha256(stored[0]!))
  })

  it('publish — publishing an unchanged tree again appends nothing; only new blobs are uploaded', async () => {
    const product = newProduct()
    const src = join(fx.dir, 'same')
    await writeTree(src, { 'x.bin': randomContent(200_000), 'y.txt': 'y' })
    const first = await publish({ nc: fx.nc, src, product, key })
    const again = await publish({ nc: fx.nc, src, product, key })
    expect(again).toMatchObject({ rev: 1, unchanged: true, newBlobs: 0, manifestSha256: first.manifestSha256 })
    await writeFile(join(src, 'y.txt'), 'changed')
    const second = await publish({ nc: fx.nc, src, product, key })
    expect(second).toMatchObject({ rev: 2, newBlobs: 1, newBytes: 7 })
    expect((await releasesOf(fx.nc, product, key.publicKey)).map((m) => m.rev)).toEqual([1, 2])
  })

  it('publish — kill -9 of a nats-server node during a publish: it succeeds or fails cleanly, no release lost or duplicated', async () => {
    const own = await tempDir('upswarm-killpub-')
    const { cluster, connect } = await startOwnCluster(own.path)
    const c = await connect('test-killpub', { kind: 'publisher', name: 'publisher' })
    try {
      const product = newProduct()
      const revs: number[] = []
      for (let i = 0; i < 3; i++) {
        const src = join(own.path, `src${i}`)
        await writeTree(src, { 'big.bin': randomContent(2 * 1024 * 1024), 'n.txt': String(i) })
        const pending = publish({ nc: c, src, product, key })
        if (i === 1) await cluster.nodes[1]!.kill('SIGKILL')
        const r = await pending.catch(() => publish({ nc: c, src, product, key }))
        revs.push(r.rev)
      }
      expect(revs).toEqual([1, 2, 3])
      const admin = await connect('test-killpub-read')
      expect((await releasesOf(admin, product, key.publicKey)).map((m) => m.rev)).toEqual([1, 2, 3])
      await admin.close()
    } finally {
      await c.close()
      await cluster.stop()
      await own.cleanup()
    }
    // A cluster of its own (up to three 30 s start attempts on a busy machine) and a JetStream
    // leader election after the kill: 60 s was too short in a fresh-clone run.
  }, 180_000)
})
