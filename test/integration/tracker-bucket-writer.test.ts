import { Kvm } from '@nats-io/kv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { PEER_BUCKET, PEER_BUCKET_MAX_AGE_MS } from '../../infra/nats/names.ts'
import { openPeerBucket } from '../../infra/nats/resources.ts'
import { BucketWriter } from '../../infra/tracker/bucket-writer.ts'
import { newProduct, testConnection } from '../helpers/cluster.ts'

describe('tracker bucket writer', () => {
  let nc: NatsConnection

  beforeAll(async () => {
    nc = await testConnection('tracker-bucket-writer')
    await openPeerBucket(nc, 3, PEER_BUCKET_MAX_AGE_MS)
  })
  afterAll(async () => {
    await nc?.close()
  })

  it('tracker — pipelined writes are acknowledged; the newest write of a key wins', async () => {
    const w = new BucketWriter(nc, { subjectOf: (k) => `$KV.${PEER_BUCKET}.${k}` })
    const prefix = `test.${newProduct()}`
    for (let i = 0; i < 200; i++) w.put(`${prefix}.k${i}`, `v${i}`)
    w.put(`${prefix}.k0`, 'newest')
    w.delete(`${prefix}.k1`)
    await w.flush(10_000)
    w.close()
    expect([w.inFlight, w.dropped]).toEqual([0, 0])
    const kv = await new Kvm(nc).open(PEER_BUCKET)
    expect((await kv.get(`${prefix}.k0`))?.string()).toBe('newest')
    expect((await kv.get(`${prefix}.k199`))?.string()).toBe('v199')
    expect((await kv.get(`${prefix}.k1`))?.operation).toBe('DEL')
  })

  it('tracker — a write no stream takes is retried, then given up and reported', async () => {
    const dropped: string[] = []
    const w = new BucketWriter(nc, { subjectOf: (k) => `$KV.upswarm-no-such-bucket.${k}`, timeoutMs: 200, maxAttempts: 2, onDropped: (k) => dropped.push(k) })
    w.put('lost', 'x')
    await w.flush(10_000)
    w.close()
    expect(dropped).toEqual(['lost'])
    expect([w.inFlight, w.dropped]).toEqual([0, 1])
  })
})
