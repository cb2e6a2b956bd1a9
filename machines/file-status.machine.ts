// The status of one path of a working copy and what the updater does about it (R-STATUS,
// claim 7): classify → noop (current, modified, unversioned) | ignore (ignored, R-STATUS-2) |
// alert (conflict, R-STATUS-3) | download → verify → (retry) → stage (outdated R-STATUS-4,
// missing R-STATUS-5) | stage a removal (removed). The download itself is the download
// machine. Staged entries are committed all at once, under the journal, by the update run.
import { assign, fromPromise, setup } from 'xstate'
import type { Entry } from '../infra/release/manifest.ts'
import { downloadMachine, type DownloadOutput } from './download.machine.ts'

export const FILE_STATUSES = ['current', 'ignored', 'conflict', 'outdated', 'missing', 'modified', 'unversioned', 'removed'] as const
export type FileStatus = (typeof FILE_STATUSES)[number]

export type ConflictPolicy = 'alert' | 'overwrite' | 'abort'

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

/** Each status's test; the first that holds, in STATUS_ORDER, is the path's status. */
export const STATUS_TESTS: Record<FileStatus, (f: FileFacts) => boolean> = {
  ignored: (f) => f.ignored,
  unversioned: (f) => !f.base && !f.target,
  current: (f) => !!f.target && !!f.local && sameEntry(f.local, f.target),
  removed: (f) => !!f.base && !f.target && (!f.local || sameEntry(f.local, f.base)),
  missing: (f) => !!f.target && !f.local,
  outdated: (f) => !!f.base && !!f.target && !sameEntry(f.base, f.target) && !!f.local && sameEntry(f.local, f.base),
  modified: (f) => !!f.base && !!f.target && sameEntry(f.base, f.target),
  // Changed by hand AND out of date: differs from both the installed and the new version.
  conflict: () => true,
}
export const STATUS_ORDER: readonly FileStatus[] = ['ignored', 'unversioned', 'current', 'removed', 'missing', 'outdated', 'modified', 'conflict']

/** The classification of the machine's `classify` state, as a function (used by `status`). */
export function classifyFile(facts: FileFacts): FileStatus {
  return STATUS_ORDER.find((s) => STATUS_TESTS[s](facts))!
}

/** Statuses the update acts on; every other status leaves the path untouched. */
export function needsAction(status: FileStatus): boolean {
  return status === 'outdated' || status === 'missing' || status === 'removed' || status === 'conflict'
}

export interface FileStatusInput {
  path: string
  facts: FileFacts
  onConflict: ConflictPolicy
  /** Staging slot for a new file or symlink. */
  slot?: string
  maxAttempts?: number
}

export interface FileStatusOutput {
  path: string
  status: FileStatus
  /** noop: nothing to do; kept: a conflict left alone; staged: ready to commit; failed. */
  outcome: 'noop' | 'kept' | 'staged' | 'failed'
  /** For a staged path: write the target entry, or delete what is there. */
  action?: 'put' | 'delete'
  download?: DownloadOutput
  alerted: boolean
  alertError?: string
  error?: string
}

interface FileStatusContext extends FileStatusInput {
  status: FileStatus | undefined
  outcome: FileStatusOutput['outcome']
  action: FileStatusOutput['action']
  download: DownloadOutput | undefined
  alerted: boolean
  alertError: string | undefined
  error: string | undefined
}

export interface AlertInput {
  path: string
  facts: FileFacts
}

const test = (status: FileStatus) => ({ context }: { context: FileStatusContext }) => STATUS_TESTS[status](context.facts)

