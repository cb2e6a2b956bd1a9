import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { withRetry } from '../../infra/nats/retry.ts'
import { startOwnCluster, tempDir } from '../helpers/cluster.ts'

describe('cluster launcher', () => {
  let cluster: NatsCluster
  let connect: (name: string) => Promise<NatsConnection>
  let dir: { path: string; cleanup: () => Promise<void> }

  beforeAll(async () => {
    dir = await tempDir('upswarm-cluster-')
    ;({ cluster, connect } = await startOwnCluster(dir.path))
  })
  afterAll(async () => {
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('cluster launcher — starts 3 nodes that form one JetStream cluster', async () => {
    expect(cluster.nodes).toHaveLength(3)
    expect(cluster.nodes.every((n) => n.running)).toBe(true)
    const nc = await connect('test')
    try {
      const jsm = await jetstreamManager(nc)
      await jsm.streams.add({ name: 'PROBE', subjects: ['probe.>'], num_replicas: 3, storage: StorageType.File })
      const info = await jsm.streams.info('PROBE')
      expect(info.cluster?.name).toBe('upswarm')
      expect(info.cluster?.leader).toMatch(/^n[123]$/)
      expect(info.cluster?.replicas?.map((r) => r.name).sort()).toHaveLength(2)
    } finally {
      await nc.close()
    }
  })

  it('cluster launcher — an R3 stream survives kill -9 of one node', async () => {
    const nc = await connect('test')
    try {
      const jsm = await jetstreamManager(nc)
      await jsm.streams.add({ name: 'SURVIVE', subjects: ['survive.>'], num_replicas: 3, storage: StorageType.File })
      const js = jetstream(nc)
      await js.publish('survive.a', 'before')
      const info = await jsm.streams.info('SURVIVE')
      const leader = cluster.nodes.find((n) => n.name === info.cluster?.leader)!
      await leader.kill('SIGKILL')
      expect(leader.running).toBe(false)
      // The stream elects a new leader; the publish must succeed within the retry budget.
      const ack = await withRetry(() => js.publish('survive.a', 'after', { timeout: 2000, msgID: 'after-1' }), { attempts: 30 })
      expect(ack.seq).toBe(2)
      const first = await jsm.streams.getMessage('SURVIVE', { seq: 1 })
      const second = await jsm.streams.getMessage('SURVIVE', { seq: 2 })
      expect(first?.string()).toBe('before')
      expect(second?.string()).toBe('after')
      await leader.start()
      expect(leader.running).toBe(true)
    } finally {
      await nc.close()
    }
  })
})
