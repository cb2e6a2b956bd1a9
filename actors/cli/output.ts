// How commands report: a human line on stderr (progress) and either a human summary or, with
// --json, exactly one JSON document on stdout.
import { UpswarmError, isUpswarmError, permissionViolation } from '../../infra/errors.ts'

/** One event of a command that reports as it goes (watch, daemon): NDJSON, one object per line. */
export function printEvent(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value) : human()}\n`)
}

export function printResult(json: boolean, value: unknown, human: () => string): void {
  if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
  else process.stdout.write(`${human()}\n`)
}

/** Prints an error the way every command does and returns the exit code. */
export function reportError(err: unknown, json: boolean): number {
  const denied = isUpswarmError(err) ? undefined : permissionViolation(err)
  const e = isUpswarmError(err) ? err
    : denied ? new UpswarmError('UPSWARM_E_PERMISSION', `NATS refused: this identity may not ${denied.operation ?? 'publish'} to ${denied.subject ?? 'that subject'} (${denied.message}); use credentials of a role allowed to`, { cause: err })
      : new UpswarmError('UPSWARM_E_IO', err instanceof Error ? err.message : String(err), { cause: err })
  process.stderr.write(`upswarm: ${e.message} [${e.code}]\n`)
  if (process.env.UPSWARM_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`)
  if (json) process.stdout.write(`${JSON.stringify({ error: e.toJSON() })}\n`)
  return e.code === 'UPSWARM_E_CONFIG' ? 2 : 1
}

/** A one-line progress display on a terminal; silent otherwise (or with --json). */
export function progressLine(enabled: boolean): { update: (text: string) => void; done: () => void } {
  const on = enabled && process.stderr.isTTY
  let last = 0
  return {
    update(text) {
      if (!on) return
      const now = Date.now()
      if (now - last < 100) return
      last = now
      process.stderr.write(`\r\x1b[K${text}`)
    },
    done() {
      if (on) process.stderr.write('\r\x1b[K')
    },
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}
