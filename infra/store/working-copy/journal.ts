// The apply journal (ARCHITECTURE §4): an update is committed by renames listed in a journal
// written before the first rename. Every replaced or deleted entry is first moved to
// staging/old, so any prefix of the journal can be undone. The commit point is the state file
// naming the journal's id (written by the caller). After a crash at any moment, recovery
// either finishes a committed journal (drops the backups) or undoes an uncommitted one, and
// removes every staging and temporary file: the tree is exactly one revision. A directory the
// run makes where nothing was (`owned`, issue 13 item 4) gets its new files written straight
// into it, with no staging and no rename; undoing it removes it with what it holds.
import { nodeCrypto } from '../../node-crypto.ts'
import { lstat, mkdir, chmod, rename, rm, rmdir } from 'node:fs/promises'
import { lstatSync, renameSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { UpswarmError } from '../../errors.ts'
import { fsyncDir, readJsonFile, writeFileAtomic, type LazySchema } from './atomic.ts'
import { treePath, type WorkingCopyLayout } from './layout.ts'
import { syncDirs } from '../durable.ts'
import { clearDeadTemps } from '../temp-files.ts'
import { readState } from './meta.ts'

import type { Journal, JournalOp } from './schemas.ts'

export type { Journal, JournalOp } from './schemas.ts'

/** Issue 13 item 1: zod loads only when there is a journal to read (schemas.ts). */
const journalSchema: LazySchema<Journal> = { load: async () => (await import('./schemas.ts')).JournalSchema }

/** Called after every durable step; the crash test kills the process there. */
export type StepHook = (label: string) => void

export function newJournal(from: number, to: number, ops: JournalOp[], id: string = nodeCrypto().randomUUID()): Journal {
  return { format: ops.some((op) => op.op === 'mkdir' && op.owned) ? 2 : 1, id, from, to, ops }
}

export function stagingPath(layout: WorkingCopyLayout, slot: string): string {
  return join(layout.staging, ...slot.split('/'))
}

export async function writeJournal(layout: WorkingCopyLayout, journal: Journal, onStep: StepHook, label = 'journal.written'): Promise<void> {
  await mkdir(join(layout.staging, 'old'), { recursive: true })
  await writeFileAtomic(layout.journal, JSON.stringify(journal), layout.tmp)
  onStep(label)
}

export async function readJournal(layout: WorkingCopyLayout): Promise<Journal | undefined> {
  return readJsonFile(layout.journal, journalSchema, 'apply journal')
}

/**
 * Runs every operation of the journal. On failure throws UPSWARM_E_IO naming the path, with
 * the tree partly changed: the caller then runs `undoJournal`.
 */
/** Synchronous renames in a row before the event loop gets a turn. */
const YIELD_EVERY = 256

export async function runJournal(layout: WorkingCopyLayout, journal: Journal, onStep: StepHook): Promise<void> {
  const touched = new Set<string>([join(layout.staging, 'old'), join(layout.staging, 'new')])
  const safeDirs = new Set<string>()
  /** Directories this run created (not found there: a run again after a crash finds them). */
  const fresh = new Set<string>()
  let sinceYield = 0
  for (const op of journal.ops) {
    const abs = treePath(layout, op.path)
    try {
      switch (op.op) {
        case 'unlink':
          await renameIfPresent(abs, stagingPath(layout, op.backup))
          break
        case 'rmdir':
          await rmdirOp(abs, op.required)
          break
        case 'mkdir':
          await assertRealDirs(layout, op.path, safeDirs)
          await mkdir(abs, { mode: op.mode }).then(() => fresh.add(op.path), async (err: NodeJS.ErrnoException) => {
            if (err.code !== 'EEXIST' || !(await lstat(abs)).isDirectory()) throw err
          })
          await chmod(abs, op.mode)
          // Its own entries (the files written straight into it) are made durable with the renames.
          if (op.owned) touched.add(abs)
          break
        case 'put': {
          await assertRealDirs(layout, op.path, safeDirs)
          // Issue 13 item 4: a first install is mostly puts; the synchronous calls cost a fraction of
          // the thread-pool round trips (the loop gets a turn every YIELD_EVERY ops, below).
          // Into a directory this run made a moment ago nothing of the user's can be in the way:
          // no lstat (a first install puts every file into such a directory).
          const slash = op.path.lastIndexOf('/')
          const st = slash > 0 && fresh.has(op.path.slice(0, slash)) ? undefined : lstatSync(abs, { throwIfNoEntry: false })
          if (st?.isDirectory()) throw Object.assign(new Error('a directory is in the way'), { code: 'EISDIR' })
          if (st) {
            renameSync(abs, stagingPath(layout, op.backup))
            onStep(`put.backup ${op.path}`)
          }
          renameSync(stagingPath(layout, op.staged), abs)
          break
        }
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw new UpswarmError('UPSWARM_E_IO',
        `cannot ${op.op} ${abs}: ${e.code ?? ''} ${e.message}. The update is rolled back; fix the cause (free space, permissions, or move that path away) and run the update again`,
        { cause: err, details: { path: op.path, errno: e.code } })
    }
    touched.add(dirname(abs))
    onStep(`${op.op} ${op.path}`)
    if (++sinceYield >= YIELD_EVERY) {
      sinceYield = 0
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }
  // The renames made durable: one syncfs for many directories (a first install touches one per
  // directory of the tree; an fsync each was a disk round trip each), else an fsync each.
  await syncDirs(layout.root, [...touched])
  onStep('ops.synced')
}

/** Undoes a prefix (or all) of a journal; idempotent, so a crash while undoing is safe too. */
export async function undoJournal(layout: WorkingCopyLayout, journal: Journal, onStep: StepHook): Promise<void> {
  for (let i = journal.ops.length - 1; i >= 0; i--) {
    const op = journal.ops[i]!
    const abs = treePath(layout, op.path)
    try {
      switch (op.op) {
        case 'put': {
          // The new entry goes back to its staging slot, so that running this again is a no-op.
          const staged = stagingPath(layout, op.staged)
          if (!(await exists(staged)) && (await exists(abs))) await rename(abs, staged)
          await renameIfPresent(stagingPath(layout, op.backup), abs)
          break
        }
        case 'unlink':
          await renameIfPresent(stagingPath(layout, op.backup), abs)
          break
        case 'rmdir':
          if (!(await exists(abs))) {
            await mkdir(abs, { mode: op.mode })
            await chmod(abs, op.mode)
          }
          break
        case 'mkdir':
          // Made by the run where nothing was: all it holds is the run's.
          if (op.owned) {
            await rm(abs, { recursive: true, force: true })
            break
          }
          await rmdir(abs).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST' && err.code !== 'ENOTDIR') throw err
          })
          break
      }
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_IO',
        `cannot roll back ${op.op} of ${abs}: ${(err as Error).message}. Fix the cause and run any upswarm command on ${layout.root} to finish the recovery`,
        { cause: err, details: { path: op.path } })
    }
    onStep(`undo ${op.op} ${op.path}`)
  }
}

