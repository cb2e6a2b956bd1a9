// The NATS door: a NATS micro service in a queue group, so several tracker instances answer as
// one (`nats micro ls` shows them). JSON in and out; refusals travel in the service error headers.
import type { Service } from '@nats-io/services'
import type { NatsConnection } from '@nats-io/transport-node'
import { TRACKER_QUEUE, TRACKER_SERVICE, trackerSubject } from '../nats/names.ts'
import { endpoint, startService } from '../nats/service.ts'
import type { PeerRegistry } from './registry.ts'
import { announceRequestSchema, peersQuerySchema, type AnnounceResponse, type PeersResponse } from './schema.ts'
import { toPeerView } from './types.ts'

export interface NatsDoor {
  service: Service
  close(): Promise<void>
}

export async function startNatsDoor(nc: NatsConnection, registry: PeerRegistry, id: string): Promise<NatsDoor> {
  const service = await startService(nc, {
    name: TRACKER_SERVICE,
    version: '1.0.0',
    description: 'upswarm tracker: announce (product, rev, ip, port, peer id, public key) and list peers',
    queue: TRACKER_QUEUE,
    metadata: { instance: id },
    endpoints: {
      // R-ANNOUNCE → R-PEERLIST
      announce: endpoint(trackerSubject('announce'), announceRequestSchema, async (req): Promise<AnnounceResponse> => {
        const result = registry.announce(req)
        return {
          infoHash: result.infoHash,
          intervalMs: result.intervalMs,
          ttlMs: result.ttlMs,
          seeders: result.seeders,
          leechers: result.leechers,
          peers: result.peers.map(toPeerView),
        }
      }),
      // R-PEERLIST: one revision, or every revision with each peer's own
      peers: endpoint(trackerSubject('peers'), peersQuerySchema, async (q): Promise<PeersResponse> => {
        const peers = registry.peersOf(q.product, q.rev, q.limit).map(toPeerView)
        return q.rev === undefined ? { product: q.product, peers } : { product: q.product, rev: q.rev, peers }
      }),
    },
  })
  return { service, close: async () => void (await service.stop()) }
}
