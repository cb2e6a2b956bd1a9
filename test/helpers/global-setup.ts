// One real 3-node NATS cluster with JetStream and one local DHT for the whole suite.
// Tests read the endpoints with `inject('cluster')` (see test/helpers/cluster.ts).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { Authority } from '../../infra/auth/authority.ts'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { startLocalDht, type LocalDht } from '../../infra/cluster/dht.ts'
import { connectNats } from '../../infra/nats/connect.ts'
import { ensureResources } from '../../infra/nats/resources.ts'

let cluster: NatsCluster | undefined
let dht: LocalDht | undefined
let dir: string | undefined

export async function setup(project: TestProject): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'upswarm-suite-'))
  // Credentials and TLS on, as in production (issue 10): nothing in the suite connects anonymously.
  const authority = await Authority.open(join(dir, 'auth'))
  cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes: 3, authority })
  dht = await startLocalDht()
  const admin = await authority.issue({ kind: 'admin', name: 'admin' })
  const client = await authority.issue({ kind: 'client', name: 'test-client' })
  const nc = await connectNats(cluster.urls, 'upswarm-test-setup', { creds: admin.file, tlsCa: authority.paths.caFile })
  await ensureResources(nc, 3)
  await nc.close()
  // Every `upswarm` command a test spawns runs as a client machine (a user of CLIENTS) unless it passes --creds.
  process.env.UPSWARM_TLS_CA = authority.paths.caFile
  process.env.UPSWARM_CREDS = client.file
  project.provide('cluster', {
    nats: cluster.urls, dhtBootstrap: dht.bootstrap, dir,
    auth: { dir: authority.paths.dir, caFile: authority.paths.caFile, admin: admin.file, client: client.file },
  })
}

export async function teardown(): Promise<void> {
  await dht?.close()
  await cluster?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
}

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: { nats: string[]; dhtBootstrap: string; dir: string; auth: { dir: string; caFile: string; admin: string; client: string } }
  }
}
