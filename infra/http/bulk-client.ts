// Issue 14 item 2: the client's side of a repository server's bulk port (actors/repo-server/bulk.ts).
// Ranges over HTTPS keep-alive connections to the one server, its certificate pinned from the offer
// the server gave over NATS; errors come back as the UpswarmErrors the NATS range request gives,
// so the caller handles busy, not-found and withdrawn ranges the same way on either path.
import { Agent, request } from 'node:https'
import type { IncomingMessage } from 'node:http'
import { ERROR_CODES, UpswarmError, errorMessage, type ErrorCode } from '../errors.ts'
import { NODES_MAX_REPLY } from '../formats/meta-wire.ts'
import { BLOB_PATH, UNITS_PATH, WAIT_HEADER, fingerprintOf, type BulkOffer } from './bulk-wire.ts'

/** Ranges in flight to one server over its bulk port (each on its own keep-alive connection). */
const MAX_SOCKETS = 8

/** The bulk port could not be used at all (refused, reset, a certificate that is not the one offered): use NATS. */
export class BulkUnreachable extends Error {
  override readonly name = 'BulkUnreachable'
}

export class BulkReader {
  private offer: BulkOffer
  private agent: Agent
  private fresh: Promise<BulkOffer> | undefined
  /** Bytes received over the bulk port. */
  bytes = 0

  constructor(offer: BulkOffer, private readonly server: string, private readonly renew: () => Promise<BulkOffer>) {
    this.offer = offer
    this.agent = this.agentFor(offer)
  }

  private agentFor(offer: BulkOffer): Agent {
    const pinned = fingerprintOf(offer.cert)
    return new Agent({
      keepAlive: true,
      maxSockets: MAX_SOCKETS,
      // Trust exactly the certificate the server offered over NATS, whatever host name it is reached by.
      ca: offer.cert,
      checkServerIdentity: (_host, cert) => (cert.fingerprint256 === pinned ? undefined : new Error(`server ${this.server}'s bulk port showed certificate ${cert.fingerprint256}, not the one it offered over NATS (${pinned})`)),
    })
  }

  /**
   * `length` bytes at `offset` of blob `sha256` (fewer at the blob's end), as the server sent them:
   * the caller verifies them. `waitMs` is what this request waits, told to the server; `into`, a
   * buffer of at least `length` bytes to fill (the result is then a view of it).
   */
  read(sha256: string, offset: number, length: number, waitMs: number, signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    return this.renewing(() => this.exchange({
      path: BLOB_PATH + sha256,
      headers: { range: `bytes=${offset}-${offset + length - 1}` },
      status: 206, max: length, waitMs,
      what: `range ${offset}+${length} of blob ${sha256}`,
      ...(signal ? { signal } : {}), ...(into ? { into } : {}),
    }))
  }

  /**
   * Issue 13 item 4: small units by the batch (POST UNITS_PATH), the bytes of the reply the NATS
   * `units` request gives, for the caller to decode and verify. A server of an earlier release
   * answers UPSWARM_E_NOT_FOUND (its port serves ranges only).
   */
  units(hashes: readonly string[], waitMs: number): Promise<Buffer> {
    const payload = Buffer.from(JSON.stringify({ hashes }))
    return this.renewing(() => this.exchange({
      path: UNITS_PATH, payload,
      headers: { 'content-type': 'application/json', 'content-length': String(payload.length) },
      status: 200, max: NODES_MAX_REPLY, waitMs,
      what: `a batch of ${hashes.length} units`,
    }))
  }

  /** `ask` once; if the ticket is refused (expired, the server restarted), one new offer and `ask` again. */
  private async renewing(ask: () => Promise<Buffer>): Promise<Buffer> {
    try {
      return await ask()
    } catch (err) {
      if (!(err instanceof UpswarmError) || err.code !== 'UPSWARM_E_AUTH') throw err
      await this.renewed()
      return ask()
    }
  }

  private async renewed(): Promise<void> {
    this.fresh ??= this.renew().finally(() => (this.fresh = undefined))
    const offer = await this.fresh
    if (offer.cert !== this.offer.cert || offer.url !== this.offer.url) {
      this.agent.destroy()
      this.agent = this.agentFor(offer)
    }
    this.offer = offer
  }

