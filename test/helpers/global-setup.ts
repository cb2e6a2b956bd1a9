// One real 3-node NATS cluster with JetStream and one local DHT for the whole suite.
// Tests read the endpoints with `inject('cluster')` (see test/helpers/cluster.ts).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { startLocalDht, type LocalDht } from '../../infra/cluster/dht.ts'
import { connectNats } from '../../infra/nats/connect.ts'
import { ensureResources } from '../../infra/nats/resources.ts'

let cluster: NatsCluster | undefined
let dht: LocalDht | undefined
let dir: string | undefined

export async function setup(project: TestProject): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'upswarm-suite-'))
  cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes: 3 })
  dht = await startLocalDht()
  const nc = await connectNats(cluster.urls, 'upswarm-test-setup')
  await ensureResources(nc, 3)
  await nc.close()
  project.provide('cluster', { nats: cluster.urls, dhtBootstrap: dht.bootstrap, dir })
}

export async function teardown(): Promise<void> {
  await dht?.close()
  await cluster?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
}

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: { nats: string[]; dhtBootstrap: string; dir: string }
  }
}
