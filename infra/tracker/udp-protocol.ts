// BitTorrent UDP tracker protocol (BEP 15) with BEP 41 URL data, as pure functions so they can
// be fuzzed. Connection ids are stateless: an HMAC of the source address and the minute, valid
// for the current and the two previous minutes (the BEP: clients use one for a minute, trackers
// accept it for two), so a flood of connects allocates nothing.
import { createHmac, randomBytes } from 'node:crypto'
import { parseExtension, TrackerRequestError, DEFAULT_NUMWANT } from './http-protocol.ts'
import { parseQuery, QueryError } from './query.ts'
import type { AnnounceEvent, AnnounceInput, SwarmStats } from './types.ts'

export const PROTOCOL_ID = 0x41727101980n
export const ACTION_CONNECT = 0
export const ACTION_ANNOUNCE = 1
export const ACTION_SCRAPE = 2
export const ACTION_ERROR = 3
/** Longest packet read: a scrape of 74 hashes, or an announce with BEP 41 options. */
export const MAX_PACKET = 1500
const MAX_URL_DATA = 1024
const ANNOUNCE_SIZE = 98
const EVENTS: (AnnounceEvent | undefined)[] = ['update', 'completed', 'started', 'stopped']

export type UdpRequest =
  | { action: 'connect'; transactionId: number }
  | ({ action: 'announce'; transactionId: number; connectionId: Buffer } & Omit<AnnounceInput, 'ip'>)
  | { action: 'scrape'; transactionId: number; connectionId: Buffer; infoHashes: string[] }

/** A refused packet: answered with an error when it carries a transaction id, else dropped. */
export type UdpParseResult = { ok: true; request: UdpRequest } | { ok: false; transactionId?: number; error: string }

export function parseUdpRequest(packet: Buffer): UdpParseResult {
  if (packet.byteLength < 16) return { ok: false, error: 'packet shorter than 16 bytes' }
  if (packet.byteLength > MAX_PACKET) return { ok: false, error: `packet longer than ${MAX_PACKET} bytes` }
  const action = packet.readUInt32BE(8)
  const transactionId = packet.readUInt32BE(12)
  const refuse = (error: string): UdpParseResult => ({ ok: false, transactionId, error })
  if (action === ACTION_CONNECT) {
    if (packet.readBigUInt64BE(0) !== PROTOCOL_ID) return refuse('connect without the protocol id 0x41727101980')
    return { ok: true, request: { action: 'connect', transactionId } }
  }
  const connectionId = packet.subarray(0, 8)
  if (action === ACTION_ANNOUNCE) {
    if (packet.byteLength < ANNOUNCE_SIZE) return refuse(`announce shorter than ${ANNOUNCE_SIZE} bytes`)
    const event = EVENTS[packet.readUInt32BE(80)]
    if (!event) return refuse('unknown event')
    const port = packet.readUInt16BE(96)
    if (port === 0) return refuse('port is 0')
    const numwant = packet.readInt32BE(92)
    const left = packet.readBigUInt64BE(64)
    let extension: Pick<AnnounceInput, 'product' | 'rev' | 'publicKey' | 'site'>
    try {
      const urlData = readUrlData(packet.subarray(ANNOUNCE_SIZE))
      const qmark = urlData.indexOf('?')
      extension = qmark < 0 ? {} : parseExtension(parseQuery(urlData.slice(qmark + 1)))
    } catch (err) {
      if (err instanceof TrackerRequestError || err instanceof QueryError) return refuse(err.message)
      throw err
    }
    return {
      ok: true,
      request: {
        action: 'announce',
        transactionId,
        connectionId,
        infoHash: packet.toString('hex', 16, 36),
        peerId: packet.toString('hex', 36, 56),
        left: left > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(left),
        event,
        numwant: numwant < 0 ? DEFAULT_NUMWANT : numwant,
        port,
        ...extension,
      },
    }
  }
  if (action === ACTION_SCRAPE) {
    const body = packet.byteLength - 16
    if (body === 0 || body % 20 !== 0) return refuse('scrape must carry 1 or more 20-byte info hashes')
    const infoHashes: string[] = []
    for (let off = 16; off < packet.byteLength; off += 20) infoHashes.push(packet.toString('hex', off, off + 20))
    return { ok: true, request: { action: 'scrape', transactionId, connectionId, infoHashes } }
  }
  return refuse(`unknown action ${action}`)
}

