// Disk space as the stores see it (issue 11 item 8): how much a file system holds for us, and
// whether an error is a full disk (ENOSPC, or a quota: EDQUOT) somewhere in its cause chain.
import { statfs } from 'node:fs/promises'

const FULL = new Set(['ENOSPC', 'EDQUOT'])

/** True when `err` (or a cause of it) is a full disk or an exhausted quota. */
export function isDiskFull(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (FULL.has((e as NodeJS.ErrnoException).code ?? '')) return true
  }
  return false
}

/** Bytes an unprivileged writer may still use on the file system holding `path`. */
export async function freeBytes(path: string): Promise<number> {
  const fs = await statfs(path)
  return fs.bavail * fs.bsize
}

export function formatSize(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`
}
