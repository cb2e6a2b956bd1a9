// Issue 14 item 2: the repository server's bulk port. Blob ranges go over HTTPS straight from the
// server's disk to the client (one read, one TLS write), where a NATS range reply crosses the
// cluster's routes as 1 MiB messages copied several times. NATS stays the control plane: a client
// gets the port's URL, its self-signed certificate and a ticket from the server's `bulk` request
// (infra/http/bulk-wire.ts), and each range takes its turn of the same upload limit, answers busy
// the same way, and is dropped unsent when its client hangs up first (the withdrawal of issue 14).
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
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
const BLOB_RE = /^[0-9a-f]{64}$/

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

/**
 * What a request waits for its answer (its WAIT_HEADER, bounded), and a signal that fires when its
 * client hangs up before the answer is sent: a request withdrawn before its turn is dropped unsent.
 */
function askedOf(req: IncomingMessage, res: ServerResponse): { waitMs?: number; hangUp: AbortController } {
  const wait = req.headers[WAIT_HEADER]
  const hangUp = new AbortController()
  res.once('close', () => { if (!res.writableFinished) hangUp.abort() })
  return { ...(typeof wait === 'string' && /^\d{1,9}$/.test(wait) ? { waitMs: Math.min(Number(wait), MAX_WAIT_MS) } : {}), hangUp }
}

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
  /** Buffers for ranges of a piece or less, reused: no garbage per range for the collector. */
  const spare = new BufferPool(SPARE_SIZE, MAX_SPARE)
  // Tickets die with the process: a restarted server hands out new ones (clients ask again on 401).
  const key = randomBytes(32)
  const fail = (res: ServerResponse, err: UpswarmError): void => {
    if (res.headersSent) return void res.destroy()
    const body = JSON.stringify(err.toJSON())
    res.writeHead(err.code === 'UPSWARM_E_AUTH' ? 401 : (STATUS_OF[err.code] ?? 500), { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0]!
    const units = req.method === 'POST' && path === UNITS_PATH && opts.serveUnits
    const sha256 = path.startsWith(BLOB_PATH) ? path.slice(BLOB_PATH.length) : ''
    if (!units && (req.method !== 'GET' || !BLOB_RE.test(sha256))) {
      throw new UpswarmError('UPSWARM_E_NOT_FOUND', `server ${opts.id}'s bulk port serves GET ${BLOB_PATH}<sha256>${opts.serveUnits ? ` and POST ${UNITS_PATH}` : ''} only (got ${req.method} ${path.slice(0, 100)})`)
    }
    const auth = req.headers.authorization
    if (!ticketValid(key, opts.id, auth?.startsWith('Bearer ') ? auth.slice(7) : undefined)) {
      throw new UpswarmError('UPSWARM_E_AUTH', `server ${opts.id}'s bulk port needs a current ticket (ask the server's bulk request over NATS)`)
    }
    if (units) return handleUnits(req, res, units)
    const range = RANGE_RE.exec(req.headers.range ?? '')
    const offset = range ? Number(range[1]) : -1
    const length = range ? Number(range[2]) - offset + 1 : 0
    if (!range || length < 1 || length > opts.maxRange) {
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a bulk request names one range of 1 to ${opts.maxRange} bytes (Range: bytes=a-b), got ${JSON.stringify(req.headers.range ?? null)}`)
    }
    const { waitMs, hangUp } = askedOf(req, res)
    // A range of a piece or less is read into a buffer of the port's own, taken back once sent.
    const into = length <= SPARE_SIZE ? spare.take() : undefined
    const giveBack = (): void => {
      if (into) spare.give(into)
    }
    let bytes: Buffer
    try {
      bytes = await opts.serve({ sha256, offset, length, ...(waitMs !== undefined ? { waitMs } : {}), signal: hangUp.signal, ...(into ? { into } : {}) })
    } catch (err) {
      giveBack()
      throw err
    }
    if (hangUp.signal.aborted) return giveBack()
    res.writeHead(206, {
      'content-type': 'application/octet-stream',
      'content-length': bytes.length,
      'content-range': `bytes ${offset}-${offset + bytes.length - 1}/*`,
    })
    // Sent, or the connection gone: either way the socket holds no more of it.
    res.once('close', giveBack)
    res.end(bytes)
  }
  /** POST UNITS_PATH: the hashes asked (a bounded JSON body), answered with the NATS `units` reply's bytes. */
  const handleUnits = async (req: IncomingMessage, res: ServerResponse, serveUnits: ServeUnits): Promise<void> => {
    const parts: Buffer[] = []
    let size = 0
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > UNITS_BODY_MAX) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a units request is at most ${UNITS_BODY_MAX} bytes`)
      parts.push(chunk)
    }
    let asked: UnitsRequest
    try {
      asked = UnitsRequest.parse(JSON.parse(Buffer.concat(parts).toString('utf8')))
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a units request is {"hashes": [up to 1024 SHA-256 in hex]}: ${errorMessage(err).slice(0, 300)}`)
    }
    const { waitMs, hangUp } = askedOf(req, res)
    const bytes = await serveUnits({ hashes: asked.hashes, ...(waitMs !== undefined ? { waitMs } : {}), signal: hangUp.signal })
    if (hangUp.signal.aborted) return
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length })
    res.end(bytes)
  }
  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (isUpswarmError(err)) return fail(res, err)
      opts.log(`bulk port: ${req.method} ${req.url?.slice(0, 100)} failed: ${errorMessage(err)}`)
      fail(res, new UpswarmError('UPSWARM_E_IO', `server ${opts.id} could not serve ${req.url?.slice(0, 100)}: ${errorMessage(err)}`))
    })
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
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
