// BitTorrent HTTP tracker protocol (BEP 3 announce, BEP 23 compact peers, BEP 7 peers6, BEP 48
// scrape): request parsing and bencoded responses, as pure functions so they can be fuzzed.
// upswarm extension parameters (also carried by UDP announces as BEP 41 URL data):
//   product=<uuid>&rev=<n>   the swarm by name; the tracker checks it against info_hash
//   pk=<64 hex>              the peer's Noise public key
//   site=<label>             the peer's locality (issue 14 item 4): the answer leads with peers of
//                            that site, and an HTTP answer counts them (`site peers`)
import { bencode, type BValue } from './bencode.ts'
import { compactIPv4, compactIPv6 } from './compact.ts'
import { isProductId, isRevision } from './info-hash.ts'
import { SITE_LABEL } from '../swarm/site-label.ts'
import { parseQuery, QueryError, type Query } from './query.ts'
import type { AnnounceEvent, AnnounceInput, AnnounceResult, PeerEntry, SwarmStats } from './types.ts'

export const MAX_URL_LENGTH = 4096
export const MAX_SCRAPE_HASHES = 64
export const DEFAULT_NUMWANT = 50

/** A request the tracker refuses, with the reason sent back as `failure reason`. */
export class TrackerRequestError extends Error {
  override readonly name = 'TrackerRequestError'
}

export interface HttpAnnounce extends AnnounceInput {
  compact: boolean
  noPeerId: boolean
}

const EVENTS: Record<string, AnnounceEvent> = { '': 'update', started: 'started', stopped: 'stopped', completed: 'completed', paused: 'update' }

/** Parses `/announce?…`; `ip` is the request's source address (the `ip` parameter is ignored). */
export function parseAnnounceQuery(rawQuery: string, ip: string): HttpAnnounce {
  const q = parseQueryOrFail(rawQuery)
  const infoHash = bytesParam(q, 'info_hash', 20)
  const peerId = bytesParam(q, 'peer_id', 20)
  const port = intParam(q, 'port', 0, 65_535)
  if (port === undefined || port === 0) throw new TrackerRequestError('port is missing or 0')
  const left = intParam(q, 'left', 0, Number.MAX_SAFE_INTEGER, true) ?? 0
  intParam(q, 'uploaded', 0, Number.MAX_SAFE_INTEGER, true)
  intParam(q, 'downloaded', 0, Number.MAX_SAFE_INTEGER, true)
  const eventName = textParam(q, 'event') ?? ''
  const event = EVENTS[eventName]
  if (!event) throw new TrackerRequestError(`unknown event "${eventName.slice(0, 32)}"`)
  const numwant = intParam(q, 'numwant', 0, Number.MAX_SAFE_INTEGER, true) ?? DEFAULT_NUMWANT
  const compactText = textParam(q, 'compact')
  const input: HttpAnnounce = {
    infoHash: infoHash.toString('hex'),
    peerId: peerId.toString('hex'),
    ip,
    port,
    left,
    event,
    numwant,
    compact: compactText !== '0',
    noPeerId: textParam(q, 'no_peer_id') === '1',
    ...parseExtension(q),
  }
  return input
}

/** The upswarm extension parameters, shared by HTTP queries and UDP URL data. */
export function parseExtension(q: Query): Pick<AnnounceInput, 'product' | 'rev' | 'publicKey' | 'site'> {
  const out: Pick<AnnounceInput, 'product' | 'rev' | 'publicKey' | 'site'> = {}
  const product = textParam(q, 'product')
  const rev = intParam(q, 'rev', 0, Number.MAX_SAFE_INTEGER)
  if ((product === undefined) !== (rev === undefined)) throw new TrackerRequestError('product and rev go together')
  if (product !== undefined && rev !== undefined) {
    if (!isProductId(product)) throw new TrackerRequestError('product is not a UUID')
    if (!isRevision(rev)) throw new TrackerRequestError('rev is not a revision number')
    out.product = product.toLowerCase()
    out.rev = rev
  }
  const pk = textParam(q, 'pk')
  if (pk !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(pk)) throw new TrackerRequestError('pk must be 32 bytes in hex')
    out.publicKey = pk.toLowerCase()
  }
  const site = textParam(q, 'site')
  if (site !== undefined) {
    if (!SITE_LABEL.test(site)) throw new TrackerRequestError('site must be 1 to 64 letters, digits and . _ : / -')
    out.site = site
  }
  return out
}

