// Announces through the tracker's UDP door (BEP 15). The upswarm extension (product, rev, public
// key) rides in BEP 41 URL data, so the tracker can name the swarm even if it never saw the
// info hash over NATS. Lost packets are sent again a few times within the timeout.
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:dgram'
import { builtin } from '../lazy-builtin.ts'
import { UpswarmError } from '../errors.ts'
import { infoHash } from '../tracker/info-hash.ts'
import { ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, PROTOCOL_ID } from '../tracker/udp-protocol.ts'
import type { AnnounceParams, DoorResult, TrackerDoor } from './types.ts'

const EVENT_CODES = { update: 0, completed: 1, started: 2, stopped: 3 } as const
/** Clients may use a connection id for one minute (BEP 15); renew a little before. */
const CONNECTION_ID_LIFETIME_MS = 50_000
const SENDS_PER_REQUEST = 3

export function udpDoor(url: string, opts: { timeoutMs: number }): TrackerDoor {
  const target = parseUdpUrl(url)
  let socket: Socket | undefined
  const waiting = new Map<number, (packet: Buffer) => void>()
  let connection: { id: Buffer; until: number } | undefined

  const open = (): Socket => {
    if (socket) return socket
    const s = builtin('node:dgram').createSocket('udp4')
    s.on('message', (packet) => {
      if (packet.byteLength < 8) return
      waiting.get(packet.readUInt32BE(4))?.(packet)
    })
    s.on('error', () => {})
    s.unref()
    socket = s
    return s
  }

  /** Sends `body` (transaction id at offset 12) until an answer with that id arrives. */
  const exchange = (body: Buffer, signal: AbortSignal): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const tx = randomBytes(4).readUInt32BE(0)
      body.writeUInt32BE(tx, 12)
      const s = open()
      const send = (): void => s.send(body, target.port, target.host)
      const resend = setInterval(send, Math.max(1, Math.floor(opts.timeoutMs / SENDS_PER_REQUEST)))
      const timeout = setTimeout(() => done(new UpswarmError('UPSWARM_E_TRACKER', `tracker at ${url} did not answer within ${opts.timeoutMs} ms`)), opts.timeoutMs)
      const onAbort = (): void => done(new UpswarmError('UPSWARM_E_TRACKER', `announce to ${url} aborted`, { cause: signal.reason }))
      const done = (err: Error | null, packet?: Buffer): void => {
        clearInterval(resend)
        clearTimeout(timeout)
        signal.removeEventListener('abort', onAbort)
        waiting.delete(tx)
        if (err) reject(err)
        else resolve(packet!)
      }
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort)
      waiting.set(tx, (packet) => {
        if (packet.readUInt32BE(0) === ACTION_ERROR) {
          done(new UpswarmError('UPSWARM_E_TRACKER', `tracker at ${url} refused: ${packet.toString('utf8', 8)}`))
        } else {
          done(null, packet)
        }
      })
      send()
    })

  const connectionId = async (signal: AbortSignal): Promise<Buffer> => {
    if (connection && connection.until > Date.now()) return connection.id
    const req = Buffer.alloc(16)
    req.writeBigUInt64BE(PROTOCOL_ID, 0)
    req.writeUInt32BE(ACTION_CONNECT, 8)
    const res = await exchange(req, signal)
    if (res.byteLength < 16 || res.readUInt32BE(0) !== ACTION_CONNECT) throw new UpswarmError('UPSWARM_E_TRACKER', `tracker at ${url} sent a bad connect response`)
    connection = { id: Buffer.from(res.subarray(8, 16)), until: Date.now() + CONNECTION_ID_LIFETIME_MS }
    return connection.id
  }

  return {
    name: 'udp',
    async announce(params, signal) {
      const id = await connectionId(signal)
      try {
        return parseAnnounce(await exchange(announcePacket(id, params), signal), params.rev, url)
      } catch (err) {
        connection = undefined // perhaps the id expired at the tracker: connect afresh next time
        throw err
      }
    },
    close() {
      socket?.close()
      socket = undefined
    },
  }
}

function announcePacket(connectionId: Buffer, p: AnnounceParams): Buffer {
  const head = Buffer.alloc(98)
  connectionId.copy(head, 0)
  head.writeUInt32BE(ACTION_ANNOUNCE, 8)
  infoHash(p.product, p.rev).copy(head, 16)
  Buffer.from(p.peerId, 'hex').copy(head, 36)
  // downloaded, left, uploaded stay 0: a sharing daemon announces a complete working copy.
  head.writeUInt32BE(EVENT_CODES[p.event], 80)
  head.writeUInt32BE(randomBytes(4).readUInt32BE(0), 88) // key
  head.writeInt32BE(p.numwant ?? 50, 92)
  head.writeUInt16BE(p.port, 96)
  let url = `/announce?product=${p.product}&rev=${p.rev}`
  if (p.publicKey) url += `&pk=${p.publicKey}`
  if (p.site) url += `&site=${encodeURIComponent(p.site)}`
  const options: Buffer[] = []
  for (let i = 0; i < url.length; i += 255) {
    const chunk = Buffer.from(url.slice(i, i + 255), 'latin1')
    options.push(Buffer.from([2, chunk.byteLength]), chunk)
  }
  options.push(Buffer.from([0]))
  return Buffer.concat([head, ...options])
}

function parseAnnounce(packet: Buffer, rev: number, url: string): DoorResult {
  if (packet.byteLength < 20 || packet.readUInt32BE(0) !== ACTION_ANNOUNCE) throw new UpswarmError('UPSWARM_E_TRACKER', `tracker at ${url} sent a bad announce response`)
  const peers = []
  for (let off = 20; off + 6 <= packet.byteLength; off += 6) {
    peers.push({ ip: `${packet[off]}.${packet[off + 1]}.${packet[off + 2]}.${packet[off + 3]}`, port: packet.readUInt16BE(off + 4), rev })
  }
  // BEP 15: action, transaction, interval, leechers, seeders, then the addresses.
  return { peers, intervalMs: packet.readUInt32BE(8) * 1000, swarmPeers: packet.readUInt32BE(12) + packet.readUInt32BE(16) }
}

function parseUdpUrl(url: string): { host: string; port: number } {
  const m = /^udp:\/\/([^/:]+|\[[^\]]+\]):(\d{1,5})(\/.*)?$/.exec(url)
  const port = Number(m?.[2])
  if (!m || port < 1 || port > 65_535) throw new UpswarmError('UPSWARM_E_CONFIG', `bad tracker UDP URL "${url}": expected udp://host:port`)
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port }
}
