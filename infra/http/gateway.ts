// R-PROXY-PROTO: the proxy's HTTP gateway. Files of any revision by path with Range (206),
// ETag = SHA-256, HEAD; and a read-only WebDAV view (OPTIONS, PROPFIND Depth 0/1) of each
// revision's tree under /dav/UUID/REV/. The backend hands out only verified manifests and bytes
// (R-VERIFY); when it fails mid-body the connection is cut, so a client never mistakes a short
// response for a whole one.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isUpswarmError, type ErrorCode } from '../errors.ts'
import { UUID_RE, type Entry, type FileEntry, type SignedRelease } from '../release/manifest.ts'

export interface GatewayBackend {
  /** A release whose signature verified under the product's pinned key (else UPSWARM_E_SIGNATURE). */
  release(product: string, rev: number | 'latest'): Promise<SignedRelease>
  /** The bytes [start, end] (inclusive) of a file of `release`, in order, each verified against its hashes. */
  read(release: SignedRelease, entry: FileEntry, start: number, end: number): AsyncIterable<Uint8Array>
  /** The products held, each with its newest revision (for directory views such as SFTP's root). */
  products?(): Promise<Record<string, number>> | Record<string, number>
}

export interface Gateway {
  url: string
  close(): Promise<void>
}

/** What a server sent did not verify: the gateway is a bad gateway for this request (502). */
const UNVERIFIED = new Set<ErrorCode>(['UPSWARM_E_SIGNATURE', 'UPSWARM_E_MANIFEST', 'UPSWARM_E_HASH_MISMATCH'])
const FILES_RE = /^\/v1\/products\/([^/]+)\/revs\/([^/]+)\/files\/(.+)$/
const DAV_RE = /^\/dav\/([^/]+)\/([^/]+)(\/.*)?$/

const REV_RE = /^[1-9][0-9]{0,14}$/

/** A percent-decoded part of the URL; malformed escapes are the client's error (400), not ours. */
function decoded(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new HttpError(400, `malformed percent-encoding in the ${what}: ${raw}`)
  }
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message)
  }
}

export async function startGateway(opts: { port: number; host: string; backend: GatewayBackend; log?: (m: string) => void }): Promise<Gateway> {
  const server: Server = createServer((req, res) => {
    handle(opts.backend, req, res).catch((err) => {
      const status = err instanceof HttpError ? err.status : isUpswarmError(err) && /NOT_FOUND|UNKNOWN_REVISION/.test(err.code) ? 404
        : isUpswarmError(err, 'UPSWARM_E_BAD_REQUEST') ? 400
        : isUpswarmError(err) && err.code === 'UPSWARM_E_NO_SERVER' ? 503
        : isUpswarmError(err) && UNVERIFIED.has(err.code) ? 502 : 500
      if (status >= 500) opts.log?.(`gateway error on ${req.method} ${req.url}: ${(err as Error).message}`)
      if (res.headersSent) {
        res.destroy(err as Error)
        return
      }
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...(err instanceof HttpError ? err.headers : {}) })
      res.end(`${(err as Error).message}\n`)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => resolve())
  })
  const addr = server.address() as AddressInfo
  return {
    url: `http://${opts.host}:${addr.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

async function handle(backend: GatewayBackend, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://gateway')
  const path = url.pathname
  const files = FILES_RE.exec(path)
  const dav = DAV_RE.exec(path)
  if (req.method === 'OPTIONS') {
    res.writeHead(200, { DAV: '1', Allow: 'OPTIONS, GET, HEAD, PROPFIND', 'content-length': '0' })
    res.end()
    return
  }
  if (!files && !dav) throw new HttpError(404, `no such resource: ${path} (try /v1/products/UUID/revs/REV/files/PATH or /dav/UUID/REV/)`)
  const [, rawProduct, rawRev, rawPath] = (files ?? dav)!
  const product = decoded(rawProduct!, 'product').toLowerCase()
  if (!UUID_RE.test(product)) throw new HttpError(404, `not a product UUID: ${rawProduct}`)
  // Strict decimal (issue 11 item 9): `0x2`, `1e1`, ` 1` name no revision.
  if (rawRev !== 'latest' && !REV_RE.test(rawRev!)) throw new HttpError(400, `not a revision: ${rawRev} (a decimal number from 1 up, or latest)`)
  const rev = rawRev === 'latest' ? 'latest' : Number(rawRev)
  const relPath = decoded((rawPath ?? '').replace(/^\/+/, '').replace(/\/+$/, ''), 'path')
  const release = await backend.release(product, rev)

  if (req.method === 'PROPFIND') {
    if (!dav) throw new HttpError(405, 'PROPFIND is served under /dav/UUID/REV/', { Allow: 'GET, HEAD, OPTIONS' })
    return propfind(release, relPath, `/dav/${product}/${rawRev}`, String(req.headers.depth ?? '1'), res)
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new HttpError(405, `${req.method} is not allowed: this view is read-only`, { Allow: 'OPTIONS, GET, HEAD, PROPFIND' })
  }
  const entry = release.manifest.entries.find((e) => e.path === relPath)
  if (!entry) throw new HttpError(404, `${relPath || '/'} is not in revision ${release.manifest.rev} of ${product}`)
  if (entry.kind !== 'file') throw new HttpError(404, `${relPath} is a ${entry.kind} in revision ${release.manifest.rev}, not a file`)
  await sendFile(backend, release, entry, req, res)
}

async function sendFile(backend: GatewayBackend, release: SignedRelease, entry: FileEntry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const etag = `"${entry.sha256}"`
  const common = {
    'accept-ranges': 'bytes',
    etag,
    'content-type': 'application/octet-stream',
    'last-modified': new Date(release.manifest.createdAt).toUTCString(),
  }
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, common)
    res.end()
    return
  }
  let start = 0
  let end = entry.size - 1
  let status = 200
  const range = req.headers.range
  const ifRange = req.headers['if-range']
  if (range && (!ifRange || ifRange === etag)) {
    const parsed = parseRange(range, entry.size)
    if (parsed === 'unsatisfiable') {
      throw new HttpError(416, `range ${range} is outside ${entry.path} (${entry.size} bytes)`, { 'content-range': `bytes */${entry.size}` })
    }
    if (parsed) {
      ;[start, end] = parsed
      status = 206
    }
  }
  const length = entry.size === 0 ? 0 : end - start + 1
  const head = {
    ...common,
    'content-length': String(length),
    ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${entry.size}` } : {}),
  }
  if (req.method === 'HEAD' || length === 0) {
    res.writeHead(status, head)
    res.end()
    return
  }
  // The first verified bytes before the status line: a first piece that fails is a clean 502.
  const body = backend.read(release, entry, start, end)[Symbol.asyncIterator]()
  let next = await body.next()
  res.writeHead(status, head)
  while (!next.done) {
    if (!res.write(next.value)) await drainedOrClosed(res)
    if (res.destroyed) {
      await body.return?.()
      return
    }
    next = await body.next()
  }
  res.end()
}

