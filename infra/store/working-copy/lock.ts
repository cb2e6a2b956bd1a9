// One operation at a time per working copy: an exclusive lock held by the owner's pid.
// A lock left by a process that no longer exists (kill -9) is taken over; the operation then
// runs recovery first.
//
// The lock is a symbolic link whose target is the pid, not a file holding it: creating it is
// just as exclusive, and a short link lives in its inode (ext4, xfs, tmpfs), so taking the lock
// needs no free block. A read-only command such as `status` therefore works on a full disk
// (issue 11, fault suite "disk full"). A lock file left by an older version (a regular file
// holding the pid) is still understood, and is what a file system without symlinks gets.
//
// A lock another live process holds is waited for, a while (as git waits for a ref's lock): the
// copy's sharing daemon answers `upswarm update` once the tree is in place and keeps the history
// store (retain) just after, so the next command may find the lock held for a moment. A lock held
// by this very process is refused at once: waiting on itself cannot help.
import { readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { UpswarmError } from '../../errors.ts'
import type { WorkingCopyLayout } from './layout.ts'

export interface WorkingCopyLock {
  release(): Promise<void>
}

const MAX_TAKEOVERS = 3
/** How long a lock held by another live process is waited for (UPSWARM_LOCK_WAIT_MS). */
export const LOCK_WAIT_MS = 10_000
/** How often a held lock is looked at again while waiting. */
const LOCK_POLL_MS = 10

function defaultWaitMs(): number {
  const v = Number.parseInt(process.env.UPSWARM_LOCK_WAIT_MS ?? '', 10)
  return Number.isInteger(v) && v >= 0 ? v : LOCK_WAIT_MS
}

/**
 * Takes the copy's lock. `waitMs`: how long to wait for another live process to let it go
 * (default UPSWARM_LOCK_WAIT_MS, else LOCK_WAIT_MS); then, or at once for this process's own
 * lock, refused with the owner's pid.
 */
export async function acquireLock(layout: WorkingCopyLayout, opts: { waitMs?: number } = {}): Promise<WorkingCopyLock> {
  const deadline = Date.now() + (opts.waitMs ?? defaultWaitMs())
  let takeovers = 0
  for (;;) {
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
    const named = await lockOwner(layout.lock)
    // Let go between the two looks: take it now.
    if (named === undefined) continue
    const owner = Number.parseInt(named, 10)
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      if (owner !== process.pid && Date.now() < deadline) {
        await delay(LOCK_POLL_MS)
        continue
      }
      throw new UpswarmError('UPSWARM_E_WORKING_COPY',
        `working copy ${layout.root} is in use by process ${owner}; wait for it to finish (if no upswarm process is running, delete ${layout.lock})`)
    }
    if (++takeovers > MAX_TAKEOVERS) throw new UpswarmError('UPSWARM_E_WORKING_COPY', `cannot take the lock ${layout.lock}: other processes keep taking it`)
    await rm(layout.lock, { force: true })
  }
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

/** The pid a lock names: a link's target, or an older lock file's text; undefined when it is gone. */
async function lockOwner(lock: string): Promise<string | undefined> {
  const unread = (err: unknown): string | undefined => ((err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : '')
  try {
    return await readlink(lock)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return unread(err)
  }
  return readFile(lock, 'utf8').catch(unread)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