/** Parses `/scrape?info_hash=…[&info_hash=…]` into hex info hashes. */
export function parseScrapeQuery(rawQuery: string): string[] {
  const q = parseQueryOrFail(rawQuery)
  const hashes = q.get('info_hash') ?? []
  if (hashes.length === 0) throw new TrackerRequestError('scrape needs at least one info_hash')
  if (hashes.length > MAX_SCRAPE_HASHES) throw new TrackerRequestError(`scrape takes at most ${MAX_SCRAPE_HASHES} info_hash`)
  return hashes.map((h) => {
    if (h.byteLength !== 20) throw new TrackerRequestError('info_hash must be 20 bytes')
    return h.toString('hex')
  })
}

export function encodeAnnounceResponse(result: AnnounceResult, compact: boolean, noPeerId: boolean): Buffer {
  const dict: Record<string, BValue> = {
    interval: Math.max(1, Math.ceil(result.intervalMs / 1000)),
    'min interval': Math.max(1, Math.ceil(result.intervalMs / 2000)),
    // upswarm: seconds a peer stays listed without re-announcing
    ttl: Math.max(1, Math.floor(result.ttlMs / 1000)),
    complete: result.seeders,
    incomplete: result.leechers,
  }
  // upswarm: the swarm's peers of the announcer's site (when it told one)
  if (result.sitePeers !== undefined) dict['site peers'] = result.sitePeers
  if (compact) {
    dict.peers = compactIPv4(result.peers)
    const v6 = compactIPv6(result.peers)
    if (v6.byteLength > 0) dict.peers6 = v6
  } else {
    dict.peers = result.peers.map((p) => peerDict(p, noPeerId))
  }
  return bencode(dict)
}

function peerDict(p: PeerEntry, noPeerId: boolean): BValue {
  const d: Record<string, BValue> = { ip: p.ip, port: p.port }
  if (!noPeerId) d['peer id'] = Buffer.from(p.peerId, 'hex')
  // upswarm keys; BitTorrent clients ignore keys they do not know.
  if (p.rev !== undefined) d.rev = p.rev
  if (p.publicKey !== undefined) d['public key'] = p.publicKey
  return d
}

export function encodeScrapeResponse(stats: Map<string, SwarmStats>): Buffer {
  const files = new Map<Uint8Array, BValue>()
  for (const [hash, s] of stats) files.set(Buffer.from(hash, 'hex'), { complete: s.seeders, downloaded: s.completed, incomplete: s.leechers })
  return bencode({ files })
}

export function encodeFailure(reason: string): Buffer {
  return bencode({ 'failure reason': reason })
}

function parseQueryOrFail(raw: string): Query {
  try {
    return parseQuery(raw)
  } catch (err) {
    if (err instanceof QueryError) throw new TrackerRequestError(err.message)
    throw err
  }
}

function bytesParam(q: Query, name: string, length: number): Buffer {
  const v = q.get(name)?.[0]
  if (v === undefined) throw new TrackerRequestError(`${name} is missing`)
  if (v.byteLength !== length) throw new TrackerRequestError(`${name} must be ${length} bytes, got ${v.byteLength}`)
  return v
}

function textParam(q: Query, name: string): string | undefined {
  return q.get(name)?.[0]?.toString('latin1')
}

/** A decimal parameter; above `max` it is refused, or clamped when `clamp` (numwant=99999999999). */
function intParam(q: Query, name: string, min: number, max: number, clamp = false): number | undefined {
  const text = textParam(q, name)
  if (text === undefined) return undefined
  if (!/^[0-9]{1,20}$/.test(text)) throw new TrackerRequestError(`${name} is not a non-negative integer`)
  const n = Number(text)
  if (n < min) throw new TrackerRequestError(`${name} is below ${min}`)
  if (n > max && !clamp) throw new TrackerRequestError(`${name} is above ${max}`)
  return Math.min(n, max)
}