export const fileStatusMachine = setup({
  types: {
    context: {} as FileStatusContext,
    input: {} as FileStatusInput,
    output: {} as FileStatusOutput,
  },
  actors: {
    /** Publishes the administrators' alert (R-STATUS-3). */
    alert: fromPromise<void, AlertInput>(async () => {
      throw new Error('file-status machine: actor alert is not provided')
    }),
    download: downloadMachine,
  },
  guards: {
    isIgnored: test('ignored'),
    isUnversioned: test('unversioned'),
    isCurrent: test('current'),
    isRemoved: test('removed'),
    isMissing: test('missing'),
    isOutdated: test('outdated'),
    isModified: test('modified'),
    presentLocally: ({ context }) => context.facts.local !== undefined,
    overwriteWithTarget: ({ context }) => context.onConflict === 'overwrite' && context.facts.target !== undefined,
    overwriteByRemoval: ({ context }) => context.onConflict === 'overwrite',
    downloaded: (_, output: DownloadOutput) => output.ok,
  },
  actions: {
    setStatus: assign((_, status: FileStatus) => ({ status })),
  },
}).createMachine({
  id: 'fileStatus',
  context: ({ input }) => ({
    ...input,
    status: undefined,
    outcome: 'noop',
    action: undefined,
    download: undefined,
    alerted: false,
    alertError: undefined,
    error: undefined,
  }),
  initial: 'classify',
  states: {
    classify: {
      always: [
        { guard: 'isIgnored', target: 'ignored' },
        { guard: 'isUnversioned', target: 'unversioned' },
        { guard: 'isCurrent', target: 'current' },
        { guard: 'isRemoved', target: 'removed' },
        { guard: 'isMissing', target: 'missing' },
        { guard: 'isOutdated', target: 'outdated' },
        { guard: 'isModified', target: 'modified' },
        { target: 'conflict' },
      ],
    },
    // R-STATUS-1 and the other no-ops.
    current: { type: 'final', entry: { type: 'setStatus', params: 'current' } },
    // R-STATUS-2: takes no part in the update.
    ignored: { type: 'final', entry: { type: 'setStatus', params: 'ignored' } },
    modified: { type: 'final', entry: { type: 'setStatus', params: 'modified' } },
    unversioned: { type: 'final', entry: { type: 'setStatus', params: 'unversioned' } },
    // R-STATUS-3: never overwritten silently; the administrators are told.
    conflict: {
      entry: { type: 'setStatus', params: 'conflict' },
      always: { target: 'alerting' },
    },
    alerting: {
      invoke: {
        src: 'alert',
        input: ({ context }) => ({ path: context.path, facts: context.facts }),
        onDone: { target: 'alerted', actions: assign({ alerted: true }) },
        onError: { target: 'alerted', actions: assign({ alertError: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
      },
    },
    alerted: {
      always: [
        { guard: 'overwriteWithTarget', target: 'downloading' },
        { guard: 'overwriteByRemoval', target: 'staged', actions: assign({ action: 'delete' }) },
        { target: 'kept' },
      ],
    },
    // R-STATUS-4: update.
    outdated: {
      entry: { type: 'setStatus', params: 'outdated' },
      always: { target: 'downloading' },
    },
    // R-STATUS-5: checkout.
    missing: {
      entry: { type: 'setStatus', params: 'missing' },
      always: { target: 'downloading' },
    },
    removed: {
      entry: { type: 'setStatus', params: 'removed' },
      always: [{ guard: 'presentLocally', target: 'staged', actions: assign({ action: 'delete' }) }, { target: 'gone' }],
    },
    downloading: {
      invoke: {
        src: 'download',
        input: ({ context }) => ({ entry: context.facts.target!, slot: context.slot, maxAttempts: context.maxAttempts }),
        onDone: [
          {
            guard: { type: 'downloaded', params: ({ event }) => event.output },
            target: 'staged',
            actions: assign({ action: 'put', download: ({ event }) => event.output }),
          },
          {
            target: 'failed',
            actions: assign({
              download: ({ event }) => event.output,
              error: ({ context, event }) => `cannot download ${context.path}: ${event.output.errors.join('; ') || 'no attempt succeeded'}`,
            }),
          },
        ],
        onError: { target: 'failed', actions: assign({ error: ({ event }) => String((event.error as Error)?.message ?? event.error) }) },
      },
    },
    staged: { type: 'final', entry: assign({ outcome: 'staged' }) },
    kept: { type: 'final', entry: assign({ outcome: 'kept' }) },
    gone: { type: 'final' },
    failed: { type: 'final', entry: assign({ outcome: 'failed' }) },
  },
  output: ({ context }) => ({
    path: context.path,
    status: context.status!,
    outcome: context.outcome,
    ...(context.action ? { action: context.action } : {}),
    ...(context.download ? { download: context.download } : {}),
    alerted: context.alerted,
    ...(context.alertError ? { alertError: context.alertError } : {}),
    ...(context.error ? { error: context.error } : {}),
  }),
})
