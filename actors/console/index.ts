// `upswarm console` (issue 16 item 4): the fleet console, a page on 127.0.0.1. Its sampler
// (machines/console-sampler.machine.ts) reads the fleet view, the server pool and the alerts
// every interval and keeps a bounded series of the clients per revision; the page polls
// GET /api/state and draws it (no CDN: everything it loads is served here). Its controls POST
// /api/rollout, signed here with the key the console holds. Secure by default: it binds
// 127.0.0.1 only, every request must name this host (no DNS rebinding), the data and the controls
// need the per-run token the READY line prints (Jupyter's way), a control is a POST with a JSON
// body and the token in a header (another local page cannot send one without a CORS preflight,
// which is never answered), and bad input is refused with a message and changes nothing.
// The data sources (fleet view, rollout, pool stats, alerts) are given by the command that starts
// it (actors/cli/console.ts): this role imports no other role (issue 12 item 1). What it shows: the
// pool the proxy balances over and each server's synced revisions (R-PROXY, R-SERVER), the bytes
// clients took from peers against servers (R-ACCEL-2), and the administrators' alerts (R-STATUS-3).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createActor, fromPromise } from 'xstate'
import { z } from 'zod'
import { UpswarmError, errorMessage, isUpswarmError, type ErrorCode } from '../../infra/errors.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { consoleSamplerMachine, type ConsoleReading, type FleetCounts } from '../../machines/console-sampler.machine.ts'

const PAGE_DIR = join(PROJECT_ROOT, 'actors', 'console', 'page')
const PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/page.js': { file: 'page.js', type: 'text/javascript; charset=utf-8' },
  '/page.css': { file: 'page.css', type: 'text/css; charset=utf-8' },
}
/** The largest control request body: a control is a few short fields. */
const MAX_BODY_BYTES = 4096
/** Alerts the page lists (the newest). */
const MAX_ALERTS = 50
/** How far back the first reading looks for alerts. */
const ALERTS_SINCE_MS = 24 * 3_600_000
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
/** Sent with every answer: nothing may frame the page (its controls), load anything from elsewhere, or learn the token from a Referer. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
}

/** What the console reads of the fleet view (actors/operator/fleet.ts `fleetView`); the rest of it goes to the page as it is. */
export interface ConsoleFleet {
  products: Array<{ product: string; releases: Array<{ rev: number; clients: string[] }> }>
}

export interface ConsoleAlert { seq: number; time: string; product: string; from: string; body: unknown }

/** One step of a release's rollout; percent in basis points (10000: the whole fleet), as `upswarm rollout` takes it. */
export type ConsoleRolloutAction = { percent: number } | { pause: true } | { resume: true; percent?: number } | { halt: true }

export interface ConsoleSources {
  fleet(): Promise<ConsoleFleet>
  /** The server pool as the proxy sees it (`upswarm stats`). */
  pool(): Promise<unknown>
  /** Alerts stored since `sinceMs`, oldest first. */
  alerts(sinceMs: number): Promise<ConsoleAlert[]>
  /** Signs and appends one rollout statement; throws UpswarmError (unknown product, revision, key not named…) and appends nothing. */
  rollout(r: { product: string; rev: number; action: ConsoleRolloutAction }): Promise<unknown>
}

export interface ConsoleOptions {
  sources: ConsoleSources
  /** Whether the controls can sign (a key was given), and if not, why: the page shows them disabled with the reason. */
  controls: { enabled: true; keys: string[] } | { enabled: false; reason: string }
  /** 0: any free port. */
  port: number
  /** The inspection page (`upswarm inspect`), linked from the page when known. */
  inspectUrl?: string
  sampleIntervalMs?: number
  /** Points the series keeps (default: an hour at the default interval). */
  maxPoints?: number
  /** The token (default: 24 random bytes, base64url). */
  token?: string
  log?: (line: string) => void
}

export interface FleetConsole {
  /** The page, with the token: what the READY line prints. */
  url: string
  /** The page without the token (endpoints.json). */
  origin: string
  token: string
  close(): Promise<void>
}

export const DEFAULT_SAMPLE_INTERVAL_MS = 5_000

/** What one reading holds for the page besides the counts. */
interface ReadingData {
  fleet: ConsoleFleet
  pool: unknown
  poolError?: string
  alerts: ConsoleAlert[]
  alertsError?: string
}

/** Clients per revision of each product, for the series. */
export function fleetCounts(fleet: ConsoleFleet): FleetCounts {
  return Object.fromEntries(fleet.products.map((p) => [p.product, Object.fromEntries(p.releases.filter((r) => r.clients.length > 0).map((r) => [String(r.rev), r.clients.length]))]))
}

const ControlSchema = z.object({
  product: z.string(),
  rev: z.number(),
  action: z.enum(['percent', 'pause', 'resume', 'halt']),
  percent: z.number().optional(),
}).strict()

/**
 * A control request as the page sends it, checked field by field: each refusal names the field
 * and what it takes. Percent is a share of the fleet from 0 to 100 with up to two decimals.
 */
