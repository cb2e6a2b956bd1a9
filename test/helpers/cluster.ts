// Connection info of the suite's shared cluster, and small helpers for tests that use it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { jetstreamManager } from '@nats-io/jetstream'
import { afterAll, beforeAll, inject } from 'vitest'
import { Authority } from '../../infra/auth/authority.ts'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { ensureResources } from '../../infra/nats/resources.ts'
import type { Identity } from '../../infra/nats/identity.ts'

export function clusterInfo(): ReturnType<typeof inject<'cluster'>> {
  return inject('cluster')
}

export function natsUrls(): string[] {
  return clusterInfo().nats
}

/** A connection with the suite's admin identity (the operator's view: may do anything). */
export async function testConnection(name = 'upswarm-test'): Promise<NatsConnection> {
  const { auth } = clusterInfo()
  return connectNats(natsUrls(), name, { creds: auth.admin, tlsCa: auth.caFile })
}

/** Mints an identity of the suite's cluster and returns its creds file. */
export async function issueCreds(identity: Identity): Promise<string> {
  const authority = await Authority.load(clusterInfo().auth.dir)
  return (await authority.issue(identity)).file
}

/** A connection as one role or client identity (a fresh user of that name). */
export async function roleConnection(identity: Identity, name = `upswarm-test-${identity.kind}`): Promise<NatsConnection> {
  return connectNats(natsUrls(), name, { creds: await issueCreds(identity), tlsCa: clusterInfo().auth.caFile })
}

/** A fresh product UUID so tests sharing the cluster never see each other's releases. */
export function newProduct(): string {
  return randomUUID()
}

export async function tempDir(prefix = 'upswarm-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) }
}

/**
 * A cluster of a test's own, set up as `up` does: TLS, identities and the resources of record
 * made by the admin. `connect` opens a connection as any identity (default: admin).
 */
export async function startOwnCluster(dir: string, nodes = 3): Promise<{ cluster: NatsCluster; authority: Authority; connect(name: string, identity?: Identity): Promise<NatsConnection> }> {
  const authority = await Authority.open(join(dir, 'auth'))
  const cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes, authority })
  const connect = async (name: string, identity: Identity = { kind: 'admin', name: 'admin' }): Promise<NatsConnection> =>
    connectNats(cluster.urls, name, { creds: (await authority.issue(identity)).file, tlsCa: authority.paths.caFile })
  const admin = await connect('upswarm-test-setup')
  await ensureResources(admin, nodes)
  await admin.close()
  return { cluster, authority, connect }
}

/**
 * The suite's admin connection and a temporary directory for the tests of one file: opened
 * before them, closed and removed after. Read `nc` and `dir` inside tests and hooks.
 */
export function connectionAndDir(prefix?: string): { readonly nc: NatsConnection; readonly dir: string } {
  let nc: NatsConnection | undefined
  let dir: { path: string; cleanup: () => Promise<void> } | undefined
  beforeAll(async () => {
    nc = await testConnection()
    dir = await tempDir(prefix)
  })
  afterAll(async () => {
    await nc?.close()
    await dir?.cleanup()
  })
  return { get nc() { return nc! }, get dir() { return dir!.path } }
}

/**
 * Resolves once every follower of `stream` is current with its leader. Direct gets are answered by
 * any replica, so a test that reads through a client right after an append waits for this first:
 * a follower that has not applied the append yet answers with the older state (which readers
 * tolerate, and a test must not mistake for the behaviour it checks).
 */
export async function replicasCaughtUp(stream: string, timeoutMs = 10_000): Promise<void> {
  const nc = await testConnection('upswarm-test-replicas')
  try {
    const jsm = await jetstreamManager(nc)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const replicas = (await jsm.streams.info(stream)).cluster?.replicas ?? []
      if (replicas.every((r) => r.current && !r.lag)) return
      if (Date.now() > deadline) throw new Error(`${stream}: followers not current after ${timeoutMs} ms: ${JSON.stringify(replicas)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  } finally {
    await nc.close()
  }
}