/** BEP 41: options after the announce; URL data options concatenate. */
function readUrlData(options: Buffer): string {
  let url = ''
  let i = 0
  while (i < options.byteLength) {
    const type = options[i]!
    if (type === 0) break // end of options
    if (type === 1) {
      i++ // no-op
      continue
    }
    const len = options[i + 1]
    if (len === undefined || i + 2 + len > options.byteLength) throw new TrackerRequestError('truncated BEP 41 option')
    if (type === 2) {
      url += options.toString('latin1', i + 2, i + 2 + len)
      if (url.length > MAX_URL_DATA) throw new TrackerRequestError('BEP 41 URL data too long')
    }
    i += 2 + len
  }
  return url
}

export function encodeConnectResponse(transactionId: number, connectionId: Buffer): Buffer {
  const out = Buffer.allocUnsafe(16)
  out.writeUInt32BE(ACTION_CONNECT, 0)
  out.writeUInt32BE(transactionId, 4)
  connectionId.copy(out, 8)
  return out
}

/** The 20-byte head of an announce response; IPv4 peers only (the socket is udp4), compact, follow it. */
export function writeAnnounceHead(out: Buffer, transactionId: number, intervalS: number, leechers: number, seeders: number): void {
  out.writeUInt32BE(ACTION_ANNOUNCE, 0)
  out.writeUInt32BE(transactionId, 4)
  out.writeUInt32BE(intervalS, 8)
  out.writeUInt32BE(leechers, 12)
  out.writeUInt32BE(seeders, 16)
}

export function encodeScrapeResponse(transactionId: number, stats: SwarmStats[]): Buffer {
  const out = Buffer.allocUnsafe(8 + stats.length * 12)
  out.writeUInt32BE(ACTION_SCRAPE, 0)
  out.writeUInt32BE(transactionId, 4)
  stats.forEach((s, i) => {
    out.writeUInt32BE(s.seeders, 8 + i * 12)
    out.writeUInt32BE(s.completed, 12 + i * 12)
    out.writeUInt32BE(s.leechers, 16 + i * 12)
  })
  return out
}

export function encodeErrorResponse(transactionId: number, message: string): Buffer {
  const text = Buffer.from(message.slice(0, 200), 'utf8')
  const out = Buffer.allocUnsafe(8 + text.byteLength)
  out.writeUInt32BE(ACTION_ERROR, 0)
  out.writeUInt32BE(transactionId, 4)
  text.copy(out, 8)
  return out
}

const MINUTE_MS = 60_000

/** Most source addresses whose ids are remembered; beyond it the table starts again. */
const MAX_REMEMBERED_IDS = 65_536

/**
 * Issues and checks connection ids bound to the source address. The HMAC of an (address,
 * minute) is computed once and remembered (a bounded table), so a steady stream of announces
 * costs a map lookup and an 8-byte compare each, not up to three HMACs.
 */
export class ConnectionIds {
  readonly #secret: Buffer
  /** address → [minute, its id] of the newest minutes computed, newest first (at most 3). */
  readonly #known = new Map<string, { minutes: number[]; ids: Buffer[] }>()

  constructor(secret: Buffer = randomBytes(32)) {
    this.#secret = secret
  }

  issue(address: string, now: number): Buffer {
    return this.#idOf(address, Math.floor(now / MINUTE_MS))
  }

  verify(id: Buffer, address: string, now: number): boolean {
    if (id.byteLength !== 8) return false
    const minute = Math.floor(now / MINUTE_MS)
    for (let age = 0; age <= 2; age++) if (this.#idOf(address, minute - age).equals(id)) return true
    return false
  }

  #idOf(address: string, minute: number): Buffer {
    let k = this.#known.get(address)
    if (k) {
      const i = k.minutes.indexOf(minute)
      if (i >= 0) return k.ids[i]!
    } else {
      if (this.#known.size >= MAX_REMEMBERED_IDS) this.#known.clear()
      k = { minutes: [], ids: [] }
      this.#known.set(address, k)
    }
    const id = createHmac('sha256', this.#secret).update(`${address}|${minute}`).digest().subarray(0, 8)
    k.minutes.push(minute)
    k.ids.push(id)
    if (k.minutes.length > 3) {
      // Keep the three newest minutes.
      const oldest = k.minutes.indexOf(Math.min(...k.minutes))
      k.minutes.splice(oldest, 1)
      k.ids.splice(oldest, 1)
    }
    return id
  }
}
