// A cross-process lock beside a file: `FILE.lock`, created with `wx` (exclusive), so processes
// that read, change and write the same small file (the identities, the trust file) lose no
// update. A lock left by a killed process is taken over once it is older than LOCK_STALE_MS.
import { rm, stat, writeFile } from 'node:fs/promises'

export const LOCK_STALE_MS = 30_000

/** Runs `fn` holding `${file}.lock`; waits (5 ms doubling to 200 ms) while another holds it. */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const age = await stat(lock).then((st) => Date.now() - st.mtimeMs, () => 0)
      if (age > LOCK_STALE_MS) await rm(lock, { force: true })
      else await new Promise((r) => setTimeout(r, wait))
    }
  }
  try {
    return await fn()
  } finally {
    await rm(lock, { force: true })
  }
}
