// Announces through the tracker's HTTP(S) door with the BitTorrent announce (BEP 3), asking for
// the non-compact list so that peer ids, revisions and public keys come back too.
import type { IncomingMessage } from 'node:http'
import { builtin } from '../lazy-builtin.ts'
import { UpswarmError } from '../errors.ts'
import { bdecode, type BDecoded } from '../tracker/bencode.ts'
import { infoHash } from '../tracker/info-hash.ts'
import { encodeBytes } from '../tracker/query.ts'
import { peersResponseSchema } from '../tracker/schema.ts'
import type { AnnounceParams, DoorResult, TrackerDoor, TrackerPeer } from './types.ts'

const MAX_BODY = 1024 * 1024

export interface HttpDoorOptions {
  timeoutMs: number
  /** Trusted CA certificate(s) for an https:// tracker with a private certificate. */
  ca?: string | Buffer
}

export function httpDoor(baseUrl: string, opts: HttpDoorOptions): TrackerDoor {
  const base = baseUrl.replace(/\/(announce)?$/, '')
  return {
    name: 'http',
    async announce(params, signal) {
      const body = await httpGet(`${base}/announce?${announceQuery(params)}`, opts, signal)
      return parseAnnounceBody(body, params.rev)
    },
    close() {},
  }
}

/** R-PEERLIST over the JSON API: peers of (product, rev), or of every revision. */
export async function queryPeersHttp(baseUrl: string, product: string, rev: number | undefined, opts: HttpDoorOptions): Promise<TrackerPeer[]> {
  const base = baseUrl.replace(/\/(announce)?$/, '')
  const url = `${base}/v1/products/${encodeURIComponent(product)}/peers${rev === undefined ? '' : `?rev=${rev}`}`
  const body = await httpGet(url, opts, AbortSignal.timeout(opts.timeoutMs), true)
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_TRACKER', `tracker ${url} answered with bad JSON`, { cause: err })
  }
  const parsed = peersResponseSchema.safeParse(json)
  if (!parsed.success) {
    const message = (json as { error?: { message?: string } })?.error?.message ?? parsed.error.message
    throw new UpswarmError('UPSWARM_E_TRACKER', `tracker ${url} refused the query: ${message}`)
  }
  return parsed.data.peers
}

function announceQuery(p: AnnounceParams): string {
  const parts = [
    `info_hash=${encodeBytes(infoHash(p.product, p.rev))}`,
    `peer_id=${encodeBytes(Buffer.from(p.peerId, 'hex'))}`,
    `port=${p.port}`,
    'uploaded=0',
    'downloaded=0',
    'left=0',
    'compact=0',
    `numwant=${p.numwant ?? 50}`,
    `product=${p.product}`,
    `rev=${p.rev}`,
  ]
  if (p.event !== 'update') parts.push(`event=${p.event}`)
  if (p.publicKey) parts.push(`pk=${p.publicKey}`)
  if (p.site) parts.push(`site=${encodeURIComponent(p.site)}`)
  return parts.join('&')
}

/** Reads a bencoded announce response: failure reason, interval, compact or dictionary peers. */
export function parseAnnounceBody(body: Buffer, rev: number): DoorResult {
  let dict: BDecoded
  try {
    dict = bdecode(body)
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_TRACKER', `tracker answered the announce with bad bencode: ${(err as Error).message}`, { cause: err })
  }
  if (!(dict instanceof Map)) throw new UpswarmError('UPSWARM_E_TRACKER', 'tracker answered the announce with a non-dictionary')
  const failure = dict.get('failure reason')
  if (failure instanceof Uint8Array) throw new UpswarmError('UPSWARM_E_TRACKER', `tracker refused the announce: ${Buffer.from(failure).toString('utf8')}`)
  const interval = dict.get('interval')
  const peers: TrackerPeer[] = []
  const list = dict.get('peers')
  if (list instanceof Uint8Array) {
    for (let off = 0; off + 6 <= list.byteLength; off += 6) {
      peers.push({ ip: `${list[off]}.${list[off + 1]}.${list[off + 2]}.${list[off + 3]}`, port: (list[off + 4]! << 8) | list[off + 5]!, rev })
    }
  } else if (Array.isArray(list)) {
    for (const item of list) {
      if (!(item instanceof Map)) continue
      const ip = item.get('ip')
      const port = item.get('port')
      if (!(ip instanceof Uint8Array) || typeof port !== 'number') continue
      const peer: TrackerPeer = { ip: Buffer.from(ip).toString('latin1'), port, rev }
      const id = item.get('peer id')
      if (id instanceof Uint8Array && id.byteLength === 20) peer.peerId = Buffer.from(id).toString('hex')
      const pk = item.get('public key')
      if (pk instanceof Uint8Array) peer.publicKey = Buffer.from(pk).toString('latin1')
      peers.push(peer)
    }
  }
  const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined)
  const complete = count(dict.get('complete'))
  const incomplete = count(dict.get('incomplete'))
  const sitePeers = count(dict.get('site peers'))
  return {
    peers,
    ...(complete !== undefined && incomplete !== undefined ? { swarmPeers: complete + incomplete } : {}),
    ...(typeof interval === 'number' && interval > 0 ? { intervalMs: interval * 1000 } : {}),
    ...(sitePeers !== undefined ? { sitePeers } : {}),
  }
}

function httpGet(url: string, opts: HttpDoorOptions, signal: AbortSignal, anyStatus = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const fail = (err: unknown): void =>
      reject(err instanceof UpswarmError ? err : new UpswarmError('UPSWARM_E_TRACKER', `tracker at ${url.split('?')[0]} did not answer: ${(err as Error).message}`, { cause: err }))
    const timer = AbortSignal.any([signal, AbortSignal.timeout(opts.timeoutMs)])
    const onResponse = (res: IncomingMessage): void => {
      if (!anyStatus && res.statusCode !== 200) {
        res.resume()
        return fail(new UpswarmError('UPSWARM_E_TRACKER', `tracker at ${url.split('?')[0]} answered HTTP ${res.statusCode}`))
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.byteLength
        if (size > MAX_BODY) return req.destroy(new Error(`response larger than ${MAX_BODY} bytes`))
        chunks.push(c)
      })
      res.on('end', () => resolve(Buffer.concat(chunks)))
      res.on('error', fail)
    }
    const options = { signal: timer, ca: opts.ca }
    const req = url.startsWith('https:') ? builtin('node:https').request(url, options, onResponse) : builtin('node:http').request(url, options, onResponse)
    req.on('error', fail)
    req.end()
  })
}
