// Issue 13 item 4: a first install writes its new files straight into the directories it makes,
// with no staging file and no rename each. Before a byte is written, a journal names every
// directory the run will make where nothing was (`owned`); the directories are made; the
// downloads then write the files of those directories in place. Any failure, a discarded run or
// a crash undoes that journal, which removes the owned directories with all they hold: the tree
// is again exactly the revision it was (ARCHITECTURE §4). Files elsewhere (beside the user's,
// replacing a version) are staged and renamed by the journal as before.
import { mkdirSync } from 'node:fs'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import { newJournal, stagingPath, writeJournal, type JournalOp } from '../../infra/store/working-copy/journal.ts'
import { treePath } from '../../infra/store/working-copy/layout.ts'
import type { RunPlan, RunRequest, RunTarget } from '../../machines/update-run.machine.ts'
import type { RunSession } from './run-session.ts'
import { step } from './session.ts'

/**
 * Chooses the owned directories and the files written into them, writes the journal that names
 * the directories, and makes them. Only for a run planned from every path (its walk saw every
 * directory that is there) with no pre-install hook (which is promised an untouched tree).
 */
export async function prepareDirectWrites(session: RunSession, request: RunRequest, target: RunTarget, plan: RunPlan): Promise<void> {
  if (session.changes || request.hooks?.preInstall !== undefined) return
  const owned = new Map<string, number>()
  const parentOf = (path: string): string => path.slice(0, Math.max(0, path.lastIndexOf('/')))
  const isOwnedOrThere = (dir: string): boolean => dir === '' || owned.has(dir) || session.disk.get(dir)?.kind === 'dir'
  // Parents before children: a path sorts after its prefix.
  const dirs: [string, number][] = []
  for (const t of plan.tasks) {
    const e = t.facts.target
    if (e?.kind === 'dir' && t.status === 'missing' && !t.facts.local && !t.facts.ignored) dirs.push([t.path, e.mode])
  }
  dirs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  for (const [path, mode] of dirs) if (isOwnedOrThere(parentOf(path))) owned.set(path, mode)
  for (const t of plan.tasks) {
    if (t.facts.target?.kind === 'file' && t.status === 'missing' && t.slot && !t.facts.local && owned.has(parentOf(t.path))) session.direct.add(t.path)
  }
  if (session.direct.size === 0) return
  const { layout } = session.wc
  const ops: JournalOp[] = [...owned].map(([path, mode]) => ({ op: 'mkdir', path, mode, owned: true }))
  session.journal = newJournal(target.from, target.to, ops)
  await writeJournal(layout, session.journal, step, 'owned.journal.written')
  let made = 0
  try {
    for (const op of ops) {
      // Writable by its owner while the files go in; the journal's mkdir gives it its mode.
      mkdirSync(treePath(layout, op.path), { mode: 0o700 })
      session.owned.add(op.path)
      made++
    }
  } catch (err) {
    // A directory that appeared since the plan's walk is not the run's: the journal keeps only
    // those it made, so that undoing it removes nothing else.
    session.journal = newJournal(target.from, target.to, ops.slice(0, made), session.journal.id)
    await writeJournal(layout, session.journal, step, 'owned.journal.written')
    throw session.noteError(new UpswarmError('UPSWARM_E_IO',
      `cannot make the directory ${treePath(layout, ops[made]!.path)}: ${errorMessage(err)}. The update is rolled back; fix the cause (free space, permissions, or move that path away) and run it again`,
      { cause: err, details: { path: ops[made]!.path } }))
  }
  step('owned.dirs.made')
}

/** Where the download phase writes the new entry of `path`: in place when the run writes it directly, else its staging slot. */
export function slotFile(session: Pick<RunSession, 'direct' | 'wc'>, path: string, slot: string): string {
  return session.direct.has(path) ? treePath(session.wc.layout, path) : stagingPath(session.wc.layout, slot)
}
