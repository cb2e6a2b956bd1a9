// Issue 14 item 2: HTTP/1.1 exchanges with one repository server's bulk port, over TLS connections
// kept open. Each connection decrypts into one buffer of its own (`onread`), and a body goes from
// there straight into the caller's piece buffer: node's HTTP client hands out a fresh buffer per
// TLS record and copies it again, and on this VM fresh memory costs more than the copy (in a
// lab run of 256 MiB in 1 MiB ranges, 4 in flight: 0.34 CPU-s through node:https, 0.19 here).
// The wire is the port's own (actors/repo-server/bulk.ts): every answer has a content-length.
import type { OnReadOpts } from 'node:net'
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { UpswarmError, errorMessage } from '../errors.ts'

export interface HttpsRequest {
  method: 'GET' | 'POST'
  path: string
  headers: Record<string, string>
  payload?: Buffer
  /** The status whose body may be `max` bytes and goes into `into`; any other is an error answer. */
  status: number
  max: number
  into?: Buffer
}

export interface HttpsAnswer {
  status: number
  body: Buffer
}

/** The port could not be reached or spoke no HTTP we understand before answering: the caller uses NATS. */
export class HttpsUnreachable extends Error {
  override readonly name = 'HttpsUnreachable'
}

/** Bytes of an answer's head at most; of an error answer's body at most. */
const MAX_HEAD = 16 * 1024
const MAX_ERROR_BODY = 64 * 1024
/** What each connection decrypts into. */
const READ_BUFFER = 64 * 1024

interface Pending {
  req: HttpsRequest
  resolve: (a: HttpsAnswer) => void
  reject: (err: unknown) => void
}

/** One kept-open connection: one exchange at a time. */
class Connection {
  readonly socket: TLSSocket
  /** Answer bytes of the current exchange so far (a reused connection that closes before any is stale, not broken). */
  private seen = 0
  private answered = 0
  reusable = true
  private isGone = false
  private pending: Pending | undefined
  private head: Buffer[] = []
  private headBytes = 0
  private answer: { status: number; body: Buffer; at: number } | undefined

  constructor(url: URL, cert: string, checkIdentity: (cert: { fingerprint256: string }) => Error | undefined, private readonly onGone: (c: Connection) => void) {
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER)
    // tls.connect takes net's `onread` (node's documentation; its typings omit it).
    const options: ConnectionOptions & { onread: OnReadOpts } = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 443),
      ca: cert,
      checkServerIdentity: (_host, peer) => checkIdentity(peer),
      onread: { buffer: readBuffer, callback: (n: number, buf: Uint8Array) => (this.onData(buf as Buffer, n), true) },
    }
    this.socket = connect(options)
    this.socket.setNoDelay(true)
    this.socket.on('error', (err) => this.fail(err))
    this.socket.on('close', () => this.fail(new Error('connection closed')))
  }

  exchange(req: HttpsRequest, resolve: (a: HttpsAnswer) => void, reject: (err: unknown) => void): void {
    this.pending = { req, resolve, reject }
    this.seen = 0
    this.head = []
    this.headBytes = 0
    this.answer = undefined
    let text = `${req.method} ${req.path} HTTP/1.1\r\nhost: bulk\r\n`
    for (const [k, v] of Object.entries(req.headers)) text += `${k}: ${v}\r\n`
    if (req.payload) text += `content-length: ${req.payload.length}\r\n`
    this.socket.cork()
    this.socket.write(`${text}\r\n`)
    if (req.payload) this.socket.write(req.payload)
    this.socket.uncork()
  }

  /** Closes it; its place in the pool frees when the socket has closed. */
  destroy(): void {
    this.reusable = false
    this.pending = undefined
    this.socket.destroy()
  }

  private onData(buf: Buffer, n: number): void {
    this.seen += n
    const p = this.pending
    if (!p) return this.fail(new UpswarmError('UPSWARM_E_PEER', 'the bulk port sent bytes nobody asked for'))
    let at = 0
    if (!this.answer) {
      // The head is parsed where it was read; only a head that straddles reads is copied out
      // (the read buffer is reused), and only its bytes, not the body's after it.
      const carried = this.headBytes
      const read = buf.subarray(0, Math.min(n, MAX_HEAD + 4))
      const all = carried ? Buffer.concat([...this.head, read]) : read
      const end = all.indexOf('\r\n\r\n')
      if (end < 0) {
        if (carried + n > MAX_HEAD) return this.fail(new UpswarmError('UPSWARM_E_PEER', `the bulk port's answer has no end of head in ${MAX_HEAD} bytes`))
        this.head.push(Buffer.from(read))
        this.headBytes += read.length
        return
      }
      const parsed = this.parseHead(all.toString('latin1', 0, end), p.req)
      if (!parsed) return
      this.answer = parsed
      at = end + 4 - carried
    }
    const a = this.answer
    const take = Math.min(n - at, a.body.length - a.at)
    buf.copy(a.body, a.at, at, at + take)
    a.at += take
    if (at + take < n) return this.fail(new UpswarmError('UPSWARM_E_PEER', 'the bulk port sent more bytes than its content-length'))
    if (a.at < a.body.length) return
    this.pending = undefined
    this.answered++
    p.resolve({ status: a.status, body: a.body })
  }

  private parseHead(text: string, req: HttpsRequest): Connection['answer'] | undefined {
    const lines = text.split('\r\n')
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
    const headers = new Map<string, string>()
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
    }
    const length = Number(headers.get('content-length'))
    if (!status || !Number.isSafeInteger(length) || length < 0) {
      this.fail(new UpswarmError('UPSWARM_E_PEER', `the bulk port answered ${JSON.stringify(lines[0]?.slice(0, 80))} without a content-length`))
      return undefined
    }
    const code = Number(status[1])
    const max = code === req.status ? req.max : MAX_ERROR_BODY
    if (length > max) {
      this.fail(new UpswarmError('UPSWARM_E_PEER', `bulk port answered ${length} bytes where at most ${max} were asked`))
      return undefined
    }
    if (headers.get('connection')?.toLowerCase() === 'close') this.reusable = false
    const into = code === req.status ? req.into : undefined
    return { status: code, body: into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length), at: 0 }
  }

  private fail(err: unknown): void {
    const p = this.pending
    this.pending = undefined
    this.reusable = false
    if (!this.isGone) {
      this.isGone = true
      this.socket.destroy()
      this.onGone(this)
    }
    if (!p) return
    // A connection reused after a while that closes before answering is one the server let go.
    if (this.answered > 0 && this.seen === 0) return p.reject(new StaleConnection())
    p.reject(err instanceof UpswarmError ? err : new HttpsUnreachable(`bulk port: ${errorMessage(err)}`, { cause: err }))
  }
}

