// Issue 14 item 2: the repository server's bulk port. Blob ranges go over HTTPS straight from the
// server's disk to the client (one read, one TLS write), where a NATS range reply crosses the
// cluster's routes as 1 MiB messages copied several times. NATS stays the control plane: a client
// gets the port's URL, its self-signed certificate and a ticket from the server's `bulk` request
// (infra/http/bulk-wire.ts), and each range takes its turn of the same upload limit, answers busy
// the same way, and is dropped unsent when its client hangs up first (the withdrawal of issue 14).
//
// The port speaks its small HTTP/1.1 wire on TLS connections of its own (`tls.createServer`), not
// node's https server: node writes an answer's head and body as two buffers, and its TLS layer
// copies two buffers into a fresh one before encrypting them (1 MiB of new memory per range). Here a
// range is read into a reused buffer just after room for its head, and head and body go to TLS as
// one buffer, without a copy. The wire: one request at a time per connection (a pipelined one
// waits its turn), a head of at most MAX_HEAD bytes, a body only with a content-length, every
// answer with a content-length; anything else is refused with a JSON error and the connection closed.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { STATUS_CODES } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import { createServer, type TLSSocket } from 'node:tls'
import { selfSignedCert, type PemPair } from '../../infra/auth/tls.ts'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import { BLOB_PATH, UNITS_BODY_MAX, UNITS_PATH, WAIT_HEADER, issueTicket, ticketValid, type BulkOffer } from '../../infra/http/bulk-wire.ts'
import { UnitsRequest } from '../../infra/formats/meta-wire.ts'
import { MAX_WAIT_MS } from '../../infra/nats/busy.ts'
import { STATUS_OF } from '../../infra/nats/service.ts'
import { BufferPool } from '../../infra/buffer-pool.ts'

/** One range of a blob, as the NATS `range` endpoint serves it (its turn of the upload limit first). */
export type ServeRange = (req: { sha256: string; offset: number; length: number; waitMs?: number; signal?: AbortSignal; into?: Buffer }) => Promise<Buffer>
/** Small units by the batch, as the NATS `units` request serves them (its reply's bytes). */
export type ServeUnits = (req: UnitsRequest & { signal?: AbortSignal }) => Promise<Uint8Array>

export interface BulkPort {
  /** What a client needs to use the port: the server's answer to its `bulk` request. */
  offer(): BulkOffer
  close(): Promise<void>
}

const RANGE_RE = /^bytes=(\d{1,15})-(\d{1,15})$/
/** Ranges up to a piece are read into the port's reused buffers (1 MiB, at most 32 kept). */
const SPARE_SIZE = 1024 * 1024
const MAX_SPARE = 32
/** Bytes kept free before a range in its buffer, for the answer's head (one TLS write, no copy). */
const HEAD_ROOM = 512
const BLOB_RE = /^[0-9a-f]{64}$/
/** A request's head (request line and headers) is at most this long (node's own default), with at most MAX_HEADERS lines. */
export const MAX_HEAD = 16 * 1024
const MAX_HEADERS = 100
/** A kept-open connection with no request closes after this (node's keepAliveTimeout). */
const KEEP_ALIVE_MS = 5_000
/** A request's head and body arrive within this from their first byte (node's headersTimeout). */
const REQUEST_MS = 60_000
/** A connection refused (an error answer and its close) is read and dropped this long, then cut. */
const LINGER_MS = 5_000

const REQUEST_LINE = /^([A-Z]{1,20}) ([\x21-\x7e]+) HTTP\/1\.([01])$/
/** A header line: a token, a colon, a value of visible characters, spaces and tabs (no control character). */
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[\t ]*([\t\x20-\x7e\x80-\xff]*?)[\t ]*$/
const LENGTH_RE = /^\d{1,15}$/

