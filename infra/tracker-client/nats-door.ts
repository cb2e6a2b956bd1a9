// Announces through the tracker's NATS service, on the subject of our own identity (the only one
// the cluster lets us publish on). The tracker cannot see our address over NATS, so we send the
// one the NATS server saw (INFO client_ip) unless told otherwise.
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'
import { identityOf } from '../nats/identity.ts'
import { trackerSubject } from '../nats/names.ts'
import { requestJson } from '../nats/request.ts'
import { announceResponseSchema, peersResponseSchema, type AnnounceRequest, type PeersQuery } from '../tracker/schema.ts'
import type { TrackerDoor, TrackerPeer } from './types.ts'

export function natsDoor(nc: NatsConnection, opts: { timeoutMs: number; ip?: string }): TrackerDoor {
  return {
    name: 'nats',
    async announce(params, signal) {
      signal.throwIfAborted()
      const ip = opts.ip ?? nc.info?.client_ip
      if (!ip) throw new UpswarmError('UPSWARM_E_TRACKER', 'tracker over NATS: the NATS server did not tell our address (client_ip); pass ip explicitly')
      const req: AnnounceRequest = { ...params, ip, numwant: params.numwant ?? 50 }
      const res = checked(announceResponseSchema, await requestJson(nc, trackerSubject('announce', identityOf(nc)), req, opts.timeoutMs), 'announce')
      return { peers: res.peers, intervalMs: res.intervalMs, swarmPeers: res.seeders + res.leechers, ...(res.sitePeers !== undefined ? { sitePeers: res.sitePeers } : {}) }
    },
    close() {},
  }
}

/** R-PEERLIST: peers of (product, rev), or of every revision of the product, over NATS. */
export async function queryPeersNats(nc: NatsConnection, query: PeersQuery, timeoutMs: number): Promise<TrackerPeer[]> {
  return checked(peersResponseSchema, await requestJson(nc, trackerSubject('peers', identityOf(nc)), query, timeoutMs), 'peers').peers
}

function checked<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Error } }, body: unknown, what: string): T {
  const parsed = schema.safeParse(body)
  if (!parsed.success) throw new UpswarmError('UPSWARM_E_TRACKER', `tracker over NATS answered ${what} with an unexpected shape: ${parsed.error.message}`)
  return parsed.data
}
