// The file monitor of a working copy (issue 13 item 2): `upswarm monitor DIR`, and the sharing
// daemon runs one for its copy. It watches the tree (infra/store/working-copy/tree-watch.ts) as
// its statechart says (machines/tree-monitor.machine.ts) and answers on the copy's Unix socket
// (monitor-wire.ts) what changed since a token; `status` then lstats only that. Local only: the
// socket is a file of mode 0600 in the copy's metadata folder, so only the copy's owner asks.
import { existsSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { resolve } from 'node:path'
import { createActor, fromPromise, type ActorRefFrom } from 'xstate'
import { UpswarmError } from '../../infra/errors.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { META_DIR } from '../../infra/release/manifest-core.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { listenOwnerOnly, MAX_SOCKET_PATH } from '../../infra/store/working-copy/owner-socket.ts'
import { askMonitor, MAX_QUESTION_BYTES, parseQuestion } from '../../infra/store/working-copy/monitor-wire.ts'
import { TreeWatch, type TreeWatchOptions } from '../../infra/store/working-copy/tree-watch.ts'
import { treeMonitorMachine } from '../../machines/tree-monitor.machine.ts'

export interface MonitorOptions {
  dir: string
  log?: (line: string) => void
  /** Tuning of the watch (tests: a small burst limit). */
  watch?: Pick<TreeWatchOptions, 'burstLimit' | 'maxPaths' | 'cookieTimeoutMs'>
}

export interface Monitor {
  socket: string
  /** Directories watched. */
  directories(): number
  /** The statechart's state: walking, watching, failed or stopped. */
  state(): string
  /** Walks done so far (the first included). */
  walks(): number
  /** Settles when the monitor stops on its own (a failed walk), with the reason. */
  failed: Promise<Error>
  close(): Promise<void>
}

function answerer(watch: TreeWatch) {
  return (conn: Socket): void => {
    let got = ''
    conn.setEncoding('utf8')
    conn.on('error', () => conn.destroy())
    conn.on('data', (chunk: string) => {
      got += chunk
      const nl = got.indexOf('\n')
      if (nl < 0) {
        if (got.length > MAX_QUESTION_BYTES) conn.end(`${JSON.stringify({ error: `a question is at most ${MAX_QUESTION_BYTES} bytes` })}\n`)
        return
      }
      conn.removeAllListeners('data')
      const q = parseQuestion(got.slice(0, nl))
      if (typeof q === 'string') {
        conn.end(`${JSON.stringify({ error: `bad question: ${q}` })}\n`)
        return
      }
      watch.changes(q.since).then(
        (a) => conn.end(`${JSON.stringify(a)}\n`),
        (err: unknown) => conn.end(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`),
      )
    })
  }
}

/** Starts watching `dir` (a working copy) and answering on its socket; resolves once the first walk is done. */
export async function startMonitor(opts: MonitorOptions): Promise<Monitor> {
  const log = opts.log ?? (() => {})
  const layout = layoutOf(resolve(opts.dir))
  if (!existsSync(layout.meta)) throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${layout.root} is not an upswarm working copy (no ${META_DIR}/)`)
  const socket = layout.monitorSocket
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `the monitor's socket path ${socket} is ${Buffer.byteLength(socket)} bytes, over the ${MAX_SOCKET_PATH} a Unix socket allows: status walks the tree of this copy`)
  }
  // One monitor per copy: a socket that answers belongs to a running one; one that does not is stale.
  const other = await askMonitor(socket, null, 2_000)
  if ('answer' in other || other.none !== 'no monitor runs') {
    throw new UpswarmError('UPSWARM_E_CONFIG', `a monitor already answers on ${socket}${'none' in other ? ` (${other.none})` : ''}`)
  }
  rmSync(socket, { force: true })

  let actor: ActorRefFrom<typeof treeMonitorMachine> | undefined
  const watch = new TreeWatch({
    root: layout.root, skip: META_DIR, cookies: layout.monitorCookies, ...opts.watch,
    onLost: (why) => {
      log(`monitor: ${why}; walking the tree again (the next status lstats every path)`)
      actor?.send({ type: 'watch.lost', why })
    },
  })
  const running = createActor(treeMonitorMachine.provide({
    actors: { walk: fromPromise(() => watch.walk()) },
  }), inspection())
  actor = running
  let failedWith: (err: Error) => void = () => {}
  const failed = new Promise<Error>((r) => (failedWith = r))
  const server: Server = createServer(answerer(watch))
  const firstWalk = new Promise<void>((ok, fail) => {
    running.subscribe((snap) => {
      if (snap.matches('watching')) ok()
      if (snap.matches('failed')) {
        const err = new UpswarmError('UPSWARM_E_IO', `the monitor of ${layout.root} stopped: ${snap.context.error}`)
        fail(err)
        failedWith(err)
        watch.close()
        server.close()
        rmSync(socket, { force: true })
      }
    })
  })
  running.start()
  await firstWalk
  await listenOwnerOnly(server, socket)
  log(`monitor: watching ${watch.directories} directories of ${layout.root}; answering on ${socket}`)
  return {
    socket,
    directories: () => watch.directories,
    state: () => String(running.getSnapshot().value),
    walks: () => running.getSnapshot().context.walks,
    failed,
    close: async () => {
      running.send({ type: 'stop' })
      watch.close()
      await new Promise<void>((r) => server.close(() => r()))
      rmSync(socket, { force: true })
    },
  }
}
