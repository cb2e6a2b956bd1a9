// Hand-made BitTorrent tracker clients for tests: raw HTTP GETs and raw BEP 15 UDP packets, built
// here from the BEPs rather than with the tracker's own encoders, so tests check the wire format.
import { randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { get } from 'node:http'

export async function httpGet(url: string): Promise<{ status: number; body: Buffer; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), type: res.headers['content-type'] }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

/** Percent-encodes every byte, as some BitTorrent clients do. */
export const pct = (bytes: Buffer): string => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')

export interface BtAnnounce {
  infoHash: Buffer
  peerId: Buffer
  port: number
  left?: number
  event?: 'started' | 'stopped' | 'completed'
  compact?: 0 | 1
  numwant?: number
  extra?: string
}

export function announceQuery(a: BtAnnounce): string {
  let q = `info_hash=${pct(a.infoHash)}&peer_id=${pct(a.peerId)}&port=${a.port}&uploaded=0&downloaded=0&left=${a.left ?? 0}`
  if (a.compact !== undefined) q += `&compact=${a.compact}`
  if (a.event) q += `&event=${a.event}`
  if (a.numwant !== undefined) q += `&numwant=${a.numwant}`
  if (a.extra) q += `&${a.extra}`
  return q
}

/** Reads BEP 23 compact peers. */
export function compactPeers(buf: Uint8Array): { ip: string; port: number }[] {
  const out = []
  for (let i = 0; i + 6 <= buf.byteLength; i += 6) out.push({ ip: `${buf[i]}.${buf[i + 1]}.${buf[i + 2]}.${buf[i + 3]}`, port: (buf[i + 4]! << 8) | buf[i + 5]! })
  return out
}

/** A UDP tracker client that sends raw packets and matches answers by transaction id. */
export class UdpProbe {
  readonly socket: Socket
  readonly #host: string
  readonly #port: number
  readonly #received: Buffer[] = []
  #waiters: (() => void)[] = []

  private constructor(url: string) {
    const m = /^udp:\/\/([^:]+):(\d+)$/.exec(url)!
    this.#host = m[1]!
    this.#port = Number(m[2])
    this.socket = createSocket('udp4')
    this.socket.on('message', (msg) => {
      this.#received.push(msg)
      for (const w of this.#waiters.splice(0)) w()
    })
  }

  static async open(url: string): Promise<UdpProbe> {
    const p = new UdpProbe(url)
    await new Promise<void>((resolve) => p.socket.bind(0, '127.0.0.1', resolve))
    return p
  }

  send(packet: Buffer): void {
    this.socket.send(packet, this.#port, this.#host)
  }

  /** The next packet received, in arrival order (loopback keeps order), or null after timeoutMs. */
  async next(timeoutMs = 3_000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs
    while (this.#received.length === 0) {
      const left = deadline - Date.now()
      if (left <= 0) return null
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        timer = setTimeout(resolve, left)
      })
      clearTimeout(timer)
    }
    return this.#received.shift()!
  }

  async request(packet: Buffer): Promise<Buffer> {
    this.send(packet)
    const res = await this.next()
    if (!res) throw new Error('no UDP answer')
    return res
  }

  static connectPacket(tx: number): Buffer {
    const b = Buffer.alloc(16)
    b.writeBigUInt64BE(0x41727101980n, 0)
    b.writeUInt32BE(0, 8)
    b.writeUInt32BE(tx, 12)
    return b
  }

  async connect(): Promise<Buffer> {
    const tx = randomBytes(4).readUInt32BE(0)
    const res = await this.request(UdpProbe.connectPacket(tx))
    if (res.readUInt32BE(0) !== 0 || res.readUInt32BE(4) !== tx) throw new Error(`bad connect answer ${res.toString('hex')}`)
    return res.subarray(8, 16)
  }

  static announcePacket(connectionId: Buffer, a: BtAnnounce & { tx?: number; urlData?: string }): Buffer {
    const b = Buffer.alloc(98)
    connectionId.copy(b, 0)
    b.writeUInt32BE(1, 8)
    b.writeUInt32BE(a.tx ?? 7, 12)
    a.infoHash.copy(b, 16)
    a.peerId.copy(b, 36)
    b.writeBigUInt64BE(BigInt(a.left ?? 0), 64)
    b.writeUInt32BE({ none: 0, completed: 1, started: 2, stopped: 3 }[a.event ?? 'none'], 80)
    b.writeInt32BE(a.numwant ?? -1, 92)
    b.writeUInt16BE(a.port, 96)
    if (!a.urlData) return b
    const url = Buffer.from(a.urlData)
    return Buffer.concat([b, Buffer.from([2, url.byteLength]), url, Buffer.from([0])])
  }

  static scrapePacket(connectionId: Buffer, hashes: Buffer[], tx = 9): Buffer {
    const b = Buffer.alloc(16)
    connectionId.copy(b, 0)
    b.writeUInt32BE(2, 8)
    b.writeUInt32BE(tx, 12)
    return Buffer.concat([b, ...hashes])
  }

  close(): void {
    this.socket.close()
  }
}
