// The UDP door (R-TRACKER-PROTO, BEP 15): connect, announce, scrape, error. A refused packet that
// carries a transaction id gets an error packet; anything shorter is dropped. Over-rate sources
// are dropped silently so the tracker never reflects a flood at a spoofed address.
import { createSocket, type RemoteInfo } from 'node:dgram'
import { lookup } from 'node:dns'
import { isIPv4 } from 'node:net'
import { isUpswarmError } from '../errors.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { PeerRegistry } from './registry.ts'
import { MAX_NUMWANT } from './schema.ts'
import { addressOwner, type AnnounceInput } from './types.ts'
import {
  ConnectionIds,
  writeAnnounceHead,
  encodeConnectResponse,
  encodeErrorResponse,
  encodeScrapeResponse,
  parseUdpRequest,
} from './udp-protocol.ts'

/** An IPv4 literal at once; anything else (a host name given to bind) through dns.lookup. */
const literalLookup = (address: string, family: unknown, cb: (err: Error | null, address: string, family: number) => void): void => {
  if (isIPv4(address)) cb(null, address, 4)
  else lookup(address, family as number, cb as (err: Error | null, address: string, family: number) => void)
}

export interface UdpDoorOptions {
  registry: PeerRegistry
  limiter: RateLimiter | undefined
  host: string
  port: number
  /** Shared by instances behind one address so their connection ids agree. */
  secret?: Buffer
}

export interface UdpDoor {
  url: string
  close(): Promise<void>
}

export async function startUdpDoor(opts: UdpDoorOptions): Promise<UdpDoor> {
  // Replies go to the source address of a packet, always an IP literal: the lookup answers at
  // once (the default, dns.lookup, defers every send to the next tick).
  const socket = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024, lookup: literalLookup })
  const ids = new ConnectionIds(opts.secret)
  const reply = (buf: Buffer, to: RemoteInfo): void => socket.send(buf, to.port, to.address)
  // Reused by every announce: the answer is written here, then copied out at its size.
  const scratch = Buffer.allocUnsafe(20 + MAX_NUMWANT * 6)
  const head = { seeders: 0, leechers: 0 }
  const intervalS = Math.max(1, Math.ceil(opts.registry.intervalMs / 1000))
  let lastAddress = ''
  let lastOwner = ''

  socket.on('message', (packet, from) => {
    try {
      const now = Date.now()
      if (opts.limiter && !opts.limiter.take(from.address, now)) return
      answer(packet, from, now)
    } catch {
      // Never let one packet stop the door; the parser and registry already refuse bad input.
    }
  })
  socket.on('error', () => {})

  const answer = (packet: Buffer, from: RemoteInfo, now: number): void => {
    const parsed = parseUdpRequest(packet)
    if (!parsed.ok) {
      if (parsed.transactionId !== undefined) reply(encodeErrorResponse(parsed.transactionId, parsed.error), from)
      return
    }
    const req = parsed.request
    if (req.action === 'connect') return reply(encodeConnectResponse(req.transactionId, ids.issue(from.address, now)), from)
    if (!ids.verify(req.connectionId, from.address, now)) {
      return reply(encodeErrorResponse(req.transactionId, 'unknown or expired connection id: connect again'), from)
    }
    if (req.action === 'scrape') {
      return reply(encodeScrapeResponse(req.transactionId, req.infoHashes.map((h) => opts.registry.scrape(h))), from)
    }
    try {
      const input: AnnounceInput = { infoHash: req.infoHash, peerId: req.peerId, ip: from.address, port: req.port, left: req.left, event: req.event, numwant: req.numwant }
      if (req.product !== undefined) input.product = req.product
      if (req.rev !== undefined) input.rev = req.rev
      if (req.publicKey !== undefined) input.publicKey = req.publicKey
      if (req.site !== undefined) input.site = req.site
      if (from.address !== lastAddress) {
        lastAddress = from.address
        lastOwner = addressOwner(from.address)
      }
      const n = opts.registry.announceCompact(input, lastOwner, scratch, 20, head)
      writeAnnounceHead(scratch, req.transactionId, intervalS, head.leechers, head.seeders)
      const out = Buffer.allocUnsafe(20 + n * 6)
      scratch.copy(out, 0, 0, 20 + n * 6)
      reply(out, from)
    } catch (err) {
      if (!isUpswarmError(err)) throw err
      reply(encodeErrorResponse(req.transactionId, err.message), from)
    }
  }

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(opts.port, opts.host, () => {
      socket.off('error', reject)
      resolve()
    })
  })
  const { port } = socket.address()
  return {
    url: `udp://${opts.host}:${port}`,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }
}