/** Drops staging (new files not used, backups of replaced ones) and the journal. */
export async function finishJournal(layout: WorkingCopyLayout, onStep: StepHook): Promise<void> {
  await rm(layout.staging, { recursive: true, force: true })
  onStep('staging.removed')
  await rm(layout.journal, { force: true })
  await fsyncDir(layout.meta)
  onStep('journal.removed')
}

export type RecoveryAction = 'none' | 'completed' | 'undone'

/**
 * Brings a working copy back to exactly one revision after a crash. Run before every
 * operation, under the working copy's lock.
 */
export async function recoverWorkingCopy(layout: WorkingCopyLayout, onStep: StepHook, historyTmp: string): Promise<RecoveryAction> {
  const journal = await readJournal(layout)
  let action: RecoveryAction = 'none'
  if (journal) {
    const state = await readState(layout)
    if (state.lastJournal === journal.id) action = 'completed'
    else {
      await undoJournal(layout, journal, onStep)
      action = 'undone'
    }
    await finishJournal(layout, onStep)
  } else {
    await rm(layout.staging, { recursive: true, force: true })
  }
  // Only what a crashed writer left: the copy's other writers (the daemon's address book, trust
  // and rollout stores, `status`'s stat index) write there outside the run's lock, and may be
  // writing now. Removing the whole directory once failed a run in the demo (temp-files.ts).
  await clearDeadTemps(layout.tmp)
  await clearDeadTemps(historyTmp)
  return action
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(() => true, () => false)
}

async function renameIfPresent(from: string, to: string): Promise<void> {
  if (await exists(from)) await rename(from, to)
}

async function rmdirOp(abs: string, required: boolean): Promise<void> {
  await rmdir(abs).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return
    if (!required && (err.code === 'ENOTEMPTY' || err.code === 'EEXIST')) return
    throw err
  })
}

/** Refuses to write through a symlink or non-directory planted above `rel` in the tree. */
async function assertRealDirs(layout: WorkingCopyLayout, rel: string, safe: Set<string>): Promise<void> {
  const parts = rel.split('/')
  let prefix = ''
  for (let i = 0; i < parts.length - 1; i++) {
    prefix = prefix ? `${prefix}/${parts[i]}` : parts[i]!
    if (safe.has(prefix)) continue
    const st = lstatSync(treePath(layout, prefix))
    if (!st.isDirectory()) throw Object.assign(new Error(`${prefix} is not a directory (a symlink or file is in the way)`), { code: 'ENOTDIR' })
    safe.add(prefix)
  }
}
