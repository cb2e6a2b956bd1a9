// Issue 14 item 2: the client's side of a repository server's bulk port (actors/repo-server/bulk.ts).
// Ranges over HTTPS keep-alive connections to the one server, its certificate pinned from the offer
// the server gave over NATS; errors come back as the UpswarmErrors the NATS range request gives,
// so the caller handles busy, not-found and withdrawn ranges the same way on either path.
import { ERROR_CODES, UpswarmError, type ErrorCode } from '../errors.ts'
import { NODES_MAX_REPLY } from '../formats/meta-wire.ts'
import { BLOB_PATH, UNITS_PATH, WAIT_HEADER, fingerprintOf, type BulkOffer } from './bulk-wire.ts'
import { HttpsUnreachable, PinnedHttps, PoolClosed, type HttpsAnswer } from './pinned-https.ts'

/** Ranges in flight to one server over its bulk port (each on its own keep-alive connection). */
const MAX_SOCKETS = 8

/** The bulk port could not be used at all (refused, reset, a certificate that is not the one offered): use NATS. */
export class BulkUnreachable extends Error {
  override readonly name = 'BulkUnreachable'
}

export class BulkReader {
  private offer: BulkOffer
  private https: PinnedHttps
  private fresh: Promise<BulkOffer> | undefined
  /** Bytes received over the bulk port. */
  bytes = 0

  constructor(offer: BulkOffer, private readonly server: string, private readonly renew: () => Promise<BulkOffer>) {
    this.offer = offer
    this.https = this.connectionsFor(offer)
  }

  private connectionsFor(offer: BulkOffer): PinnedHttps {
    const pinned = fingerprintOf(offer.cert)
    // Trust exactly the certificate the server offered over NATS, whatever host name it is reached by.
    return new PinnedHttps(new URL(offer.url), offer.cert, (cert) => (cert.fingerprint256 === pinned ? undefined : new Error(`server ${this.server}'s bulk port showed certificate ${cert.fingerprint256}, not the one it offered over NATS (${pinned})`)), MAX_SOCKETS)
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
      headers: { 'content-type': 'application/json' },
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
      this.https.close()
      this.https = this.connectionsFor(offer)
    }
    this.offer = offer
  }

  /**
   * One request to the port with the current ticket (a POST when it has a `payload`): the body of
   * an answer with `status`, of at most `max` bytes, or the error the port answered. It gives up
   * after `waitMs`, and on `signal`: hanging up withdraws the request, and the server drops it
   * unsent if its turn has not come. A response given up writes no more into `into`: the caller reuses it.
   */
  private async exchange(o: {
    path: string; headers: Record<string, string>; payload?: Buffer; status: number; max: number; waitMs: number
    what: string; signal?: AbortSignal; into?: Buffer
  }): Promise<Buffer> {
    let answer: HttpsAnswer
    const https = this.https
    try {
      answer = await https.exchange({
        method: o.payload ? 'POST' : 'GET', path: o.path, status: o.status, max: o.max,
        headers: { authorization: `Bearer ${this.offer.ticket}`, ...o.headers, [WAIT_HEADER]: String(o.waitMs) },
        ...(o.payload ? { payload: o.payload } : {}), ...(o.into ? { into: o.into } : {}),
      }, {
        waitMs: o.waitMs,
        timeout: () => new UpswarmError('UPSWARM_E_TIMEOUT', `${o.what} from server ${this.server}'s bulk port took longer than ${o.waitMs} ms`),
        ...(o.signal ? { signal: o.signal } : {}),
      })
    } catch (err) {
      // Waiting for a connection of a pool a renewed offer replaced: ask the new one.
      if (err instanceof PoolClosed && this.https !== https) return this.exchange(o)
      if (err instanceof HttpsUnreachable) throw new BulkUnreachable(`server ${this.server}'s bulk port ${this.offer.url}: ${err.message}`, { cause: err })
      throw err
    }
    if (answer.status !== o.status) throw errorAnswer(answer, this.server)
    this.bytes += answer.body.length
    return answer.body
  }

  close(): void {
    this.https.close()
  }
}

/** A JSON error answer, as the UpswarmError it names. */
function errorAnswer(answer: HttpsAnswer, server: string): UpswarmError {
  try {
    const j = JSON.parse(answer.body.toString('utf8')) as { code?: string; message?: string }
    if (ERROR_CODES.includes(j.code as ErrorCode) && typeof j.message === 'string') return new UpswarmError(j.code as ErrorCode, j.message)
  } catch { /* not ours: a peer error with the status */ }
  return new UpswarmError('UPSWARM_E_PEER', `server ${server}'s bulk port answered ${answer.status}`)
}
