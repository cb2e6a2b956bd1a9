// `upswarm inspect` (issue 12 item 4): follows every process's inspection on `upswarm.inspect.>`
// and (a) serves a page on 127.0.0.1 that lists the live actors and draws each one's statechart
// from its definition, the current state highlighted, its states and recent events listed, live
// over server-sent events; (b) with `stately`, forwards every message to the Stately inspector
// through @statelyai/inspect's WebSocket inspector. Everything the page needs is served here.
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { StatelyInspectionEvent } from '@statelyai/inspect'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import { InspectionBoard } from '../../infra/inspect/board.ts'
import { checkStatelyInspectionEvent } from '../../infra/inspect/stately-events.ts'
import { isInspectionSummary } from '../../infra/inspect/summary.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { INSPECT_SUBJECTS, inspectSubjectParts } from '../../infra/nats/names.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'

const PAGE_DIR = join(PROJECT_ROOT, 'infra', 'inspect', 'page')
const PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/page.js': { file: 'page.js', type: 'text/javascript; charset=utf-8' },
}
/** A page that reads slower than this much is dropped (it reconnects and gets the board again). */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024
/** One line per subject at most this often about messages that are not inspection events. */
const REJECT_LOG_MS = 10_000

export interface InspectViewerOptions {
  nc: NatsConnection
  /** 0: any free port. */
  port: number
  host?: string
  /** Forward to the Stately inspector's WebSocket at this URL (e.g. ws://localhost:8080). */
  statelyUrl?: string
  log?: (line: string) => void
}

export interface InspectViewer {
  url: string
  board: InspectionBoard
  /** Messages taken / summaries kept / refused (not inspection events, or not on an inspection subject). */
  counts: { taken: number; summaries: number; refused: number }
  close(): Promise<void>
}

export async function startInspectViewer(opts: InspectViewerOptions): Promise<InspectViewer> {
  const log = opts.log ?? (() => {})
  const host = opts.host ?? '127.0.0.1'
  const board = new InspectionBoard()
  const counts = { taken: 0, summaries: 0, refused: 0 }
  const pages = new Set<ServerResponse>()
  const page = Object.fromEntries(await Promise.all(Object.entries(PAGE_FILES).map(async ([path, f]) =>
    [path, { body: await readFile(join(PAGE_DIR, f.file)), type: f.type }] as const)))

  const stately = opts.statelyUrl ? await statelyForwarder(opts.statelyUrl) : undefined
  const lastRejectLog = new Map<string, number>()
  const refuse = (subject: string, reason: string): void => {
    counts.refused++
    const now = Date.now()
    if (now - (lastRejectLog.get(subject) ?? 0) < REJECT_LOG_MS) return
    lastRejectLog.set(subject, now)
    log(`skipped a message on ${subject}: ${reason}`)
  }

  const sub = opts.nc.subscribe(INSPECT_SUBJECTS, {
    callback: (err, msg) => {
      if (err) {
        log(`subscription to ${INSPECT_SUBJECTS} failed: ${errorMessage(err)}`)
        return
      }
      const from = inspectSubjectParts(msg.subject)
      if (!from) return refuse(msg.subject, 'not an inspection subject (upswarm.inspect.<role>.<id>)')
      let parsed: unknown
      try {
        parsed = JSON.parse(msg.string())
      } catch (e) {
        return refuse(msg.subject, `not JSON (${errorMessage(e)})`)
      }
      const process = `${from.role}.${from.id}`
      // A process's own count of what it sent and left out: kept per process, not a Stately shape.
      if (isInspectionSummary(parsed)) {
        counts.summaries++
        board.summarize(process, parsed)
        const line = `event: summary\ndata: ${JSON.stringify({ process, summary: parsed })}\n\n`
        for (const res of pages) res.write(line)
        return
      }
      const checked = checkStatelyInspectionEvent(parsed)
      if (!checked.ok) return refuse(msg.subject, `not an inspection event: ${checked.reason}`)
      counts.taken++
      const view = board.apply(process, checked.event)
      // An actor whose process sent its machine's definition with an earlier actor: filled in here.
      const event = checked.event.type === '@xstate.actor' && checked.event.definition === undefined ? { ...checked.event, definition: view.definition } : checked.event
      stately?.send(event)
      const line = `event: inspect\ndata: ${JSON.stringify({ process, message: event })}\n\n`
      for (const res of pages) {
        if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy()
        else res.write(line)
      }
    },
  })

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`${req.method} is not served here: GET ${Object.keys(PAGE_FILES).join(', ')}, /state or /events`)
      return
    }
    const file = page[path]
    if (file) {
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body)
    } else if (path === '/state') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ actors: board.list(), summaries: board.summaries(), counts }))
    } else if (path === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
      res.write(`retry: 1000\nevent: board\ndata: ${JSON.stringify({ actors: board.list() })}\n\n`)
      pages.add(res)
      res.on('close', () => pages.delete(res))
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`${path}: not here; the page is /`)
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UpswarmError('UPSWARM_E_CONFIG', `inspect: cannot listen on ${host}:${opts.port}: ${errorMessage(err)}; choose a free --port`, { cause: err })))
    server.listen(opts.port, host, () => resolve())
  })
  await opts.nc.flush()
  const { port } = server.address() as AddressInfo

  return {
    url: `http://${host}:${port}/`,
    board,
    counts,
    close: async () => {
      sub.unsubscribe()
      stately?.stop()
      for (const res of pages) res.end()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * The Stately inspector's side: @statelyai/inspect's WebSocket inspector, whose adapter takes the
 * messages as they are (they already have its shapes); it holds up to 200 while the socket is not
 * open and reconnects on its own.
 */
async function statelyForwarder(url: string): Promise<{ send(m: StatelyInspectionEvent): void; stop(): void }> {
  if (!/^wss?:\/\//.test(url)) throw new UpswarmError('UPSWARM_E_CONFIG', `--stately ${url}: expected a ws:// or wss:// URL (the Stately inspector's WebSocket, e.g. ws://localhost:8080)`)
  const { createWebSocketInspector } = await import('@statelyai/inspect')
  const inspector = createWebSocketInspector({ url })
  return { send: (m) => inspector.adapter.send(m), stop: () => inspector.stop() }
}
