// Announces through the tracker's NATS service. The tracker cannot see our address over NATS,
// so we send the one the NATS server saw (INFO client_ip) unless told otherwise.
import { ServiceError } from '@nats-io/services'
import type { Msg, NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'
import { trackerSubject } from '../nats/names.ts'
import { announceResponseSchema, peersResponseSchema, type AnnounceRequest, type PeersQuery } from '../tracker/schema.ts'
import type { DoorResult, TrackerDoor, TrackerPeer } from './types.ts'

export function natsDoor(nc: NatsConnection, opts: { timeoutMs: number; ip?: string }): TrackerDoor {
  return {
    name: 'nats',
    async announce(params, signal) {
      const ip = opts.ip ?? nc.info?.client_ip
      if (!ip) throw new UpswarmError('UPSWARM_E_TRACKER', 'tracker over NATS: the NATS server did not tell our address (client_ip); pass ip explicitly')
      const req: AnnounceRequest = { ...params, ip, numwant: params.numwant ?? 50 }
      const body = await natsRequest(nc, trackerSubject('announce'), req, opts.timeoutMs, signal)
      const res = checked(announceResponseSchema, body, 'announce')
      return { peers: res.peers, intervalMs: res.intervalMs } satisfies DoorResult
    },
    close() {},
  }
}

/** R-PEERLIST: peers of (product, rev), or of every revision of the product, over NATS. */
export async function queryPeersNats(nc: NatsConnection, query: PeersQuery, timeoutMs: number): Promise<TrackerPeer[]> {
  const body = await natsRequest(nc, trackerSubject('peers'), query, timeoutMs)
  return checked(peersResponseSchema, body, 'peers').peers
}

function checked<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Error } }, body: unknown, what: string): T {
  const parsed = schema.safeParse(body)
  if (!parsed.success) throw new UpswarmError('UPSWARM_E_TRACKER', `tracker over NATS answered ${what} with an unexpected shape: ${parsed.error.message}`)
  return parsed.data
}

async function natsRequest(nc: NatsConnection, subject: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  signal?.throwIfAborted()
  let msg: Msg
  try {
    msg = await nc.request(subject, JSON.stringify(body), { timeout: timeoutMs })
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_TRACKER', `tracker over NATS (${subject}) did not answer: ${(err as Error).message}`, { cause: err })
  }
  const serviceError = ServiceError.toServiceError(msg as Parameters<typeof ServiceError.toServiceError>[0])
  if (serviceError) {
    const code = serviceError.code === 400 ? 'UPSWARM_E_BAD_REQUEST' : 'UPSWARM_E_TRACKER'
    throw new UpswarmError(code, `tracker over NATS refused ${subject}: ${serviceError.message} (${serviceError.code})`, { details: { status: serviceError.code } })
  }
  try {
    return msg.json()
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_TRACKER', `tracker over NATS answered ${subject} with bad JSON`, { cause: err })
  }
}
