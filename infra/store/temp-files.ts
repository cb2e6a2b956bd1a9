// Temporary files of crash-safe writes, and the recovery that clears what a dead writer left.
// A run's recovery (journal.ts) clears the copy's temporary directories, but writers outside the
// run's lock put files there too: the daemon's address book, trust and rollout stores, `status`'s
// stat index. A temporary file is therefore named by its writer's process id, and a process keeps
// a list of the ones it is writing: recovery removes only the files of writers that are gone.
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { nodeCrypto } from '../node-crypto.ts'

/** Temporary files this process is writing now (paths as `tempName` made them). */
const inFlight = new Set<string>()

/** A fresh temporary file name in `dir`: `<pid>-<ms>-<random>`. */
export function tempName(dir: string): string {
  return join(dir, `${process.pid}-${Date.now()}-${nodeCrypto().randomBytes(6).toString('hex')}`)
}

/** A fresh temporary file name that `clearDeadTemps` leaves alone until `release` is called. */
export function holdTemp(dir: string): { path: string; release(): void } {
  const path = tempName(dir)
  inFlight.add(path)
  return { path, release: () => inFlight.delete(path) }
}

/** Whether the process that named this temporary file is another one, still running. */
function otherWriterAlive(name: string): boolean {
  const m = /^(\d+)-\d+-[0-9a-f]+$/.exec(name)
  const pid = m ? Number(m[1]) : 0
  if (pid === 0 || pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes the temporary files of `dir` whose writers are gone: this process's files it is not
 * writing now, and those of processes no longer running (a crash, kill -9). Files of names from
 * before this scheme are removed too. A missing directory is nothing to clear.
 */
export async function clearDeadTemps(dir: string): Promise<void> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  const dead = names.filter((name) => !inFlight.has(join(dir, name)) && !otherWriterAlive(name))
  await Promise.all(dead.map((name) => rm(join(dir, name), { recursive: true, force: true })))
}
