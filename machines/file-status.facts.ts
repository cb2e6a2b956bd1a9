// The facts the file-status statechart decides a path's status from (R-STATUS, claim 7), as the
// events that carry them: what the ignore rules say, what the installed revision (base) and the
// revision compared with (target) hold at the path, and what is on disk there. Pure: no xstate,
// so that `status` can classify through the table derived from the statechart
// (machines/generated/file-status-table.ts) without loading it.
import type { Entry } from '../infra/release/manifest.ts'

export const FILE_STATUSES = ['current', 'ignored', 'conflict', 'outdated', 'missing', 'modified', 'unversioned', 'removed'] as const
export type FileStatus = (typeof FILE_STATUSES)[number]

/** What is on disk at a path (never following a symlink). */
export type LocalEntry =
  | { kind: 'file'; mode: number; size: number; sha1: string; sha256: string }
  | { kind: 'symlink'; target: string }
  | { kind: 'dir'; mode: number }
  | { kind: 'other' }

/**
 * Everything the classification needs: the entry in the installed revision (`base`), in the
 * revision being compared with or installed (`target`), what is on disk, and the ignore rules.
 */
export interface FileFacts {
  ignored: boolean
  base?: Entry
  target?: Entry
  local?: LocalEntry
}

/**
 * Whether two entries are the same version: files by SHA-1, SHA-256 and permission bits,
 * symlinks by target, directories by kind (their mode is applied when they are created).
 */
export function sameEntry(a: LocalEntry | Entry, b: Entry): boolean {
  switch (b.kind) {
    case 'file':
      return a.kind === 'file' && a.sha1 === b.sha1 && a.sha256 === b.sha256 && (a.mode & 0o7777) === (b.mode & 0o7777)
    case 'symlink':
      return a.kind === 'symlink' && a.target === b.target
    case 'dir':
      return a.kind === 'dir'
  }
}

/** Statuses the update acts on; every other status leaves the path untouched. */
export function needsAction(status: FileStatus): boolean {
  return status === 'outdated' || status === 'missing' || status === 'removed' || status === 'conflict'
}

/**
 * The statechart's event alphabet, in the order the facts arrive: the ignore rules, then the
 * installed revision, then the target revision (compared with the installed one), then the disk
 * (compared with both). A comparison is made by whoever observes the fact (`sameEntry`), so the
 * statechart's transitions depend on event types alone and compile into a table.
 */
export type FileFactEvent =
  /** R-STATUS-2: the ignore rules cover the path. */
  | { type: 'rules.ignored' }
  | { type: 'rules.tracked' }
  /** The installed revision has an entry at the path. */
  | { type: 'base.present'; entry: Entry }
  | { type: 'base.absent' }
  /** The target revision has the same version as the installed one. */
  | { type: 'target.same'; entry: Entry }
  /** The target revision has another version than the installed one. */
  | { type: 'target.changed'; entry: Entry }
  /** The target revision has an entry the installed one has not. */
  | { type: 'target.added'; entry: Entry }
  | { type: 'target.absent' }
  /** On disk: the target's version. */
  | { type: 'local.asTarget'; entry: LocalEntry }
  /** On disk: the installed version, not the target's. */
  | { type: 'local.asBase'; entry: LocalEntry }
  /** On disk: something neither revision has (changed by hand, or never versioned). */
  | { type: 'local.other'; entry: LocalEntry }
  | { type: 'local.absent' }

export type FileFactType = FileFactEvent['type']

export const rulesFact = (f: FileFacts): FileFactType => (f.ignored ? 'rules.ignored' : 'rules.tracked')

export const baseFact = (f: FileFacts): FileFactType => (f.base ? 'base.present' : 'base.absent')

export function targetFact(f: FileFacts): FileFactType {
  if (!f.target) return 'target.absent'
  if (!f.base) return 'target.added'
  return sameEntry(f.base, f.target) ? 'target.same' : 'target.changed'
}

/** The target's version wins when the disk matches both (then they are the same version). */
export function localFact(f: FileFacts): FileFactType {
  if (!f.local) return 'local.absent'
  if (f.target && sameEntry(f.local, f.target)) return 'local.asTarget'
  if (f.base && sameEntry(f.local, f.base)) return 'local.asBase'
  return 'local.other'
}

/** The four stages of facts, in the order the statechart takes them. */
export const FACT_STAGES: readonly ((f: FileFacts) => FileFactType)[] = [rulesFact, baseFact, targetFact, localFact]

/** The events that tell the statechart the facts of one path, in order. */
export function factEvents(f: FileFacts): FileFactEvent[] {
  const target = targetFact(f)
  const local = localFact(f)
  return [
    f.ignored ? { type: 'rules.ignored' } : { type: 'rules.tracked' },
    f.base ? { type: 'base.present', entry: f.base } : { type: 'base.absent' },
    target === 'target.absent' || !f.target ? { type: 'target.absent' } : { type: target as 'target.same' | 'target.changed' | 'target.added', entry: f.target },
    local === 'local.absent' || !f.local ? { type: 'local.absent' } : { type: local as 'local.asTarget' | 'local.asBase' | 'local.other', entry: f.local },
  ]
}

/**
 * The statechart compiled: event type → the next node, until a status. Generated from the
 * machine by scripts/file-status-table.ts into machines/generated/file-status-table.ts.
 */
export interface FileStatusTable {
  readonly [event: string]: FileStatusTable | FileStatus
}
