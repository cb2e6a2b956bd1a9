// The sharing daemon's control socket (issue 15 item 4): `upswarm update DIR` hands the run to
// the daemon that serves DIR, which already holds NATS, the swarm, the trusted root and the tree,
// and is the one writer of its copy (infra/store/working-copy/control-wire.ts says what is said).
// Local only: the socket is a file of mode 0600 in the copy's metadata folder.
import { existsSync, rmSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { resolve } from 'node:path'
import { errorMessage, isUpswarmError, UpswarmError } from '../../infra/errors.ts'
import { META_DIR } from '../../infra/release/manifest-core.ts'
import { MAX_CONTROL_QUESTION_BYTES, parseControlQuestion, type ControlUpdate } from '../../infra/store/working-copy/control-wire.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { listenOwnerOnly, MAX_SOCKET_PATH } from '../../infra/store/working-copy/owner-socket.ts'
import { mark } from '../../infra/timings.ts'

export interface ControlOptions {
  dir: string
  /** Runs one update, as the daemon's `updateNow` does. */
  update: (request: ControlUpdate) => Promise<object>
  log?: (line: string) => void
}

export interface Control {
  socket: string
  close(): Promise<void>
}

/** Is something listening on `socket`? (A socket file nobody listens on is left by a killed daemon.) */
async function answers(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false
  const { createConnection } = await import('node:net')
  return new Promise((ok) => {
    const c = createConnection(socket)
    c.once('connect', () => {
      c.destroy()
      ok(true)
    })
    c.once('error', () => ok(false))
  })
}

const line = (o: object): string => `${JSON.stringify(o)}\n`
const errorJson = (err: unknown): { code: string; message: string } =>
  isUpswarmError(err) ? { code: err.code, message: err.message } : { code: 'UPSWARM_E_IO', message: errorMessage(err) }

/** Answers `update` on the copy's control socket until closed. */
export async function serveControl(opts: ControlOptions): Promise<Control> {
  const log = opts.log ?? (() => {})
  const layout = layoutOf(resolve(opts.dir))
  if (!existsSync(layout.meta)) throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${layout.root} is not an upswarm working copy (no ${META_DIR}/)`)
  const socket = layout.controlSocket
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `the daemon's control socket path ${socket} is ${Buffer.byteLength(socket)} bytes, over the ${MAX_SOCKET_PATH} a Unix socket allows: \`upswarm update\` of this copy runs on its own`)
  }
  if (await answers(socket)) throw new UpswarmError('UPSWARM_E_CONFIG', `another sharing daemon already answers on ${socket}`)
  rmSync(socket, { force: true })
  const open = new Set<Socket>()
  const server = createServer((conn) => {
    open.add(conn)
    conn.on('close', () => open.delete(conn))
    conn.on('error', () => conn.destroy())
    let got = ''
    let taken = false
    conn.setEncoding('utf8')
    conn.on('data', (chunk: string) => {
      if (taken) return
      got += chunk
      const nl = got.indexOf('\n')
      if (nl < 0) {
        if (got.length > MAX_CONTROL_QUESTION_BYTES) conn.end(line({ error: { code: 'UPSWARM_E_BAD_REQUEST', message: `a question is at most ${MAX_CONTROL_QUESTION_BYTES} bytes` } }))
        return
      }
      taken = true
      const q = parseControlQuestion(got.slice(0, nl))
      if (typeof q === 'string') return void conn.end(line({ error: { code: 'UPSWARM_E_BAD_REQUEST', message: `the daemon's control socket takes {"update": {...}}: ${q}` } }))
      mark('control: update asked')
      conn.write(line({ accepted: true }))
      log(`control: update${q.update.rev !== undefined ? ` to r${q.update.rev}` : ''} asked on ${socket}`)
      // The run goes on if the command goes away: the daemon is the copy's writer either way.
      opts.update(q.update).then(
        (result) => {
          conn.end(line({ result }))
          mark('control: result sent')
        },
        (err: unknown) => conn.end(line({ error: errorJson(err) })),
      )
    })
  })
  await listenOwnerOnly(server, socket)
  return {
    socket,
    close: async () => {
      for (const c of open) c.destroy()
      await new Promise<void>((r) => server.close(() => r()))
      rmSync(socket, { force: true })
    },
  }
}
