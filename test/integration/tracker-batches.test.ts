// Issue 14 item 5: a tracker instance writes its registry changes to the bucket as batches
// (infra/tracker/peer-log.ts), a few messages per flush instead of one per peer; it still reads
// the per-peer keys an earlier version writes; and it deletes a batch once every record in it has
// ended. On the suite's real cluster (credentials, TLS).
import { randomBytes } from 'node:crypto'
import { Kvm, type KV } from '@nats-io/kv'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { identityOf } from '../../infra/nats/identity.ts'
import { PEER_BUCKET, productPeerKey, trackerSubject, unmappedPeerKey } from '../../infra/nats/names.ts'
import { infoHashHex } from '../../infra/tracker/info-hash.ts'
import { batchesOf as batchFilter, readBucketPeers } from '../../infra/tracker/peer-log.ts'
import { flushEveryMs } from '../../infra/tracker/registry.ts'
import { newProduct, testConnection } from '../helpers/cluster.ts'
import { UdpProbe } from '../helpers/tracker-wire.ts'

const eventually = { timeout: 30_000, interval: 20 }

/** The batch keys one instance has in the bucket now. */
async function batchesOf(kv: KV, instance: string): Promise<string[]> {
  const keys: string[] = []
  for await (const k of await kv.keys(batchFilter(instance))) keys.push(k)
  return keys
}

describe('tracker bucket batches', () => {
  let nc: NatsConnection
  let kv: KV
  let a: Tracker
  let b: Tracker

  beforeAll(async () => {
    nc = await testConnection('tracker-batches')
    a = await startTracker({ nc, id: `batch-a-${process.pid}`, rateLimit: false })
    b = await startTracker({ nc, id: `batch-b-${process.pid}`, rateLimit: false })
    kv = await new Kvm(nc).open(PEER_BUCKET)
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await nc?.close()
  })

  it('tracker — 400 announces reach the bucket as a few batch messages, not one per peer, and another instance lists them all', async () => {
    const N = 400
    const infoHash = randomBytes(20)
    const probe = await UdpProbe.open(a.udpUrl)
    const cid = await probe.connect()
    const started = performance.now()
    for (let i = 0; i < N; i++) {
      const res = await probe.request(UdpProbe.announcePacket(cid, { infoHash, peerId: randomBytes(20), port: 21_000 + i, event: 'started', numwant: 0 }))
      expect(res.readUInt32BE(0)).toBe(1)
    }
    probe.close()
    const elapsed = performance.now() - started
    await vi.waitFor(() => expect([a.registry.unflushedWrites, a.registry.writesInFlight]).toEqual([0, 0]), eventually)
    const hash = infoHash.toString('hex')
    await vi.waitFor(() => {
      const s = b.registry.scrape(hash)
      expect(s.seeders + s.leechers).toBe(N)
    }, eventually)
    // At most one batch per flush that passed while announcing (and one more for the last): with
    // one write per peer there would have been 400.
    const batches = await batchesOf(kv, a.registry.instance)
    const flushes = Math.ceil(elapsed / flushEveryMs()) + 1
    console.log(`tracker batches: ${N} announces in ${elapsed.toFixed(0)} ms were ${batches.length} bucket messages`)
    expect(batches.length).toBeGreaterThan(0)
    expect(batches.length).toBeLessThanOrEqual(Math.min(flushes, N / 10))
    const stored = await readBucketPeers(kv)
    expect([...stored.values()].filter((p) => p.infoHash === hash)).toHaveLength(N)
  })

  it('tracker — a per-peer key written by an earlier version is listed by every instance, and its deletion removes the peer', async () => {
    const product = newProduct()
    const peerId = randomBytes(20).toString('hex')
    const now = Date.now()
    const stored = { peerId, ip: '10.1.2.3', port: 7301, infoHash: infoHashHex(product, 2), product, rev: 2, left: 0, completed: true, at: now, expires: now + 60_000, owner: `id:${identityOf(nc)}` }
    await kv.put(productPeerKey(product, peerId), JSON.stringify(stored))
    for (const t of [a, b]) await vi.waitFor(() => expect(t.registry.peersOf(product, 2, 10)).toEqual([expect.objectContaining({ peerId, port: 7301 })]), eventually)
    // A NATS client asking either instance gets it too.
    const answer = await nc.request(trackerSubject('peers', identityOf(nc)), JSON.stringify({ product, rev: 2 }), { timeout: 5_000 })
    expect(answer.json<{ peers: { peerId: string }[] }>().peers.map((p) => p.peerId)).toEqual([peerId])
    await kv.delete(productPeerKey(product, peerId))
    for (const t of [a, b]) await vi.waitFor(() => expect(t.registry.peersOf(product, 2, 10)).toEqual([]), eventually)
  })

  it('tracker — an instance deletes its batch from the bucket once every record in it has ended (a TTL after it was written)', async () => {
    const ttl = 1_500
    const short = await startTracker({ nc, id: `batch-short-${process.pid}`, peerTtlMs: ttl, intervalMs: 500, rateLimit: false })
    try {
      const infoHash = randomBytes(20)
      const peerId = randomBytes(20)
      const key = unmappedPeerKey(infoHash.toString('hex'), peerId.toString('hex'))
      const probe = await UdpProbe.open(short.udpUrl)
      try {
        const res = await probe.request(UdpProbe.announcePacket(await probe.connect(), { infoHash, peerId, port: 7401, event: 'started', numwant: 0 }))
        expect(res.readUInt32BE(0)).toBe(1)
      } finally {
        probe.close()
      }
      // Written as a batch of this instance…
      await vi.waitFor(async () => expect((await readBucketPeers(kv)).get(key)).toMatchObject({ port: 7401 }), eventually)
      expect((await batchesOf(kv, short.registry.instance)).length).toBeGreaterThan(0)
      // …and gone from the bucket once the peer (not announced again) has expired.
      await vi.waitFor(async () => expect(await batchesOf(kv, short.registry.instance)).toEqual([]), eventually)
      expect((await readBucketPeers(kv)).has(key)).toBe(false)
    } finally {
      await short.close()
    }
  })
})
