// The NATS door: a NATS micro service in a queue group, so several tracker instances answer as
// one (`nats micro ls` shows them). Requests and replies are JSON; refusals travel in the
// Nats-Service-Error(-Code) headers (400 bad request, 503 tracker full, 500 bug).
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services'
import type { NatsConnection } from '@nats-io/transport-node'
import { isUpswarmError } from '../errors.ts'
import { TRACKER_QUEUE, TRACKER_SERVICE, trackerSubject } from '../nats/names.ts'
import type { PeerRegistry } from './registry.ts'
import { announceRequestSchema, peersQuerySchema, type AnnounceResponse, type PeersResponse } from './schema.ts'
import { toPeerView } from './types.ts'

export interface NatsDoor {
  service: Service
  close(): Promise<void>
}

export async function startNatsDoor(nc: NatsConnection, registry: PeerRegistry, id: string): Promise<NatsDoor> {
  // @nats-io/services bundles its own copy of nats-core's types; the connection is the same object.
  const service = await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).add({
    name: TRACKER_SERVICE,
    version: '1.0.0',
    description: 'upswarm tracker: announce (product, rev, ip, port, peer id, public key) and list peers',
    queue: TRACKER_QUEUE,
    metadata: { instance: id },
  })

  service.addEndpoint('announce', {
    subject: trackerSubject('announce'),
    handler: (err, msg) => {
      if (err) return
      respond(msg, () => {
        const req = parseJson(msg, announceRequestSchema)
        const result = registry.announce(req)
        const body: AnnounceResponse = {
          infoHash: result.infoHash,
          intervalMs: result.intervalMs,
          ttlMs: result.ttlMs,
          seeders: result.seeders,
          leechers: result.leechers,
          peers: result.peers.map(toPeerView),
        }
        return body
      })
    },
  })

  service.addEndpoint('peers', {
    subject: trackerSubject('peers'),
    handler: (err, msg) => {
      if (err) return
      respond(msg, () => {
        const q = parseJson(msg, peersQuerySchema)
        const peers = registry.peersOf(q.product, q.rev, q.limit).map(toPeerView)
        const body: PeersResponse = q.rev === undefined ? { product: q.product, peers } : { product: q.product, rev: q.rev, peers }
        return body
      })
    },
  })

  return { service, close: async () => void (await service.stop()) }
}

class BadRequest extends Error {}

function parseJson<T>(msg: ServiceMsg, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }): T {
  let value: unknown
  try {
    value = msg.json()
  } catch {
    throw new BadRequest('request is not JSON')
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    throw new BadRequest(parsed.error.issues.map((i) => `${i.path.map(String).join('.') || 'request'}: ${i.message}`).join('; '))
  }
  return parsed.data
}

function respond(msg: ServiceMsg, build: () => unknown): void {
  try {
    msg.respond(JSON.stringify(build()))
  } catch (err) {
    if (err instanceof BadRequest) msg.respondError(400, err.message)
    else if (isUpswarmError(err, 'UPSWARM_E_BAD_REQUEST')) msg.respondError(400, err.message)
    else if (isUpswarmError(err, 'UPSWARM_E_TRACKER')) msg.respondError(503, err.message)
    else msg.respondError(500, `tracker error: ${(err as Error).message}`)
  }
}
