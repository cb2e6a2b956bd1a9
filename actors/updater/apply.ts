// The applying phase: turn the staged paths into journal operations, run them, commit the new
// revision in the state file (the commit point), then clean up. Also what `undo` and `discard`
// do when a run fails.
import { rm } from 'node:fs/promises'
import { errorMessage } from '../../infra/errors.ts'
import type { Entry } from '../../infra/release/manifest.ts'
import { treePath } from '../../infra/store/working-copy/layout.ts'
import {
  finishJournal, newJournal, readJournal, runJournal, stagingPath, undoJournal, writeJournal, type JournalOp,
} from '../../infra/store/working-copy/journal.ts'
import { readState } from '../../infra/store/working-copy/meta.ts'
import { diskEntrySync, hashContent, type DiskEntry } from '../../infra/store/working-copy/tree.ts'
import type { LocalEntry } from '../../machines/file-status.machine.ts'
import type { ApplySummary, PlannedPath, RunTarget, StagedSet } from '../../machines/update-run.machine.ts'
import type { RunSession } from './run-session.ts'
import { indexAfterFullUpdate, reindexAfterUpdate } from './indexed-status.ts'
import { mark } from '../../infra/timings.ts'
import { step } from './session.ts'

interface BuiltOps {
  ops: JournalOp[]
  summary: ApplySummary
}

/** What the download phase wrote in place (direct.ts): the directories it made and the files in them. */
export interface DirectWrites {
  readonly owned: ReadonlySet<string>
  readonly direct: ReadonlySet<string>
}
const NO_DIRECT_WRITES: DirectWrites = { owned: new Set(), direct: new Set() }

/**
 * Journal order: files and symlinks out (backed up), directories removed (deepest first),
 * directories created (shallowest first), new files and symlinks in.
 */
export function buildOps(tasks: readonly PlannedPath[], staged: StagedSet, disk: { get(path: string): { kind: string } | undefined }, written: DirectWrites = NO_DIRECT_WRITES): BuiltOps {
  const byPath = new Map(tasks.map((t) => [t.path, t]))
  const puts = new Map<string, { entry: Entry; task: PlannedPath }>()
  const deletes = new Map<string, LocalEntry>()
  for (const out of staged.files) {
    const task = byPath.get(out.path)
    if (out.outcome !== 'staged' || !task) continue
    if (out.action === 'put') puts.set(out.path, { entry: task.facts.target!, task })
    else if (task.facts.local) deletes.set(out.path, task.facts.local)
  }
  const implicitDirs = new Set<string>()
  const willBeDir = (p: string): boolean => {
    const put = puts.get(p)
    if (put) return put.entry.kind === 'dir'
    if (deletes.has(p)) return false
    const d = disk.get(p)
    if (d) return d.kind === 'dir'
    implicitDirs.add(p)
    return true
  }
  const blocked: string[] = []
  for (const path of [...puts.keys()].sort()) {
    const parts = path.split('/')
    for (let i = 1; i < parts.length; i++) {
      if (!willBeDir(parts.slice(0, i).join('/'))) {
        blocked.push(path)
        puts.delete(path)
        break
      }
    }
  }
  let backup = 0
  const unlinks: JournalOp[] = []
  const rmdirs: JournalOp[] = []
  const mkdirs: JournalOp[] = []
  const writes: JournalOp[] = []
  const summary: ApplySummary = { updated: 0, checkedOut: 0, removed: 0, blocked }
  for (const [path, local] of deletes) {
    if (local.kind === 'dir') rmdirs.push({ op: 'rmdir', path, mode: local.mode, required: false })
    else {
      unlinks.push({ op: 'unlink', path, backup: `old/${backup++}` })
      summary.removed++
    }
  }
  for (const [path, { entry, task }] of puts) {
    const local = task.facts.local
    if (entry.kind === 'dir') {
      if (local && local.kind !== 'dir') unlinks.push({ op: 'unlink', path, backup: `old/${backup++}` })
      mkdirs.push({ op: 'mkdir', path, mode: entry.mode, ...(written.owned.has(path) ? { owned: true as const } : {}) })
      continue
    }
    // Written in place, in a directory the run made (direct.ts): nothing to move.
    if (written.direct.has(path)) {
      summary.checkedOut++
      continue
    }
    if (local?.kind === 'dir') rmdirs.push({ op: 'rmdir', path, mode: local.mode, required: true })
    writes.push({ op: 'put', path, staged: task.slot!, backup: `old/${backup++}` })
    if (task.status === 'missing') summary.checkedOut++
    else summary.updated++
  }
  for (const path of implicitDirs) mkdirs.push({ op: 'mkdir', path, mode: 0o755 })
  rmdirs.sort((a, b) => (a.path < b.path ? 1 : a.path > b.path ? -1 : 0))
  mkdirs.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return { ops: [...unlinks, ...rmdirs, ...mkdirs, ...writes], summary }
}