/** The port's key and certificate, made once and kept in the server's data dir (0600). */
async function portCert(dataDir: string, id: string): Promise<PemPair> {
  const file = join(dataDir, 'bulk-tls.json')
  try {
    const pair = JSON.parse(readFileSync(file, 'utf8')) as PemPair
    if (typeof pair.cert === 'string' && typeof pair.key === 'string') return pair
  } catch { /* none yet, or unreadable: a new one */ }
  const pair = selfSignedCert(`upswarm repository server ${id}`)
  await writeFile(file, JSON.stringify(pair), { mode: 0o600 })
  return pair
}

/** A request's head, parsed: header names in lower case. */
interface Head {
  method: string
  target: string
  headers: Map<string, string>
  /** Its body's length (0 without a content-length). */
  length: number
  /** The connection closes after the answer (`connection: close`, or HTTP/1.0 without keep-alive). */
  close: boolean
  /** `expect: 100-continue`: the body comes once the port says so. */
  proceed: boolean
}

/** An error answer with its own status, for what HTTP itself refuses (a head too large, too slow). */
class Refused extends UpswarmError {
  constructor(readonly status: number, message: string, code: 'UPSWARM_E_BAD_REQUEST' | 'UPSWARM_E_TIMEOUT' = 'UPSWARM_E_BAD_REQUEST') {
    super(code, message)
  }
}

/** A request's head (the text before its empty line), or the Refused error naming what is wrong with it. */
function parseHead(text: string): Head | Refused {
  const lines = text.split('\r\n')
  const line = REQUEST_LINE.exec(lines[0]!)
  if (!line) return new Refused(400, `the bulk port reads HTTP/1.1 requests (got ${JSON.stringify(lines[0]!.slice(0, 100))})`)
  if (lines.length - 1 > MAX_HEADERS) return new Refused(431, `a bulk request has at most ${MAX_HEADERS} header lines`)
  const headers = new Map<string, string>()
  for (const l of lines.slice(1)) {
    const h = HEADER_LINE.exec(l)
    if (!h) return new Refused(400, `a malformed header line in a bulk request: ${JSON.stringify(l.slice(0, 100))}`)
    const name = h[1]!.toLowerCase()
    const value = h[2]!
    const before = headers.get(name)
    if (before === undefined) headers.set(name, value)
    else if (name === 'content-length' && value !== before) return new Refused(400, 'a bulk request has two different content-lengths')
    // As node reads them: a second authorization is ignored, a second of the others joins the first.
    else if (name !== 'authorization' && name !== 'content-length') headers.set(name, `${before}, ${value}`)
  }
  if (headers.has('transfer-encoding')) return new Refused(400, 'a bulk request sends its body with a content-length (no transfer-encoding)')
  const length = headers.get('content-length')
  if (length !== undefined && !LENGTH_RE.test(length)) return new Refused(400, `a bulk request's content-length is a number of bytes (got ${JSON.stringify(length.slice(0, 40))})`)
  const expect = headers.get('expect')?.toLowerCase()
  if (expect !== undefined && expect !== '100-continue') return new Refused(417, `the bulk port meets no expectation but 100-continue (got ${JSON.stringify(expect.slice(0, 40))})`)
  const connection = (headers.get('connection') ?? '').toLowerCase().split(',').map((t) => t.trim())
  return {
    method: line[1]!,
    target: line[2]!,
    headers,
    length: length === undefined ? 0 : Number(length),
    close: connection.includes('close') || (line[3] === '0' && !connection.includes('keep-alive')),
    proceed: expect !== undefined,
  }
}

type Route = { kind: 'range'; sha256: string; offset: number; length: number } | { kind: 'units'; serveUnits: ServeUnits }

