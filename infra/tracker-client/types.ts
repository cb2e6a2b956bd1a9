// What the sharing daemon's tracker client exchanges with any of the tracker's doors.

export type DoorName = 'nats' | 'http' | 'udp'

/** A peer as a door reports it; the UDP door knows only the address and the swarm's revision. */
export interface TrackerPeer {
  ip: string
  port: number
  peerId?: string
  rev?: number
  publicKey?: string
}

export interface AnnounceParams {
  product: string
  rev: number
  /** 20 bytes, hex. */
  peerId: string
  port: number
  /** Noise public key, 32 bytes hex. */
  publicKey?: string
  /** Issue 14 item 4: our site (every door tells it: NATS in the request, HTTP and UDP as the `site` extension parameter). */
  site?: string
  event: 'started' | 'update' | 'completed' | 'stopped'
  numwant?: number
}

export interface DoorResult {
  peers: TrackerPeer[]
  intervalMs?: number
  /** Issue 14 item 4: peers of our site in the swarm, as the tracker counts them (NATS and HTTP doors, with a site; a UDP answer has no room for it). */
  sitePeers?: number
  /** Issue 14 item 3: peers in the swarm announced to, the announcer included (seeders + leechers), as the tracker counts them. */
  swarmPeers?: number
}

export interface TrackerDoor {
  readonly name: DoorName
  announce(params: AnnounceParams, signal: AbortSignal): Promise<DoorResult>
  close(): void
}
