// One operation at a time per working copy: an exclusive lock held by the owner's pid.
// A lock left by a process that no longer exists (kill -9) is taken over; the operation then
// runs recovery first.
//
// The lock is a symbolic link whose target is the pid, not a file holding it: creating it is
// just as exclusive, and a short link lives in its inode (ext4, xfs, tmpfs), so taking the lock
// needs no free block. A read-only command such as `status` therefore works on a full disk
// (issue 11, fault suite "disk full"). A lock file left by an older version (a regular file
// holding the pid) is still understood, and is what a file system without symlinks gets.
import { readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { UpswarmError } from '../../errors.ts'
import type { WorkingCopyLayout } from './layout.ts'

export interface WorkingCopyLock {
  release(): Promise<void>
}

const MAX_TAKEOVERS = 3

export async function acquireLock(layout: WorkingCopyLayout): Promise<WorkingCopyLock> {
  for (let attempt = 0; attempt <= MAX_TAKEOVERS; attempt++) {
    try {
      await create(layout.lock)
      return { release: () => rm(layout.lock, { force: true }) }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') {
        throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${layout.root} is not an upswarm working copy (no ${layout.meta}); create one with \`upswarm init\``)
      }
      if (code !== 'EEXIST') {
        throw new UpswarmError('UPSWARM_E_IO', `cannot create lock ${layout.lock}: ${(err as Error).message}`, { cause: err })
      }
    }
    const owner = Number.parseInt(await lockOwner(layout.lock), 10)
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      throw new UpswarmError('UPSWARM_E_WORKING_COPY',
        `working copy ${layout.root} is in use by process ${owner}; wait for it to finish (if no upswarm process is running, delete ${layout.lock})`)
    }
    await rm(layout.lock, { force: true })
  }
  throw new UpswarmError('UPSWARM_E_WORKING_COPY', `cannot take the lock ${layout.lock}: other processes keep taking it`)
}

/** Creates the lock exclusively: a symlink naming the pid, or a file holding it where symlinks are not supported. */
async function create(lock: string): Promise<void> {
  try {
    await symlink(String(process.pid), lock)
  } catch (err) {
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err
    try {
      await writeFile(lock, `${process.pid}\n`, { flag: 'wx' })
    } catch (e) {
      // Created but not written (a full disk): remove it, nothing half-written.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') await rm(lock, { force: true }).catch(() => undefined)
      throw e
    }
  }
}

/** The pid a lock names: a link's target, or an older lock file's text ('' when it is gone). */
async function lockOwner(lock: string): Promise<string> {
  try {
    return await readlink(lock)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return ''
    return readFile(lock, 'utf8').catch(() => '')
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
