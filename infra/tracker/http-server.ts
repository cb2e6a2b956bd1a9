// The HTTP(S) door (R-TRACKER-PROTO): BitTorrent announce and scrape (bencoded), plus the JSON
// API `GET /v1/products/<uuid>/peers[?rev=N&limit=M]`. Only GET; bounded URLs; per-address rate
// limit; every refusal is an answer, never a crash.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { isUpswarmError } from '../errors.ts'
import {
  encodeAnnounceResponse,
  encodeFailure,
  encodeScrapeResponse,
  MAX_URL_LENGTH,
  parseAnnounceQuery,
  parseScrapeQuery,
  TrackerRequestError,
} from './http-protocol.ts'
import { isProductId, isRevision } from './info-hash.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { PeerRegistry } from './registry.ts'
import { MAX_NUMWANT } from './schema.ts'
import { addressOwner, toPeerView, type SwarmStats } from './types.ts'

export interface HttpDoorOptions {
  registry: PeerRegistry
  limiter: RateLimiter | undefined
  host: string
  port: number
  https?: { cert: string | Buffer; key: string | Buffer }
}

export interface HttpDoor {
  url: string
  close(): Promise<void>
}

const PEERS_PATH = /^\/v1\/products\/([^/]+)\/peers$/

export async function startHttpDoor(opts: HttpDoorOptions): Promise<HttpDoor> {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      handle(opts, req, res)
    } catch (err) {
      // A bug, not the client's fault: answer and keep serving.
      if (!res.headersSent) send(res, 500, 'text/plain', `tracker error: ${(err as Error).message}`)
    }
  }
  const server: Server = opts.https ? createHttpsServer({ cert: opts.https.cert, key: opts.https.key }, handler) : createHttpServer(handler)
  server.headersTimeout = 10_000
  server.requestTimeout = 15_000
  server.keepAliveTimeout = 5_000
  server.maxHeadersCount = 64
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
    else socket.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  return {
    url: `${opts.https ? 'https' : 'http'}://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function handle(opts: HttpDoorOptions, req: IncomingMessage, res: ServerResponse): void {
  req.resume() // a GET has no body worth reading; drain whatever came
  const rawUrl = req.url ?? '/'
  if (rawUrl.length > MAX_URL_LENGTH) return send(res, 414, 'text/plain', `URL longer than ${MAX_URL_LENGTH} bytes`)
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD')
    return send(res, 405, 'text/plain', 'only GET')
  }
  const qmark = rawUrl.indexOf('?')
  const path = qmark < 0 ? rawUrl : rawUrl.slice(0, qmark)
  const query = qmark < 0 ? '' : rawUrl.slice(qmark + 1)
  const ip = sourceAddress(req)
  if (opts.limiter && !opts.limiter.take(ip, Date.now())) {
    res.setHeader('Retry-After', '1')
    return path.startsWith('/v1/')
      ? sendJson(res, 429, { error: { code: 'UPSWARM_E_TRACKER', message: 'rate limited: slow down' } })
      : send(res, 429, 'text/plain', encodeFailure('rate limited: slow down'))
  }
  if (path === '/announce') return announce(opts, query, ip, res)
  if (path === '/scrape') return scrape(opts, query, res)
  const m = PEERS_PATH.exec(path)
  if (m) return peers(opts, decodeURIComponentSafe(m[1]!), query, res)
  send(res, 404, 'text/plain', 'not found: the tracker serves /announce, /scrape and /v1/products/<uuid>/peers')
}

function announce(opts: HttpDoorOptions, query: string, ip: string, res: ServerResponse): void {
  try {
    const input = parseAnnounceQuery(query, ip)
    const result = opts.registry.announce(input, addressOwner(ip))
    send(res, 200, 'text/plain', encodeAnnounceResponse(result, input.compact, input.noPeerId))
  } catch (err) {
    if (err instanceof TrackerRequestError || isUpswarmError(err)) return send(res, 200, 'text/plain', encodeFailure(err.message))
    throw err
  }
}

function scrape(opts: HttpDoorOptions, query: string, res: ServerResponse): void {
  try {
    const stats = new Map<string, SwarmStats>()
    for (const hash of parseScrapeQuery(query)) stats.set(hash, opts.registry.scrape(hash))
    send(res, 200, 'text/plain', encodeScrapeResponse(stats))
  } catch (err) {
    if (err instanceof TrackerRequestError) return send(res, 200, 'text/plain', encodeFailure(err.message))
    throw err
  }
}

function peers(opts: HttpDoorOptions, product: string | undefined, query: string, res: ServerResponse): void {
  const bad = (message: string): void => sendJson(res, 400, { error: { code: 'UPSWARM_E_BAD_REQUEST', message } })
  if (product === undefined || !isProductId(product)) return bad('product must be a UUID, as in /v1/products/<uuid>/peers')
  let params: URLSearchParams
  try {
    params = new URLSearchParams(query)
  } catch {
    return bad('bad query string')
  }
  const revText = params.get('rev')
  const rev = revText === null ? undefined : Number(revText)
  if (rev !== undefined && (!/^[0-9]{1,16}$/.test(revText!) || !isRevision(rev))) return bad('rev must be a non-negative integer')
  const limitText = params.get('limit')
  const limit = limitText === null ? MAX_NUMWANT : Number(limitText)
  if (!/^[0-9]{1,5}$/.test(limitText ?? '1') || limit < 1 || limit > 10_000) return bad('limit must be an integer from 1 to 10000')
  const p = product.toLowerCase()
  const list = opts.registry.peersOf(p, rev, limit).map(toPeerView)
  sendJson(res, 200, rev === undefined ? { product: p, peers: list } : { product: p, rev, peers: list })
}

function sourceAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? ''
  return a.startsWith('::ffff:') ? a.slice(7) : a
}

function decodeURIComponentSafe(s: string): string | undefined {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json', JSON.stringify(value))
}
