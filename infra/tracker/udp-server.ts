// The UDP door (R-TRACKER-PROTO, BEP 15): connect, announce, scrape, error. A refused packet that
// carries a transaction id gets an error packet; anything shorter is dropped. Over-rate sources
// are dropped silently so the tracker never reflects a flood at a spoofed address.
import { createSocket, type RemoteInfo } from 'node:dgram'
import { isUpswarmError } from '../errors.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { PeerRegistry } from './registry.ts'
import { addressOwner } from './types.ts'
import {
  ConnectionIds,
  encodeAnnounceResponse,
  encodeConnectResponse,
  encodeErrorResponse,
  encodeScrapeResponse,
  parseUdpRequest,
} from './udp-protocol.ts'

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
  const socket = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 })
  const ids = new ConnectionIds(opts.secret)
  const reply = (buf: Buffer, to: RemoteInfo): void => socket.send(buf, to.port, to.address)

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
      const { action: _a, transactionId, connectionId: _c, ...input } = req
      const result = opts.registry.announce({ ...input, ip: from.address }, addressOwner(from.address))
      reply(encodeAnnounceResponse(transactionId, result), from)
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
