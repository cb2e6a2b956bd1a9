// What `upswarm update` and the copy's sharing daemon say over the daemon's control socket
// (`<copy>/.upswarm/daemon.sock`, mode 0600 in the copy's own metadata folder; issue 15 item 4):
// the command asks, in one JSON line, `{"update": {"rev"?: n, "onConflict": policy}}`; the daemon
// answers `{"accepted": true}` at once, then, when the run ends, one line: `{"result": {...}}`
// (the update's result, as `update --json` prints it) or `{"error": {"code", "message"}}`, and
// closes the connection. The daemon already holds the connections, the trusted root and the
// tree, and is the one writer of its copy: a command that hands it the update neither dials
// NATS nor races it for the copy's lock. No daemon (no socket, or a stale one): the command
// runs the update itself.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { ERROR_CODES, UpswarmError, type ErrorCode } from '../../errors.ts'
import { mark } from '../../timings.ts'

/** The longest question taken. */
export const MAX_CONTROL_QUESTION_BYTES = 4096
/** The longest answer read (an update's result: paths of conflicts and warnings). */
export const MAX_CONTROL_ANSWER_BYTES = 64 * 1024 * 1024
/** How long the command waits for the daemon to take the update (it answers before it starts). */
export const ACCEPT_TIMEOUT_MS = 5_000

export type ControlPolicy = 'alert' | 'overwrite' | 'abort'
export interface ControlUpdate {
  rev?: number
  /** Unset: 'alert', as for `update`. */
  onConflict?: ControlPolicy
}

const POLICIES: readonly string[] = ['alert', 'overwrite', 'abort']

/** A question as the daemon reads it; a string says what is wrong with it. */
export function parseControlQuestion(line: string): { update: ControlUpdate } | string {
  let q: unknown
  try {
    q = JSON.parse(line)
  } catch {
    return 'not JSON'
  }
  if (typeof q !== 'object' || q === null || typeof (q as { update?: unknown }).update !== 'object' || (q as { update?: unknown }).update === null) return 'no "update" object'
  const u = (q as { update: Record<string, unknown> }).update
  if (u.rev !== undefined && (!Number.isSafeInteger(u.rev) || (u.rev as number) < 1)) return '"rev" is not a revision number (1 or more)'
  if (u.onConflict !== undefined && (typeof u.onConflict !== 'string' || !POLICIES.includes(u.onConflict))) return `"onConflict" is not one of ${POLICIES.join(', ')}`
  return { update: { ...(u.rev !== undefined ? { rev: u.rev as number } : {}), onConflict: (u.onConflict ?? 'alert') as ControlPolicy } }
}

export type ControlAnswer<R> = { result: R } | { error: UpswarmError } | { none: string }

const errorOf = (e: unknown): UpswarmError => {
  const o = (typeof e === 'object' && e !== null ? e : {}) as { code?: unknown; message?: unknown }
  const code = typeof o.code === 'string' && (ERROR_CODES as readonly string[]).includes(o.code) ? o.code as ErrorCode : 'UPSWARM_E_IO'
  return new UpswarmError(code, typeof o.message === 'string' ? o.message : 'the daemon failed the update without saying why')
}

/**
 * Hands an update to the daemon of the copy whose control socket is `socket`. `none` (and why)
 * when no daemon runs there: nothing was asked, the caller runs the update itself. Once the
 * daemon took the update, every outcome is its answer or an error: the caller must not run the
 * same update beside it.
 */
export function askDaemon<R>(socket: string, update: ControlUpdate, acceptTimeoutMs = ACCEPT_TIMEOUT_MS): Promise<ControlAnswer<R>> {
  // No socket, no daemon: said without loading node:net.
  if (!existsSync(socket)) return Promise.resolve({ none: 'no daemon runs' })
  const { createConnection } = createRequire(import.meta.url)('node:net') as typeof import('node:net')
  return new Promise((resolve) => {
    let got: Buffer = Buffer.alloc(0)
    let accepted = false
    let done = false
    const finish = (a: ControlAnswer<R>): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      conn.destroy()
      resolve(a)
    }
    const conn = createConnection(socket)
    const timer = setTimeout(() => finish({ error: new UpswarmError('UPSWARM_E_TIMEOUT', `the sharing daemon on ${socket} did not take the update within ${acceptTimeoutMs} ms; stop it, or run \`upswarm update --no-daemon\``) }), acceptTimeoutMs)
    conn.on('connect', () => {
      mark('control: connected')
      conn.write(`${JSON.stringify({ update })}\n`)
    })
    conn.on('error', (err: NodeJS.ErrnoException) => {
      if (!accepted && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) return finish({ none: 'no daemon runs (a stale socket)' })
      finish({ error: new UpswarmError('UPSWARM_E_IO', `the sharing daemon's socket ${socket}: ${err.message}`) })
    })
    conn.on('close', () => finish({ error: new UpswarmError('UPSWARM_E_IO', `the sharing daemon on ${socket} closed the connection before ${accepted ? 'the update ended (its journal completes or undoes the run at its next start)' : 'taking the update'}`) }))
    conn.on('data', (c: Buffer) => {
      got = got.length ? Buffer.concat([got, c]) : c
      for (let nl = got.indexOf(10); nl >= 0; nl = got.indexOf(10)) {
        const line = got.subarray(0, nl).toString('utf8')
        got = got.subarray(nl + 1)
        let a: Record<string, unknown>
        try {
          a = JSON.parse(line) as Record<string, unknown>
        } catch {
          return finish({ error: new UpswarmError('UPSWARM_E_IO', `the sharing daemon on ${socket} answered something that is not JSON`) })
        }
        if (a.accepted === true) {
          mark('control: accepted')
          accepted = true
          clearTimeout(timer)
        } else if ('result' in a && typeof a.result === 'object' && a.result !== null) {
          return finish({ result: a.result as R })
        } else if ('error' in a) {
          return finish({ error: errorOf(a.error) })
        } else {
          return finish({ error: new UpswarmError('UPSWARM_E_IO', `the sharing daemon on ${socket} answered neither a result nor an error`) })
        }
      }
      if (got.length > MAX_CONTROL_ANSWER_BYTES) finish({ error: new UpswarmError('UPSWARM_E_IO', `the sharing daemon's answer on ${socket} is over ${MAX_CONTROL_ANSWER_BYTES} bytes`) })
    })
  })
}
