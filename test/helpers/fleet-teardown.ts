// The end of a fleet fixture (a cluster of its own, a repository server, the proxy, the tracker,
// and in-process `--auto` daemons with their connections), in the order that leaves nothing behind:
// the daemons first, then the roles they talk to, then the connections, the cluster, the files.
// Each part may be missing (a beforeAll that failed half-way).
import type { Proxy } from '../../actors/proxy/index.ts'
import type { RepoServer } from '../../actors/repo-server/index.ts'
import type { Daemon } from '../../actors/share-daemon/index.ts'
import type { Tracker } from '../../actors/tracker/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'

export interface FleetParts {
  clients: { daemon: Daemon; nc: NatsConnection }[]
  tracker?: Tracker | undefined
  proxy?: Proxy | undefined
  server?: RepoServer | undefined
  publisher?: NatsConnection | undefined
  admin?: NatsConnection | undefined
  cluster?: NatsCluster | undefined
  dir?: { cleanup: () => Promise<void> } | undefined
}

export async function stopFleet(f: FleetParts): Promise<void> {
  for (const c of f.clients) {
    await c.daemon.close().catch(() => {})
    await c.nc.close().catch(() => {})
  }
  await f.tracker?.close()
  await f.proxy?.close()
  await f.server?.close()
  await f.publisher?.close()
  await f.admin?.close()
  await f.cluster?.stop()
  await f.dir?.cleanup()
}