function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

/** One byte range per RFC 9110; a multi-range or malformed header is ignored (200, whole file). */
export function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!m || (m[1] === '' && m[2] === '')) return null
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return [Math.max(0, size - suffix), size - 1]
  }
  const start = Number(m[1])
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  if (start >= size || (m[2] !== '' && Number(m[2]) < start)) return 'unsatisfiable'
  return [start, end]
}

function propfind(release: SignedRelease, relPath: string, base: string, depth: string, res: ServerResponse): void {
  if (depth !== '0' && depth !== '1') {
    throw new HttpError(403, 'PROPFIND with Depth: infinity is not supported; use Depth 0 or 1')
  }
  const entries = release.manifest.entries
  const self: Entry | { path: ''; kind: 'dir'; mode: number } =
    relPath === '' ? { path: '', kind: 'dir', mode: 0o755 } : entries.find((e) => e.path === relPath) ?? missing(relPath)
  const children = depth === '1' && self.kind === 'dir'
    ? entries.filter((e) => {
        if (relPath === '') return !e.path.includes('/')
        return e.path.startsWith(`${relPath}/`) && !e.path.slice(relPath.length + 1).includes('/')
      })
    : []
  const modified = new Date(release.manifest.createdAt).toUTCString()
  const responses = [self, ...children].map((e) => {
    const href = `${base}/${e.path.split('/').map(encodeURIComponent).join('/')}${e.kind === 'dir' && e.path !== '' ? '/' : ''}`
    const props = e.kind === 'file'
      ? `<D:resourcetype/><D:getcontentlength>${e.size}</D:getcontentlength><D:getetag>"${e.sha256}"</D:getetag>`
      : e.kind === 'dir' ? '<D:resourcetype><D:collection/></D:resourcetype>' : '<D:resourcetype/>'
    const name = e.path.split('/').pop() ?? ''
    return `<D:response><D:href>${xml(href.replace(/\/\/$/, '/'))}</D:href><D:propstat><D:prop><D:displayname>${xml(name)}</D:displayname>${props}` +
      `<D:getlastmodified>${modified}</D:getlastmodified></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`
  })
  const body = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">${responses.join('')}</D:multistatus>\n`
  res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) })
  res.end(body)
}

function missing(path: string): never {
  throw new HttpError(404, `${path} is not in this revision`)
}

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}
