// Client side of the tracker, used by the sharing daemon: one adapter per door and a one-shot
// peer query. The announce session (interval, failover, status) is the tracker-session
// statechart, wired in actors/share-daemon/tracker-client.ts.
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'
import type { HttpDoorOptions } from './http-door.ts'
import { natsDoor, queryPeersNats } from './nats-door.ts'
import type { DoorName, TrackerDoor, TrackerPeer } from './types.ts'
import { udpDoor } from './udp-door.ts'

export type { AnnounceParams, DoorName, DoorResult, TrackerDoor, TrackerPeer } from './types.ts'
export { natsDoor, udpDoor }

/**
 * The HTTP door's code (its bencode and JSON schemas) loads at its first announce or query (issue
 * 13 item 5): a daemon whose NATS door answers never loads it.
 */
const httpModule = (): Promise<typeof import('./http-door.ts')> => import('./http-door.ts')

function lazyDoor(name: DoorName, load: () => Promise<TrackerDoor>): TrackerDoor {
  let door: Promise<TrackerDoor> | undefined
  return {
    name,
    async announce(params, signal) {
      return (await (door ??= load())).announce(params, signal)
    },
    close() {
      void door?.then((d) => d.close(), () => {})
    },
  }
}

export interface TrackerEndpoints {
  nc?: NatsConnection
  httpUrl?: string
  udpUrl?: string
  /** CA for an https:// tracker with a private certificate. */
  ca?: string | Buffer
  /** Per-door request timeout. */
  timeoutMs?: number
}

/** The configured doors in failover order: NATS, then HTTP, then UDP. */
export function trackerDoors(endpoints: TrackerEndpoints): TrackerDoor[] {
  const timeoutMs = endpoints.timeoutMs ?? 2_000
  const doors: TrackerDoor[] = []
  if (endpoints.nc) doors.push(natsDoor(endpoints.nc, { timeoutMs }))
  if (endpoints.httpUrl) {
    const url = endpoints.httpUrl
    const opts: HttpDoorOptions = { timeoutMs, ...(endpoints.ca ? { ca: endpoints.ca } : {}) }
    doors.push(lazyDoor('http', async () => (await httpModule()).httpDoor(url, opts)))
  }
  if (endpoints.udpUrl) doors.push(udpDoor(endpoints.udpUrl, { timeoutMs }))
  if (doors.length === 0) throw new UpswarmError('UPSWARM_E_CONFIG', 'tracker client: no door configured; give a NATS connection, an HTTP URL or a UDP URL')
  return doors
}

/**
 * R-PEERLIST, one shot: the peers of (product, rev), or of every revision of the product, each
 * with its revision. Asks NATS first, then the HTTP JSON API (UDP cannot list without announcing).
 */
export async function queryPeers(endpoints: TrackerEndpoints, product: string, rev?: number): Promise<TrackerPeer[]> {
  const timeoutMs = endpoints.timeoutMs ?? 2_000
  const errors: string[] = []
  if (endpoints.nc) {
    try {
      return await queryPeersNats(endpoints.nc, rev === undefined ? { product } : { product, rev }, timeoutMs)
    } catch (err) {
      if (err instanceof UpswarmError && err.code === 'UPSWARM_E_BAD_REQUEST') throw err
      errors.push((err as Error).message)
    }
  }
  if (endpoints.httpUrl) {
    try {
      return await (await httpModule()).queryPeersHttp(endpoints.httpUrl, product, rev, { timeoutMs, ...(endpoints.ca ? { ca: endpoints.ca } : {}) })
    } catch (err) {
      errors.push((err as Error).message)
    }
  }
  throw new UpswarmError('UPSWARM_E_TRACKER', `tracker unavailable: no door answered the peer query (${errors.join('; ') || 'no NATS connection or HTTP URL given'}); look peers up on the DHT instead`)
}