export async function startBulkPort(opts: {
  id: string
  dataDir: string
  host: string
  port: number
  /** The host the offer names when it is not `host` (a server bound to 0.0.0.0). */
  advertiseHost?: string
  maxRange: number
  serve: ServeRange
  /** Issue 13 item 4: POST UNITS_PATH, the batch of small units off the NATS routes too. */
  serveUnits?: ServeUnits
  log: (msg: string) => void
}): Promise<BulkPort> {
  const tls = await portCert(opts.dataDir, opts.id)
  /** Buffers for ranges of a piece or less, with room for the head, reused: no garbage per range for the collector. */
  const spare = new BufferPool(HEAD_ROOM + SPARE_SIZE, MAX_SPARE)
  // Tickets die with the process: a restarted server hands out new ones (clients ask again on 401).
  const key = randomBytes(32)

  /** What a request asks, from its head alone: the blob range or the units batch, or the error to answer. */
  const route = (head: Head): Route => {
    const path = head.target.split('?')[0]!
    const serveUnits = head.method === 'POST' && path === UNITS_PATH ? opts.serveUnits : undefined
    const sha256 = path.startsWith(BLOB_PATH) ? path.slice(BLOB_PATH.length) : ''
    if (!serveUnits && (head.method !== 'GET' || !BLOB_RE.test(sha256))) {
      throw new UpswarmError('UPSWARM_E_NOT_FOUND', `server ${opts.id}'s bulk port serves GET ${BLOB_PATH}<sha256>${opts.serveUnits ? ` and POST ${UNITS_PATH}` : ''} only (got ${head.method} ${path.slice(0, 100)})`)
    }
    const auth = head.headers.get('authorization')
    if (!ticketValid(key, opts.id, auth?.startsWith('Bearer ') ? auth.slice(7) : undefined)) {
      throw new UpswarmError('UPSWARM_E_AUTH', `server ${opts.id}'s bulk port needs a current ticket (ask the server's bulk request over NATS)`)
    }
    if (serveUnits) {
      if (head.length > UNITS_BODY_MAX) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a units request is at most ${UNITS_BODY_MAX} bytes`)
      return { kind: 'units', serveUnits }
    }
    const asked = head.headers.get('range')
    const range = RANGE_RE.exec(asked ?? '')
    const offset = range ? Number(range[1]) : -1
    const length = range ? Number(range[2]) - offset + 1 : 0
    if (!range || length < 1 || length > opts.maxRange) {
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a bulk request names one range of 1 to ${opts.maxRange} bytes (Range: bytes=a-b), got ${JSON.stringify(asked ?? null)}`)
    }
    if (head.length > UNITS_BODY_MAX) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a range request has no body (got a content-length of ${head.length})`)
    return { kind: 'range', sha256, offset, length }
  }

  /** What a request waits for its answer: its WAIT_HEADER, bounded. */
  const waitOf = (head: Head): { waitMs?: number } => {
    const wait = head.headers.get(WAIT_HEADER)
    return wait !== undefined && /^\d{1,9}$/.test(wait) ? { waitMs: Math.min(Number(wait), MAX_WAIT_MS) } : {}
  }

  /** One TLS connection: requests one after another, each answered before the next is read. */
  const serveConnection = (socket: TLSSocket): void => {
    socket.setNoDelay(true)
    /** Bytes read and not yet taken by a request. */
    let pending: Buffer | undefined
    /** Reading a head, reading a body, serving a request, or refused and closing. */
    let state: 'head' | 'body' | 'busy' | 'closing' = 'head'
    /** When the request being read began (0: none is). */
    let started = 0
    let head: Head | undefined
    let asked: Route | undefined
    let body: Buffer[] = []
    let bodyBytes = 0
    /** Aborted when the client hangs up while its request is served: a range withdrawn before its turn is dropped unsent. */
    let hangUp: AbortController | undefined
    /** Net's idle timer: the connection's one deadline, set for what it waits for. */
    const idle = (ms: number): void => void socket.setTimeout(ms)

    const answer = (status: number, lines: string, bytes: Uint8Array, then: () => void, room?: Buffer): void => {
      const close = !!head?.close
      const text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Status'}\r\n${lines}content-length: ${bytes.length}\r\n${close ? 'connection: close' : 'connection: keep-alive\r\nkeep-alive: timeout=5'}\r\n\r\n`
      let once = false
      const done = (): void => {
        if (once) return
        once = true
        socket.off('close', done)
        then()
        // The answer has gone: a kept-open connection waits KEEP_ALIVE_MS for its next request.
        if (state === 'head' && !started) idle(KEEP_ALIVE_MS)
      }
      // Sent, or the connection gone: either way the socket holds no more of it.
      socket.once('close', done)
      if (room && bytes.buffer === room.buffer && bytes.byteOffset === room.byteOffset + HEAD_ROOM && text.length <= HEAD_ROOM) {
        // The range was read just after room for its head: one buffer, one TLS write, no copy.
        const at = HEAD_ROOM - text.length
        room.write(text, at, 'latin1')
        socket.write(room.subarray(at, HEAD_ROOM + bytes.length), done)
      } else {
        // Two writes, not one writev: node's TLS layer would copy both into a new buffer.
        socket.write(text, 'latin1')
        socket.write(bytes, done)
      }
    }

    /** An error answer; `close` (or a request that said so) closes the connection after it, else the port is ready for the next request. */
    const fail = (err: UpswarmError, close: boolean): void => {
      const body = Buffer.from(JSON.stringify(err.toJSON()))
      const status = err instanceof Refused ? err.status : err.code === 'UPSWARM_E_AUTH' ? 401 : (STATUS_OF[err.code] ?? 500)
      if (close) {
        if (head) head.close = true
        else head = { method: '', target: '', headers: new Map(), length: 0, close: true, proceed: false }
      }
      answer(status, 'content-type: application/json\r\n', body, () => {})
      if (head?.close) linger()
      else next()
    }

    /** Refused: whatever the client still sends is read and dropped (so the answer is not lost to a reset) until it closes, or LINGER_MS. */
    const linger = (): void => {
      state = 'closing'
      pending = undefined
      socket.end()
      idle(LINGER_MS)
    }

    /** Ready for the next request (pump() then takes one that came meanwhile). */
    const next = (): void => {
      state = 'head'
      started = 0
      head = undefined
      asked = undefined
      hangUp = undefined
    }

    const serveRange = async (r: Extract<Route, { kind: 'range' }>, h: Head, signal: AbortSignal): Promise<void> => {
      // A range of a piece or less is read into a buffer of the port's own, taken back once sent.
      const pooled = r.length <= SPARE_SIZE
      const room = pooled ? spare.take() : Buffer.allocUnsafe(HEAD_ROOM + r.length)
      const giveBack = (): void => {
        if (pooled) spare.give(room)
      }
      let bytes: Buffer
      try {
        bytes = await opts.serve({ sha256: r.sha256, offset: r.offset, length: r.length, ...waitOf(h), signal, into: room.subarray(HEAD_ROOM, HEAD_ROOM + r.length) })
      } catch (err) {
        giveBack()
        throw err
      }
      if (signal.aborted) return giveBack()
      answer(206, `content-type: application/octet-stream\r\ncontent-range: bytes ${r.offset}-${r.offset + bytes.length - 1}/*\r\n`, bytes, giveBack, room)
    }

    /** POST UNITS_PATH: the hashes asked (a bounded JSON body), answered with the NATS `units` reply's bytes. */
    const serveUnits = async (serve: ServeUnits, h: Head, payload: Buffer, signal: AbortSignal): Promise<void> => {
      let units: UnitsRequest
      try {
        units = UnitsRequest.parse(JSON.parse(payload.toString('utf8')))
      } catch (err) {
        throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a units request is {"hashes": [up to 1024 SHA-256 in hex]}: ${errorMessage(err).slice(0, 300)}`)
      }
      const bytes = await serve({ hashes: units.hashes, ...waitOf(h), signal })
      if (signal.aborted) return
      answer(200, 'content-type: application/octet-stream\r\n', bytes, () => {})
    }

    /** The request read whole: served, then the next one. */
    const serve = (h: Head, r: Route, payload: Buffer): void => {
      state = 'busy'
      started = 0
      // Served at the pace of the upload limit's turns, which the request's own wait bounds.
      idle(0)
      const controller = new AbortController()
      hangUp = controller
      const served = r.kind === 'range' ? serveRange(r, h, controller.signal) : serveUnits(r.serveUnits, h, payload, controller.signal)
      served.then(
        () => {
          if (controller.signal.aborted) return
          if (h.close) return linger()
          next()
          pump()
        },
        (err: unknown) => {
          if (controller.signal.aborted) return
          if (!isUpswarmError(err)) opts.log(`bulk port: ${h.method} ${h.target.slice(0, 100)} failed: ${errorMessage(err)}`)
          fail(isUpswarmError(err) ? err : new UpswarmError('UPSWARM_E_IO', `server ${opts.id} could not serve ${h.target.slice(0, 100)}: ${errorMessage(err)}`), false)
          pump()
        },
      )
    }

    /** Takes what was read: heads parsed, bodies gathered, and a request read whole served. */
    const pump = (): void => {
      while (pending && pending.length > 0 && (state === 'head' || state === 'body')) {
        if (!started) {
          started = Date.now()
          idle(REQUEST_MS)
        } else if (Date.now() - started > REQUEST_MS) {
          return fail(new Refused(408, `a bulk request's head and body arrive within ${REQUEST_MS / 1000} s`, 'UPSWARM_E_TIMEOUT'), true)
        }
        if (state === 'head') {
          // An empty line before a request is allowed (RFC 9112 §2.2).
          if (pending[0] === 0x0d && pending[1] === 0x0a) {
            pending = pending.subarray(2)
            continue
          }
          const end = pending.indexOf('\r\n\r\n')
          if (end < 0 ? pending.length > MAX_HEAD : end + 4 > MAX_HEAD) {
            return fail(new Refused(431, `a bulk request's head is at most ${MAX_HEAD} bytes`), true)
          }
          if (end < 0) return
          const parsed = parseHead(pending.toString('latin1', 0, end))
          pending = pending.subarray(end + 4)
          if (parsed instanceof Refused) return fail(parsed, true)
          head = parsed
          try {
            asked = route(parsed)
          } catch (err) {
            // A body left unread would be read as the next request: the connection closes after the answer.
            fail(err as UpswarmError, parsed.length > 0)
            continue
          }
          body = []
          bodyBytes = 0
          state = 'body'
          if (parsed.proceed && parsed.length > 0) socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1')
        }
        const want = head!.length - bodyBytes
        if (want > 0) {
          const take = pending.subarray(0, want)
          body.push(take)
          bodyBytes += take.length
          pending = pending.subarray(take.length)
          if (bodyBytes < head!.length) return
        }
        serve(head!, asked!, body.length === 1 ? body[0]! : Buffer.concat(body))
        body = []
      }
      if (state === 'head' && !pending?.length) {
        pending = undefined
        started = 0
      }
    }

    socket.on('data', (chunk: Buffer) => {
      if (state === 'closing') return
      pending = pending?.length ? Buffer.concat([pending, chunk]) : chunk
      // A request sent before the last is answered waits, within a head's size.
      if (state === 'busy') return void (pending.length > MAX_HEAD + UNITS_BODY_MAX && socket.destroy())
      pump()
      if (state === 'head' && !pending) idle(KEEP_ALIVE_MS)
    })
    socket.on('timeout', () => {
      if (state === 'head' && !started) return void socket.destroy()
      if (state === 'head' || state === 'body') return fail(new Refused(408, `a bulk request's head and body arrive within ${REQUEST_MS / 1000} s`, 'UPSWARM_E_TIMEOUT'), true)
      socket.destroy()
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => hangUp?.abort())
    idle(KEEP_ALIVE_MS)
  }

  const server = createServer({ cert: tls.cert, key: tls.key }, serveConnection)
  /** Every connection, from its first byte (a TLS handshake under way too): close() cuts them all. */
  const connections = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    connections.add(socket)
    socket.once('close', () => connections.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UpswarmError('UPSWARM_E_CONFIG', `server ${opts.id}: the bulk port cannot listen on ${opts.host}:${opts.port}: ${errorMessage(err)}`, { cause: err })))
    server.listen(opts.port, opts.host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const host = opts.advertiseHost ?? opts.host
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`
  opts.log(`bulk port on ${url}`)
  return {
    offer: () => ({ url, cert: tls.cert, ticket: issueTicket(key, opts.id) }),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of connections) socket.destroy()
      await closed
    },
  }
}