  /**
   * One request to the port with the current ticket (a POST when it has a `payload`): the body of
   * an answer with `status`, of at most `max` bytes, or the error the port answered. It gives up
   * after `waitMs`, and on `signal`: hanging up withdraws the request, and the server drops it
   * unsent if its turn has not come.
   */
  private exchange(o: {
    path: string; headers: Record<string, string>; payload?: Buffer; status: number; max: number; waitMs: number
    what: string; signal?: AbortSignal; into?: Buffer
  }): Promise<Buffer> {
    const { signal } = o
    signal?.throwIfAborted()
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false
      const done = (err: unknown, data?: Buffer): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (err) reject(err)
        else resolve(data!)
      }
      const req = request(new URL(o.path, this.offer.url), {
        ...(o.payload ? { method: 'POST' } : {}),
        agent: this.agent,
        headers: { authorization: `Bearer ${this.offer.ticket}`, ...o.headers, [WAIT_HEADER]: String(o.waitMs) },
      }, (res) => {
        if (res.statusCode === o.status) {
          // A response given up (timed out, withdrawn) writes no more into `into`: the caller reuses it.
          return body(res, o.max, o.into, () => !settled, (err, data) => {
            if (data) this.bytes += data.length
            done(err, data)
          })
        }
        errorBody(res, this.server, (err) => done(err))
      })
      const onAbort = (): void => {
        req.destroy()
        done(signal!.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      const timer = setTimeout(() => {
        req.destroy()
        done(new UpswarmError('UPSWARM_E_TIMEOUT', `${o.what} from server ${this.server}'s bulk port took longer than ${o.waitMs} ms`))
      }, o.waitMs)
      req.on('error', (err) => done(new BulkUnreachable(`server ${this.server}'s bulk port ${this.offer.url}: ${errorMessage(err)}`, { cause: err })))
      req.end(o.payload)
    })
  }

  close(): void {
    this.agent.destroy()
  }
}

/** The body of a 206 (or a units 200), of at most `max` bytes: into `into` when given (at least `max` long), else a new buffer. */
function body(res: IncomingMessage, max: number, into: Buffer | undefined, live: () => boolean, cb: (err: unknown, data?: Buffer) => void): void {
  const declared = Number(res.headers['content-length'])
  if (!Number.isInteger(declared) || declared < 0 || declared > max) {
    res.destroy()
    return cb(new UpswarmError('UPSWARM_E_PEER', `bulk port answered ${res.headers['content-length']} bytes where at most ${max} were asked`))
  }
  const out = into && into.length >= declared ? into.subarray(0, declared) : Buffer.allocUnsafe(declared)
  let at = 0
  res.on('data', (chunk: Buffer) => {
    if (!live()) return res.destroy()
    if (at + chunk.length > declared) return res.destroy(new Error('more bytes than its content-length'))
    chunk.copy(out, at)
    at += chunk.length
  })
  res.on('end', () => (at === declared ? cb(undefined, out) : cb(new UpswarmError('UPSWARM_E_PEER', `bulk port sent ${at} of ${declared} bytes`))))
  res.on('error', (err) => cb(new BulkUnreachable(`bulk port: ${errorMessage(err)}`, { cause: err })))
}

/** A JSON error answer, as the UpswarmError it names. */
function errorBody(res: IncomingMessage, server: string, cb: (err: unknown) => void): void {
  const parts: Buffer[] = []
  let size = 0
  res.on('data', (c: Buffer) => {
    size += c.length
    if (size <= 64 * 1024) parts.push(c)
  })
  res.on('error', (err) => cb(new BulkUnreachable(`bulk port: ${errorMessage(err)}`, { cause: err })))
  res.on('end', () => {
    let code: ErrorCode = 'UPSWARM_E_PEER'
    let message = `server ${server}'s bulk port answered ${res.statusCode}`
    try {
      const j = JSON.parse(Buffer.concat(parts).toString('utf8')) as { code?: string; message?: string }
      if (ERROR_CODES.includes(j.code as ErrorCode) && typeof j.message === 'string') {
        code = j.code as ErrorCode
        message = j.message
      }
    } catch { /* not ours: a peer error with the status */ }
    cb(new UpswarmError(code, message))
  })
}