export async function applyStaged(session: RunSession, target: RunTarget, staged: StagedSet): Promise<ApplySummary> {
  const { wc } = session
  const { ops, summary } = buildOps(session.plan?.tasks ?? [], staged, session.disk, session)
  for (const path of summary.blocked) session.opts.log.warn({ path }, `${path} is not installed: a file or symlink kept by the user is in the way above it`)
  if (ops.length > 0) {
    const journal = newJournal(target.from, target.to, ops)
    session.journal = journal
    await writeJournal(wc.layout, journal, step)
    mark('apply: journal written')
    await runJournal(wc.layout, journal, step)
    mark('apply: journal run')
  }
  // The commit point: from here on the new revision stands, so nothing below may throw.
  const request = session.request
  const state = wc.state
  wc.state = {
    ...state,
    current: target.to,
    topInstalled: Math.max(state.topInstalled, target.to),
    ...(session.journal ? { lastJournal: session.journal.id } : {}),
  }
  if (request?.kind === 'rollback') wc.state.hold = Math.max(state.hold ?? 0, state.newestVerified)
  else if (request?.rev !== undefined || target.to > (state.hold ?? 0)) delete wc.state.hold
  await wc.saveState()
  step('committed')
  try {
    await keepReplacedVersions(session, ops)
    mark('apply: replaced versions kept')
    await refreshStatCache(session, ops, target)
    mark('apply: stat cache saved')
    if (session.journal) await finishJournal(wc.layout, step)
    else await rm(wc.layout.staging, { recursive: true, force: true })
  } catch (err) {
    session.opts.log.warn({ err: errorMessage(err) }, 'cleanup after the commit failed; the next command finishes it')
  }
  return summary
}

/**
 * Pristine files replaced or deleted by the update are exactly the old revision's versions:
 * they go to the history store (by hard link) so a rollback to it needs no network.
 */
async function keepReplacedVersions(session: RunSession, ops: readonly JournalOp[]): Promise<void> {
  const { wc } = session
  for (const op of ops) {
    if (op.op !== 'put' && op.op !== 'unlink') continue
    const old = session.base.get(op.path)
    if (old?.kind !== 'file' || (await wc.history.has(old.sha256))) continue
    const file = stagingPath(wc.layout, op.backup)
    const h = await hashContent(file, old.size).catch(() => undefined)
    if (h && h.sha1 === old.sha1 && h.sha256 === old.sha256) await wc.history.adoptVerifiedFile(old.sha256, file)
  }
}

/**
 * The files just installed are known: record them so the next status reads none of them. A run
 * planned from the tree diff rewrites the stat index for the new revision, its paths only
 * (issue 13 items 3 and 6); a run planned from every path saves the hashes it knows.
 */
async function refreshStatCache(session: RunSession, ops: readonly JournalOp[], target: RunTarget): Promise<void> {
  const { wc, cache } = session
  // What each path the run wrote holds now: one lstat each, shared by the cache and the index.
  const after = new Map<string, DiskEntry | undefined>()
  const record = (path: string): void => {
    const entry = session.target.get(path)
    // Synchronous: one lstat is a few microseconds, its promise a thread-pool round trip (20 000
    // of them after a first install were 1.6 s).
    const written = session.writtenStats.get(path)
    const d: DiskEntry | undefined = written ? { kind: 'file', st: written } : diskEntrySync(treePath(wc.layout, path))
    after.set(path, d)
    if (entry?.kind === 'file' && d?.kind === 'file') cache.set(path, d.st, entry)
    else cache.delete(path)
  }
  for (const op of ops) {
    if (op.op === 'put') record(op.path)
    else if (op.op === 'unlink') cache.delete(op.path)
  }
  // The files written in place (direct.ts), which the journal does not move: the batch's with the
  // fstat taken as each was closed, the others with an lstat.
  for (const path of session.direct) record(path)
  session.writtenStats.clear()
  mark('apply: written paths read')
  if (session.changes) {
    const entries = new Map<string, Entry | undefined>()
    for (const path of session.base.keys()) entries.set(path, session.target.get(path))
    for (const [path, e] of session.target) entries.set(path, e)
    await reindexAfterUpdate(wc, target.to, entries, cache)
  } else if (session.classified) {
    await indexAfterFullUpdate(wc, target.to, session.classified, ops, after, cache)
  } else await cache.save(wc.layout.statCache, wc.layout.tmp)
}

/** Undoes a failed apply; a journal that reached its commit is left for recovery to finish. */
export async function undoApply(session: RunSession): Promise<void> {
  const { layout } = session.wc
  const journal = session.journal ?? (await readJournal(layout))
  if (!journal) {
    await discardStaging(session)
    return
  }
  if ((await readState(layout)).lastJournal === journal.id) return
  await undoJournal(layout, journal, step)
  await finishJournal(layout, step)
}

/** Drops what the download phase staged, and undoes the directories it made and wrote into (direct.ts). */
export async function discardStaging(session: RunSession): Promise<void> {
  const { layout } = session.wc
  if (session.journal) {
    await undoJournal(layout, session.journal, step)
    await finishJournal(layout, step)
    session.journal = undefined
    return
  }
  await rm(layout.staging, { recursive: true, force: true })
  step('staging.discarded')
}
