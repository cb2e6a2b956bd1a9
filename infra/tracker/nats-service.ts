// The NATS door: a NATS micro service in a queue group, so several tracker instances answer as
// one (`nats micro ls` shows them). JSON in and out; refusals travel in the service error headers.
// The requester's identity is the subject's last token, which the cluster's permissions bind to
// its credentials: the door limits each identity's rate, and the registry its entries.
import type { Service, ServiceMsg } from '@nats-io/services'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'
import { IDENTITY_RE } from '../nats/identity.ts'
import { TRACKER_QUEUE, TRACKER_SERVICE, trackerSubject } from '../nats/names.ts'
import { endpoint, startService } from '../nats/service.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { PeerRegistry } from './registry.ts'
import { announceRequestSchema, peersQuerySchema, type AnnounceResponse, type PeersResponse } from './schema.ts'
import { identityOwner, toPeerView } from './types.ts'

export interface NatsDoor {
  service: Service
  close(): Promise<void>
}

export interface NatsDoorOptions {
  id: string
  /** Per identity; undefined: no limit. */
  limiter: RateLimiter | undefined
}

export async function startNatsDoor(nc: NatsConnection, registry: PeerRegistry, opts: NatsDoorOptions): Promise<NatsDoor> {
  /** The identity a request speaks for, once it is within its rate. */
  const identity = (msg: ServiceMsg): string => {
    const name = msg.subject.slice(msg.subject.lastIndexOf('.') + 1)
    if (!IDENTITY_RE.test(name)) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `${msg.subject}: the last token must be the requester's identity`)
    if (opts.limiter && !opts.limiter.take(name, Date.now())) {
      throw new UpswarmError('UPSWARM_E_TRACKER', `rate limited: identity ${name} sends more than the tracker takes from one identity; slow down`, { details: { status: 429 } })
    }
    return name
  }
  const service = await startService(nc, {
    name: TRACKER_SERVICE,
    version: '1.0.0',
    description: 'upswarm tracker: announce (product, rev, ip, port, peer id, public key) and list peers',
    queue: TRACKER_QUEUE,
    metadata: { instance: opts.id },
    endpoints: {
      // R-ANNOUNCE → R-PEERLIST
      announce: endpoint(trackerSubject('announce', '*'), announceRequestSchema, async (req, msg): Promise<AnnounceResponse> => {
        const result = registry.announce(req, identityOwner(identity(msg)))
        return {
          infoHash: result.infoHash,
          intervalMs: result.intervalMs,
          ttlMs: result.ttlMs,
          seeders: result.seeders,
          leechers: result.leechers,
          ...(result.sitePeers !== undefined ? { sitePeers: result.sitePeers } : {}),
          peers: result.peers.map(toPeerView),
        }
      }),
      // R-PEERLIST: one revision, or every revision with each peer's own
      peers: endpoint(trackerSubject('peers', '*'), peersQuerySchema, async (q, msg): Promise<PeersResponse> => {
        identity(msg)
        const peers = registry.peersOf(q.product, q.rev, q.limit).map(toPeerView)
        return q.rev === undefined ? { product: q.product, peers } : { product: q.product, rev: q.rev, peers }
      }),
    },
  })
  return { service, close: async () => void (await service.stop()) }
}