export function parseControl(body: unknown): { product: string; rev: number; action: ConsoleRolloutAction } {
  const parsed = ControlSchema.safeParse(body)
  if (!parsed.success) {
    const i = parsed.error.issues[0]!
    throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `control request: ${i.path.join('.') || 'body'}: ${i.message} (expected {"product": UUID, "rev": N, "action": "percent"|"pause"|"resume"|"halt", "percent": 0-100})`)
  }
  const c = parsed.data
  if (!UUID.test(c.product)) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `product ${JSON.stringify(c.product)}: expected a lowercase product UUID`)
  if (!Number.isInteger(c.rev) || c.rev < 1) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `revision ${c.rev}: expected a whole number from 1 up`)
  let basisPoints: number | undefined
  if (c.percent !== undefined) {
    const bp = Math.round(c.percent * 100)
    if (!(c.percent >= 0 && c.percent <= 100) || Math.abs(c.percent * 100 - bp) > 1e-6) {
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `percent ${c.percent}: the share of the fleet is from 0 to 100, with at most two decimals`)
    }
    basisPoints = bp
  }
  if (c.action === 'percent' && basisPoints === undefined) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', 'action "percent" needs "percent": the share of the fleet, 0-100')
  if ((c.action === 'pause' || c.action === 'halt') && basisPoints !== undefined) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `action "${c.action}" takes no percent (it keeps the rollout's share)`)
  const action: ConsoleRolloutAction = c.action === 'percent' ? { percent: basisPoints! }
    : c.action === 'pause' ? { pause: true }
      : c.action === 'halt' ? { halt: true }
        : { resume: true, ...(basisPoints !== undefined ? { percent: basisPoints } : {}) }
  return { product: c.product, rev: c.rev, action }
}

/** The HTTP status of a refused control, by error code. */
function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'UPSWARM_E_BAD_REQUEST':
    case 'UPSWARM_E_CONFIG':
      return 400
    case 'UPSWARM_E_SIGNATURE':
    case 'UPSWARM_E_PERMISSION':
      return 403
    case 'UPSWARM_E_UNKNOWN_REVISION':
    case 'UPSWARM_E_NOT_FOUND':
      return 404
    case 'UPSWARM_E_CONFLICT':
      return 409
    default:
      return 500
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

