// `upswarm fleet` (issue 16 item 3): the clients' newest reports (UPSWARM_FLEET) beside each
// release's rollout (the signed statements on UPSWARM_META), per product: which clients are on
// which revision, each release's state and share, the clients whose last install failed or was
// taken back, and the share of the last updates' bytes that came from peers. Admin reads it.
import { jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { newestRoot } from '../../infra/formats/meta-stream.ts'
import { decidingStatements, type RolloutState } from '../../infra/formats/rollout.ts'
import { readRollouts } from '../../infra/formats/rollout-stream.ts'
import { clientLabel, readFleet, type BadFleetReport, type StoredFleetReport } from '../../infra/nats/fleet.ts'
import { newestRevision } from '../../infra/release/release-log.ts'

export interface FleetRelease {
  rev: number
  /** Clients whose newest report says they are on it. */
  clients: string[]
  /** The statement that decides it, when its product is staged (percent in basis points). */
  rollout?: { state: RolloutState; percent: number; rings: string[]; seq: number; issued: string }
}

export interface ProductFleet {
  product: string
  clients: StoredFleetReport[]
  /** The newest revision on the release stream (0: none), so a release no client has yet can be rolled out (issue 16 item 4). */
  published: number
  /** Every revision a client is on or a statement names, and the newest published, newest first. */
  releases: FleetRelease[]
  /** Clients whose last install failed or went back (issue 16 item 2). */
  failures: Array<{ client: string } & StoredFleetReport['health']>
  /** Of the bytes the clients' last updates received, the share from peers (R-ACCEL-2). */
  peerShare: { bytesFromPeers: number; bytesFromServers: number; share: number | null }
}

export interface FleetView {
  products: ProductFleet[]
  /** Stored reports that do not parse, with where and why. */
  bad: BadFleetReport[]
  /** Why rollout states are missing, if they are (no root of trust on the cluster). */
  note?: string
}

export async function fleetView(nc: NatsConnection, product?: string): Promise<FleetView> {
  const bad: BadFleetReport[] = []
  const reports = await readFleet(nc, product, bad)
  const root = (await newestRoot(nc))?.signed.root
  const byProduct = new Map<string, StoredFleetReport[]>()
  // Every product of the root is listed, reported on or not, so its first release can be rolled out (issue 16 item 4).
  for (const p of product !== undefined ? [product] : Object.keys(root?.products ?? {})) byProduct.set(p, [])
  for (const r of reports) byProduct.set(r.product, [...(byProduct.get(r.product) ?? []), r])
  const products: ProductFleet[] = []
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  for (const [p, clients] of [...byProduct].sort(([a], [b]) => a.localeCompare(b))) {
    const deciding = root?.products[p] ? decidingStatements((await readRollouts(nc, p, root)).statements.map((s) => s.rollout)) : new Map()
    // A newest message that is not a release (junk a publisher appended) hides nothing else: only this hint is lost.
    const published = await newestRevision(jsm, p).catch(() => 0)
    const revs = new Set<number>([...clients.map((c) => c.rev), ...deciding.keys(), ...(published > 0 ? [published] : [])])
    const releases = [...revs].sort((a, b) => b - a).map((rev): FleetRelease => {
      const s = deciding.get(rev)
      return {
        rev, clients: clients.filter((c) => c.rev === rev).map(clientLabel),
        ...(s ? { rollout: { state: s.state, percent: s.percent, rings: s.rings, seq: s.seq, issued: s.issued } } : {}),
      }
    })
    const bytesFromPeers = clients.reduce((n, c) => n + (c.last?.bytesFromPeers ?? 0), 0)
    const bytesFromServers = clients.reduce((n, c) => n + (c.last?.bytesFromServers ?? 0), 0)
    products.push({
      product: p, published, clients, releases,
      failures: clients.filter((c) => c.health.state === 'reverted' || c.health.state === 'failed').map((c) => ({ client: clientLabel(c), ...c.health })),
      peerShare: { bytesFromPeers, bytesFromServers, share: bytesFromPeers + bytesFromServers > 0 ? bytesFromPeers / (bytesFromPeers + bytesFromServers) : null },
    })
  }
  return { products, bad, ...(root ? {} : { note: 'no root of trust on the cluster: rollout states are not shown' }) }
}
