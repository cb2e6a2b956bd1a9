// The registry's vocabulary, shared by the three doors (NATS, HTTP, UDP) and the client.

export type AnnounceEvent = 'started' | 'stopped' | 'completed' | 'update'

/** One peer as the tracker keeps it (R-PEERLIST). */
export interface PeerEntry {
  /** 20-byte peer id, lowercase hex. */
  peerId: string
  ip: string
  port: number
  /** 20-byte info hash of the swarm, lowercase hex. */
  infoHash: string
  /** Known once some announce named (product, rev) for this info hash. */
  product?: string
  rev?: number
  /** Noise public key (32 bytes, hex), given over NATS or the HTTP/UDP `pk` extension. */
  publicKey?: string
  /** Its locality label, when it told one (issue 14 item 4). */
  site?: string
  /** Bytes the peer still needs; 0 = a seed (a complete working copy). */
  left: number
  /** The peer announced `completed` at some point in this swarm. */
  completed: boolean
  /** Wall-clock ms of the announce that wrote this entry, and of its expiry. */
  at: number
  expires: number
  /** Who announced it (identityOwner / addressOwner): only they may stop or replace it. */
  owner?: string
}

/**
 * Who an announce comes from. Over NATS, the identity its subject names (the cluster's
 * permissions bind it); over HTTP and UDP, the source address, as BitTorrent clients expect.
 */
export const identityOwner = (identity: string): string => `id:${identity}`
export const addressOwner = (ip: string): string => `ip:${ip}`
export const isIdentityOwner = (owner: string): boolean => owner.startsWith('id:')

/** An announce after a door has parsed and validated it. */
export interface AnnounceInput {
  infoHash?: string
  product?: string
  rev?: number
  peerId: string
  ip: string
  port: number
  publicKey?: string
  /** Issue 14 item 4: the announcer's site (NATS: in the request; HTTP and UDP: the `site` extension parameter). */
  site?: string
  left: number
  event: AnnounceEvent
  numwant: number
}

export interface AnnounceResult {
  infoHash: string
  /** Issue 14 item 4: live peers of the announcer's site in the swarm (when it named one). */
  sitePeers?: number
  product?: string
  rev?: number
  peers: PeerEntry[]
  seeders: number
  leechers: number
  intervalMs: number
  ttlMs: number
}

export interface SwarmStats {
  seeders: number
  leechers: number
  completed: number
}

/** Public view of a peer in JSON (NATS and /v1 HTTP API). */
export interface PeerView {
  peerId: string
  ip: string
  port: number
  product?: string
  rev?: number
  publicKey?: string
  site?: string
  left: number
  expires: number
}

export function toPeerView(p: PeerEntry): PeerView {
  const v: PeerView = { peerId: p.peerId, ip: p.ip, port: p.port, left: p.left, expires: p.expires }
  if (p.product !== undefined) v.product = p.product
  if (p.rev !== undefined) v.rev = p.rev
  if (p.publicKey !== undefined) v.publicKey = p.publicKey
  if (p.site !== undefined) v.site = p.site
  return v
}
