// What `status` and the file monitor (actors/monitor) say over the monitor's Unix socket
// (`<copy>/.upswarm/monitor.sock`, mode 0600 in the copy's own metadata folder): one JSON line
// asked, `{"since": <token> | null}`, one JSON line answered (tree-watch.ts `ChangesAnswer`, or
// `{"error": "..."}`), then the monitor closes the connection. No monitor, a slow one or a bad
// answer: `askMonitor` returns undefined with the reason, and status walks the whole tree.
import { existsSync } from 'node:fs'
import { builtin } from '../../lazy-builtin.ts'
import type { ChangesAnswer, MonitorToken } from './tree-watch.ts'

/** The longest answer read (a list of changed paths; the monitor keeps at most 200 000). */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024
/** How long `status` waits for the monitor (it answers once its cookie came back, in milliseconds). */
export const ASK_TIMEOUT_MS = 3_000
/** The longest question taken. */
export const MAX_QUESTION_BYTES = 4096

const isToken = (t: unknown): t is MonitorToken =>
  typeof t === 'object' && t !== null && typeof (t as MonitorToken).id === 'string' && /^[0-9a-f]{1,64}$/.test((t as MonitorToken).id) &&
  Number.isSafeInteger((t as MonitorToken).seq) && (t as MonitorToken).seq >= 0

/** A question as the monitor reads it; a string says what is wrong with it. */
export function parseQuestion(line: string): { since: MonitorToken | null } | string {
  let q: unknown
  try {
    q = JSON.parse(line)
  } catch {
    return 'not JSON'
  }
  if (typeof q !== 'object' || q === null || !('since' in q)) return 'no "since"'
  const since = (q as { since: unknown }).since
  if (since !== null && !isToken(since)) return '"since" is neither null nor a token {id, seq}'
  return { since }
}

/** An answer as `status` reads it; a string says what is wrong with it. */
export function parseAnswer(line: string): ChangesAnswer | string {
  let a: unknown
  try {
    a = JSON.parse(line)
  } catch {
    return 'not JSON'
  }
  if (typeof a !== 'object' || a === null) return 'not an object'
  const o = a as Record<string, unknown>
  if (typeof o.error === 'string') return `the monitor failed: ${o.error}`
  if (o.token !== null && !isToken(o.token)) return 'a bad token'
  if (o.all === true) return { token: o.token as MonitorToken | null, all: true, why: typeof o.why === 'string' ? o.why : '' }
  if (o.all !== false || !isToken(o.token) || !Array.isArray(o.paths) || !o.paths.every((p) => typeof p === 'string')) return 'neither `all` nor a token with a list of paths'
  return { token: o.token, all: false, paths: o.paths as string[] }
}

/** Asks the monitor of a copy what changed since `since`; undefined (and why) when none answers well. */
export function askMonitor(socket: string, since: MonitorToken | null, timeoutMs = ASK_TIMEOUT_MS): Promise<{ answer: ChangesAnswer } | { none: string }> {
  // No socket, no monitor: said without a connection attempt (and without loading node:net, which
  // a `status` of a copy no monitor watches never needs).
  if (!existsSync(socket)) return Promise.resolve({ none: 'no monitor runs' })
  const { createConnection } = builtin('node:net')
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let bytes = 0
    let done = false
    const finish = (r: { answer: ChangesAnswer } | { none: string }): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      conn.destroy()
      resolve(r)
    }
    const conn = createConnection(socket)
    const timer = setTimeout(() => finish({ none: `the monitor did not answer within ${timeoutMs} ms` }), timeoutMs)
    conn.on('connect', () => conn.write(`${JSON.stringify({ since })}\n`))
    conn.on('error', (err: NodeJS.ErrnoException) =>
      finish({ none: err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'no monitor runs' : `the monitor's socket: ${err.message}` }))
    conn.on('data', (c: Buffer) => {
      bytes += c.length
      if (bytes > MAX_ANSWER_BYTES) return finish({ none: `the monitor's answer is over ${MAX_ANSWER_BYTES} bytes` })
      const nl = c.indexOf(10)
      chunks.push(nl < 0 ? c : c.subarray(0, nl))
      if (nl < 0) return
      const a = parseAnswer(Buffer.concat(chunks).toString('utf8'))
      finish(typeof a === 'string' ? { none: `the monitor's answer: ${a}` } : { answer: a })
    })
    conn.on('end', () => finish({ none: 'the monitor closed the connection without an answer' }))
  })
}
