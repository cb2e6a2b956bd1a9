// One operation at a time per working copy: an exclusive lock file holding the owner's pid.
// A lock left by a process that no longer exists (kill -9) is taken over; the operation then
// runs recovery first.
import { readFile, rm, writeFile } from 'node:fs/promises'
import { UpswarmError } from '../../errors.ts'
import type { WorkingCopyLayout } from './layout.ts'

export interface WorkingCopyLock {
  release(): Promise<void>
}

const MAX_TAKEOVERS = 3

export async function acquireLock(layout: WorkingCopyLayout): Promise<WorkingCopyLock> {
  for (let attempt = 0; attempt <= MAX_TAKEOVERS; attempt++) {
    try {
      await writeFile(layout.lock, `${process.pid}\n`, { flag: 'wx' })
      return { release: () => rm(layout.lock, { force: true }) }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') {
        throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${layout.root} is not an upswarm working copy (no ${layout.meta}); create one with \`upswarm init\``)
      }
      if (code !== 'EEXIST') {
        // Not EEXIST: the file, if any, is the one this call created (a full disk fails the write
        // after the create). Remove it: nothing half-written (issue 11 item 8, fault suite).
        await rm(layout.lock, { force: true }).catch(() => undefined)
        throw new UpswarmError('UPSWARM_E_IO', `cannot create lock file ${layout.lock}: ${(err as Error).message}`, { cause: err })
      }
    }
    const owner = Number.parseInt(await readFile(layout.lock, 'utf8').catch(() => ''), 10)
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      throw new UpswarmError('UPSWARM_E_WORKING_COPY',
        `working copy ${layout.root} is in use by process ${owner}; wait for it to finish (if no upswarm process is running, delete ${layout.lock})`)
    }
    await rm(layout.lock, { force: true })
  }
  throw new UpswarmError('UPSWARM_E_WORKING_COPY', `cannot take the lock ${layout.lock}: other processes keep taking it`)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
