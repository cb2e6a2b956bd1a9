// Issue 14: a capped server answers "busy, about N ms" at once instead of letting a range wait
// past its client's timeout. The wait travels in the error's description (a service error has
// a code and a description, nothing else); this module alone writes and reads it.
import { UpswarmError } from '../errors.ts'

/** A range waits at most this share of the time its client said it waits; past it, busy. */
export const BUSY_SHARE = 0.8
/** The longest wait a client may announce (and so be made to wait). */
export const MAX_WAIT_MS = 600_000

/** A client asks a busy server again at most this many times for the same bytes… */
export const MAX_BUSY_ASKS = 3
/** …and only while the wait it is told is at most this; past it, it moves on to the next server. */
export const MAX_BUSY_WAIT_MS = 120_000

export function busyError(server: string, waitMs: number, patienceMs: number): UpswarmError {
  return new UpswarmError('UPSWARM_E_BUSY',
    `server ${server} is busy: this range would wait about ${Math.ceil(waitMs)} ms for its turn of the upload limit, and its client waits ${patienceMs} ms; ask again ready to wait`)
}

/**
 * A client's answer to `err`: when it is a busy answer it may still take (at most MAX_BUSY_ASKS
 * of them, `asks` so far, for waits up to MAX_BUSY_WAIT_MS), what to wait when it asks the same
 * server again — the wait named, half again, plus its usual `baseMs`. Undefined otherwise: the
 * error is handled as any other.
 */
export function waitAfterBusy(err: unknown, asks: number, baseMs: number): number | undefined {
  const busy = busyWaitOf(err)
  if (busy === undefined || busy > MAX_BUSY_WAIT_MS || asks >= MAX_BUSY_ASKS) return undefined
  return Math.ceil(busy * 1.5) + baseMs
}

/** The expected wait a busy answer names, in milliseconds; undefined for any other error. */
export function busyWaitOf(err: unknown): number | undefined {
  if (!(err instanceof UpswarmError) || err.code !== 'UPSWARM_E_BUSY') return undefined
  const m = / would wait about (\d+) ms /.exec(err.message)
  return m ? Number(m[1]) : undefined
}
