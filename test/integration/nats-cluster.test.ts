import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { natsServerBinary } from '../../infra/cluster/nats-server-bin.ts'
import { freePorts } from '../../infra/cluster/ports.ts'
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

  it('cluster launcher — issue 17: routes are mutual TLS under the deployment CA; a nats-server without its certificate cannot join the cluster', async () => {
    const n1 = cluster.nodes[0]!
    const routez = (): Promise<{ num_routes: number; routes: { remote_name?: string; remote_id: string }[] }> => n1.monitor('routez')
    const varz = await n1.monitor<{ cluster?: { tls_required?: boolean; tls_verify?: boolean } }>('varz')
    expect(varz.cluster).toMatchObject({ tls_required: true, tls_verify: true })
    const before = await routez()
    // A rogue node: the same cluster name, routing to n1, no certificate.
    const [client, route] = await freePorts(2, '127.0.0.1')
    const conf = join(dir.path, 'rogue.conf')
    const log = join(dir.path, 'rogue.log')
    await writeFile(conf, [
      'server_name: rogue', `listen: "127.0.0.1:${client}"`, `log_file: ${JSON.stringify(log)}`,
      'cluster {', '  name: upswarm', `  listen: "127.0.0.1:${route}"`, `  routes: ["nats://127.0.0.1:${n1.clusterPort}"]`, '}', '',
    ].join('\n'))
    const rogue = spawn(natsServerBinary().path, ['-c', conf], { stdio: 'ignore' })
    try {
      // The rogue's attempts fail in the TLS handshake it does not make; n1 never lists it.
      await expect.poll(async () => (await readFile(log, 'utf8').catch(() => '')).match(/route.*(TLS|tls|closed|EOF)|(TLS|tls).*route/i) !== null, { timeout: 30_000, interval: 200 }).toBe(true)
      const after = await routez()
      expect(after.routes.map((r) => r.remote_name)).not.toContain('rogue')
      expect(after.num_routes).toBe(before.num_routes)
    } finally {
      rogue.kill('SIGKILL')
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
