// Bounded retry with backoff for operations that fail while a JetStream group elects a leader.
import { setTimeout as delay } from 'node:timers/promises'
import { permissionViolation } from '../errors.ts'

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