class StaleConnection extends Error {}

/** The pool was closed while the exchange waited for a connection (its owner may ask a new pool). */
export class PoolClosed extends HttpsUnreachable {}

/**
 * Up to `maxConnections` kept-open connections to one `https://host:port`, whose certificate must be
 * exactly `cert`; more exchanges than connections wait for one. Closed with close().
 */
export class PinnedHttps {
  private readonly idle: Connection[] = []
  private readonly waiting: ((c: Connection | undefined) => void)[] = []
  private open = 0
  private closed = false

  constructor(
    private readonly url: URL,
    private readonly cert: string,
    private readonly checkIdentity: (cert: { fingerprint256: string }) => Error | undefined,
    private readonly maxConnections: number,
  ) {}

  /**
   * One exchange. It gives up after `waitMs` with `timeout()`'s error, and on `signal` with its
   * reason: either way its connection is closed (the server drops an answer not yet sent), and
   * nothing more is written into `into`.
   */
  async exchange(req: HttpsRequest, o: { waitMs: number; timeout: () => Error; signal?: AbortSignal }): Promise<HttpsAnswer> {
    o.signal?.throwIfAborted()
    for (let attempt = 0; ; attempt++) {
      const conn = await this.acquire()
      try {
        const answer = await new Promise<HttpsAnswer>((resolve, reject) => {
          const timer = setTimeout(() => {
            conn.destroy()
            reject(o.timeout())
          }, o.waitMs)
          const onAbort = (): void => {
            conn.destroy()
            reject(o.signal!.reason)
          }
          o.signal?.addEventListener('abort', onAbort, { once: true })
          const settle = (): void => {
            clearTimeout(timer)
            o.signal?.removeEventListener('abort', onAbort)
          }
          conn.exchange(req, (a) => (settle(), resolve(a)), (err) => (settle(), reject(err)))
        })
        this.release(conn)
        return answer
      } catch (err) {
        this.release(conn)
        if (err instanceof StaleConnection && attempt === 0) continue
        if (err instanceof StaleConnection) throw new HttpsUnreachable('bulk port: the connection closed before an answer')
        throw err
      }
    }
  }

  /** Closes the kept connections; those in use close once answered, and exchanges waiting for one fail (PoolClosed). */
  close(): void {
    this.closed = true
    for (const c of this.idle.splice(0)) c.destroy()
    for (const waiter of this.waiting.splice(0)) waiter(undefined)
  }

  private acquire(): Promise<Connection> {
    if (this.closed) return Promise.reject(new PoolClosed('bulk port: closed'))
    const idle = this.idle.pop()
    if (idle) {
      idle.socket.ref()
      return Promise.resolve(idle)
    }
    if (this.open < this.maxConnections) return Promise.resolve(this.connect())
    return new Promise((resolve, reject) => this.waiting.push((c) => (c ? resolve(c) : reject(new PoolClosed('bulk port: closed')))))
  }

  private release(conn: Connection): void {
    if (!conn.reusable || this.closed) return conn.destroy()
    const next = this.waiting.shift()
    if (next) return next(conn)
    // An idle connection keeps no process alive.
    conn.socket.unref()
    this.idle.push(conn)
  }

  /** A connection closed (by either end): its place is free for a new one. */
  private gone(conn: Connection): void {
    this.open--
    const i = this.idle.indexOf(conn)
    if (i >= 0) this.idle.splice(i, 1)
    const next = this.closed ? undefined : this.waiting.shift()
    if (next) next(this.connect())
  }

  /** A new connection, counted against maxConnections until it is gone. */
  private connect(): Connection {
    this.open++
    return new Connection(this.url, this.cert, this.checkIdentity, (c) => this.gone(c))
  }
}
