// Connection info of the suite's shared cluster, and small helpers for tests that use it.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { inject } from 'vitest'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'

export function clusterInfo(): { nats: string[]; dhtBootstrap: string; dir: string } {
  return inject('cluster')
}

export function natsUrls(): string[] {
  return clusterInfo().nats
}

export async function testConnection(name = 'upswarm-test'): Promise<NatsConnection> {
  return connectNats(natsUrls(), name)
}

/** A fresh product UUID so tests sharing the cluster never see each other's releases. */
export function newProduct(): string {
  return randomUUID()
}

export async function tempDir(prefix = 'upswarm-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) }
}
