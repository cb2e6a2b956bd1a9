// One error type with a closed set of codes. Callers match on `code`, never on the message.
// Messages say what went wrong, where, and what to do.

export const ERROR_CODES = [
  'UPSWARM_E_CONFIG',
  'UPSWARM_E_NATS_SERVER_MISSING',
  'UPSWARM_E_CLUSTER_START',
  'UPSWARM_E_NATS',
  'UPSWARM_E_SIGNATURE',
  'UPSWARM_E_MANIFEST',
  'UPSWARM_E_HASH_MISMATCH',
  'UPSWARM_E_NOT_FOUND',
  'UPSWARM_E_UNKNOWN_REVISION',
  'UPSWARM_E_CONFLICT',
  'UPSWARM_E_ROLLBACK',
  'UPSWARM_E_BAD_REQUEST',
  'UPSWARM_E_NO_SERVER',
  'UPSWARM_E_IO',
  'UPSWARM_E_WORKING_COPY',
  'UPSWARM_E_TRACKER',
  'UPSWARM_E_PEER',
  'UPSWARM_E_PUBLISH',
  'UPSWARM_E_TIMEOUT',
  /** NATS refused the credentials (none, unknown, revoked or expired). */
  'UPSWARM_E_AUTH',
  /** The identity is not allowed this subject or JetStream call. */
  'UPSWARM_E_PERMISSION',
  /** The revision's file contents were pruned from the servers by an operator (`upswarm prune`). */
  'UPSWARM_E_PRUNED',
  /** An install hook (`--pre-install`, `--post-install`) failed (issue 16 item 2). */
  'UPSWARM_E_HOOK',
  /** The installed revision failed its health check and the working copy was rolled back (issue 16 item 2). */
  'UPSWARM_E_HEALTH',
  /** A range request its client withdrew before the server sent it (issue 14: the piece came from elsewhere). */
  'UPSWARM_E_CANCELLED',
  /**
   * A capped server's queue would keep a range longer than its client said it waits: answered at
   * once with the expected wait, so the client asks again prepared to wait, instead of timing out
   * and counting a slow server as a bad one (issue 14).
   */
  'UPSWARM_E_BUSY',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export class UpswarmError extends Error {
  override readonly name = 'UpswarmError'
  readonly code: ErrorCode
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, { cause: options.cause })
    this.code = code
    this.details = options.details
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message }
  }
}

export function isUpswarmError(err: unknown, code?: ErrorCode): err is UpswarmError {
  return err instanceof UpswarmError && (code === undefined || err.code === code)
}

/** Converts anything thrown at a boundary into an UpswarmError, keeping the original as `cause`. */
export function toUpswarmError(err: unknown, code: ErrorCode, context: string): UpswarmError {
  if (err instanceof UpswarmError) return err
  const msg = err instanceof Error ? err.message : String(err)
  return new UpswarmError(code, `${context}: ${msg}`, { cause: err })
}

/** The first error in a cause chain with this `name` (nats.js errors are matched by class name so that callers need not load nats.js). */
export function findCause<T extends Error>(err: unknown, name: string): T | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e.name === name) return e as T
  }
  return undefined
}

/** The NATS permission violation behind an error, if that is what it is. */
export function permissionViolation(err: unknown): (Error & { operation?: string; subject?: string }) | undefined {
  return findCause(err, 'PermissionViolationError')
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