export async function startConsole(opts: ConsoleOptions): Promise<FleetConsole> {
  const log = opts.log ?? (() => {})
  const host = '127.0.0.1'
  const token = opts.token ?? randomBytes(24).toString('base64url')
  const tokenDigest = digest(token)
  const tokenOk = (given: string | null | undefined): boolean => typeof given === 'string' && timingSafeEqual(digest(given), tokenDigest)
  const startedAt = new Date().toISOString()
  const intervalMs = opts.sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS
  const page = Object.fromEntries(await Promise.all([['/', { file: 'index.html', type: 'text/html; charset=utf-8' }] as const, ...Object.entries(PAGE_FILES)].map(async ([path, f]) =>
    [path, { body: await readFile(join(PAGE_DIR, f.file)), type: f.type }] as const)))
  const { sources } = opts

  const sampler = createActor(consoleSamplerMachine.provide({
    actors: {
      sample: fromPromise<ConsoleReading, { previous: ConsoleReading | null }>(async ({ input }) => {
        const at = new Date().toISOString()
        const fleet = await sources.fleet()
        const data: ReadingData = { fleet, pool: null, alerts: [] }
        await Promise.all([
          sources.pool().then((p) => { data.pool = p }, (err: unknown) => { data.poolError = errorMessage(err) }),
          // New alerts since the newest one held (the stream keeps time order); the newest MAX_ALERTS stay.
          (async () => {
            const held = (input.previous?.data as ReadingData | undefined)?.alerts ?? []
            const since = held.length ? Date.parse(held[held.length - 1]!.time) : Date.now() - ALERTS_SINCE_MS
            const newest = held.length ? held[held.length - 1]!.seq : 0
            data.alerts = [...held, ...(await sources.alerts(since)).filter((a) => a.seq > newest)].slice(-MAX_ALERTS)
          })().catch((err: unknown) => { data.alertsError = errorMessage(err); data.alerts = (input.previous?.data as ReadingData | undefined)?.alerts ?? [] }),
        ])
        return { at, counts: fleetCounts(fleet), data }
      }),
    },
  }), { input: { intervalMs, maxPoints: opts.maxPoints ?? Math.ceil(3_600_000 / intervalMs) }, ...inspection() })
  sampler.subscribe({ error: (err) => log(`sampler stopped: ${errorMessage(err)}`) })

  const state = (): Record<string, unknown> => {
    const { context: c } = sampler.getSnapshot()
    const data = c.latest?.data as ReadingData | undefined
    return {
      v: 1,
      console: { startedAt, sampleIntervalMs: intervalMs, readings: c.readings, ...(c.error ? { error: c.error } : {}) },
      at: c.latest?.at ?? null,
      fleet: data?.fleet ?? null,
      pool: data?.pool ?? null,
      ...(data?.poolError ? { poolError: data.poolError } : {}),
      alerts: data?.alerts ?? [],
      ...(data?.alertsError ? { alertsError: data.alertsError } : {}),
      series: c.series,
      controls: opts.controls,
      inspectUrl: opts.inspectUrl ?? null,
    }
  }

  let port = opts.port
  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer): void => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type }).end(body)
  }
  const json = (res: ServerResponse, status: number, body: unknown): void => send(res, status, 'application/json; charset=utf-8', JSON.stringify(body))
  const refuse = (res: ServerResponse, status: number, code: ErrorCode, message: string): void => json(res, status, { error: { code, message } })

  const control = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // A page elsewhere can only send a "simple" cross-origin request (no custom header, a form's
    // content type); this one needs both, and a browser that sends an Origin says whose it is.
    const origin = req.headers.origin
    if (origin !== undefined && origin !== `http://${host}:${port}` && origin !== `http://localhost:${port}`) {
      return refuse(res, 403, 'UPSWARM_E_PERMISSION', `a control request from ${origin}: only the console's own page (http://${host}:${port}) may use the controls`)
    }
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      return refuse(res, 415, 'UPSWARM_E_BAD_REQUEST', `a control request is a JSON body (content-type: application/json), not ${req.headers['content-type'] ?? 'no content type'}`)
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > MAX_BODY_BYTES) return refuse(res, 413, 'UPSWARM_E_BAD_REQUEST', `a control request is at most ${MAX_BODY_BYTES} bytes`)
      chunks.push(chunk)
    }
    let body: unknown
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch (err) {
      return refuse(res, 400, 'UPSWARM_E_BAD_REQUEST', `control request: the body is not JSON (${errorMessage(err)})`)
    }
    if (!opts.controls.enabled) return refuse(res, 403, 'UPSWARM_E_CONFIG', `the controls are off: ${opts.controls.reason}`)
    try {
      const c = parseControl(body)
      const result = await sources.rollout(c)
      log(`rollout of ${c.product} r${c.rev}: ${JSON.stringify(c.action)} (from the page)`)
      sampler.send({ type: 'sample.now' })
      json(res, 200, { ok: true, result })
    } catch (err) {
      const code: ErrorCode = isUpswarmError(err) ? err.code : 'UPSWARM_E_NATS'
      refuse(res, statusOf(code), code, errorMessage(err))
    }
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    // DNS rebinding: a name that resolves to 127.0.0.1 would otherwise make this page same-origin with another site.
    if (req.headers.host !== `${host}:${port}` && req.headers.host !== `localhost:${port}`) {
      return refuse(res, 403, 'UPSWARM_E_PERMISSION', `Host ${JSON.stringify(req.headers.host ?? '')} is not this console: open http://${host}:${port}/`)
    }
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1]
    const asset = PAGE_FILES[url.pathname] ? page[url.pathname] : undefined
    if (req.method === 'GET' && asset) return send(res, 200, asset.type, asset.body)
    if (url.pathname === '/') {
      if (req.method !== 'GET') return refuse(res, 405, 'UPSWARM_E_BAD_REQUEST', `${req.method} /: the page is GET`)
      if (!tokenOk(url.searchParams.get('token'))) {
        return send(res, 401, 'text/plain; charset=utf-8', 'This console needs its token: open the URL `upswarm console` printed (…/?token=…; `up` writes it to D/auth/console-token).\n')
      }
      return send(res, 200, page['/']!.type, page['/']!.body)
    }
    if (url.pathname === '/api/state' || url.pathname === '/api/rollout') {
      if (!tokenOk(bearer)) return refuse(res, 401, 'UPSWARM_E_AUTH', `${url.pathname} needs the console's token: Authorization: Bearer TOKEN (the token= of the URL the console printed)`)
      if (url.pathname === '/api/state') {
        if (req.method !== 'GET') return refuse(res, 405, 'UPSWARM_E_BAD_REQUEST', `${req.method} /api/state: it is GET`)
        return json(res, 200, state())
      }
      if (req.method !== 'POST') return refuse(res, 405, 'UPSWARM_E_BAD_REQUEST', `${req.method} /api/rollout: a control is a POST`)
      control(req, res).catch((err: unknown) => refuse(res, 500, 'UPSWARM_E_IO', errorMessage(err)))
      return
    }
    return refuse(res, 404, 'UPSWARM_E_NOT_FOUND', `${url.pathname}: not here; the page is /?token=…, its data GET /api/state, the controls POST /api/rollout`)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UpswarmError('UPSWARM_E_CONFIG', `console: cannot listen on ${host}:${opts.port}: ${errorMessage(err)}; choose a free --port`, { cause: err })))
    server.listen(opts.port, host, () => resolve())
  })
  port = (server.address() as AddressInfo).port
  sampler.start()
  const origin = `http://${host}:${port}/`
  return {
    url: `${origin}?token=${token}`,
    origin,
    token,
    close: async () => {
      sampler.send({ type: 'stop' })
      sampler.stop()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
