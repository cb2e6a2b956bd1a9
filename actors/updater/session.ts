// What every updater operation does first: take the working copy's lock, run recovery (so a
// crash at any earlier moment leaves the tree at exactly one revision), open it.
import { mark } from '../../infra/timings.ts'
import { join } from 'node:path'
import { acquireLock } from '../../infra/store/working-copy/lock.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { recoverWorkingCopy, type RecoveryAction, type StepHook } from '../../infra/store/working-copy/journal.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'

/** Structured log sink (pino-compatible); quiet by default. */
export interface UpdaterLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export const silentLog: UpdaterLog = { info: () => undefined, warn: () => undefined }

/**
 * Test hook for the crash test: with UPSWARM_CRASH_AFTER_STEP=N the process SIGKILLs itself
 * right after its N-th durable step (staged file, journal write, rename, commit, cleanup).
 */
const CRASH_AFTER = Number.parseInt(process.env.UPSWARM_CRASH_AFTER_STEP ?? '', 10)
const TRACE = process.env.UPSWARM_TRACE_STEPS === '1'
const labels: string[] = []
let stepCount = 0

export const step: StepHook = (label) => {
  stepCount++
  if (TRACE) labels.push(label)
  if (stepCount === CRASH_AFTER) process.kill(process.pid, 'SIGKILL')
}

/** Durable steps taken by this process so far, and their labels with UPSWARM_TRACE_STEPS=1. */
export function stepsTaken(): { count: number; labels: string[] } {
  return { count: stepCount, labels }
}

export async function withWorkingCopy<T>(
  dir: string,
  log: UpdaterLog,
  fn: (wc: WorkingCopy, recovered: RecoveryAction) => Promise<T>,
): Promise<T> {
  const opened = await openWorkingCopy(dir, log)
  try {
    return await fn(opened.wc, opened.recovered)
  } finally {
    await opened.release()
  }
}

/** The lock taken and recovery run, as withWorkingCopy does, for a caller that releases it later. */
export async function openWorkingCopy(dir: string, log: UpdaterLog): Promise<{ wc: WorkingCopy; recovered: RecoveryAction; release: () => Promise<void> }> {
  const layout = layoutOf(dir)
  mark('open: start')
  const lock = await acquireLock(layout)
  mark('open: locked')
  try {
    const recovered = await recoverWorkingCopy(layout, step, join(layout.history, 'tmp'))
    mark('open: recovered')
    if (recovered !== 'none') log.warn({ dir, recovered }, `recovered the working copy after an interrupted update (${recovered})`)
    const wc = await WorkingCopy.open(dir)
    // The history store's cached read handles close with the session (left to the garbage
    // collector, node warned and closed them at random later).
    const release = async (): Promise<void> => {
      wc.history.closeHandles()
      await lock.release()
    }
    return { wc, recovered, release }
  } catch (err) {
    await lock.release()
    throw err
  }
}
