// Bounded retry with backoff for operations that fail while a JetStream group elects a leader.
import { setTimeout as delay } from 'node:timers/promises'
import { errorMessage, permissionViolation } from '../errors.ts'

export interface RetryOptions {
  attempts?: number
  initialDelayMs?: number
  maxDelayMs?: number
  /** Return false to stop retrying (the error is final). */
  retryable?: (err: unknown) => boolean
}

export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 20
  let wait = opts.initialDelayMs ?? 100
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (err) {
      if (attempt >= attempts || permissionViolation(err) || (opts.retryable && !opts.retryable(err))) throw err
      await delay(wait)
      wait = Math.min(wait * 2, opts.maxDelayMs ?? 1000)
    }
  }
}

/**
 * A request that found no responder: right after an ephemeral consumer is made, its subjects may
 * not have reached every node of the cluster yet, so the first pull can come back 503 "no
 * responders". Worth a short retry; anything else is not.
 */
export function isNoResponders(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code
  return code === 503 || code === '503' || (err instanceof Error && err.name === 'NoRespondersError') || /no responders/i.test(errorMessage(err))
}
