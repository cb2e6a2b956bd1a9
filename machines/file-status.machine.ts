// The status of one path of a working copy and what the updater does about it (R-STATUS,
// claim 7), decided by the facts arriving as events (machines/file-status.facts.ts): the
// ignore rules (R-STATUS-2), the installed revision, the target revision, the disk. Then:
// noop (current R-STATUS-1, modified, unversioned) | ignore (ignored, R-STATUS-2) | alert
// (conflict, R-STATUS-3) | download → verify → (retry) → stage (outdated R-STATUS-4, missing
// R-STATUS-5) | stage a removal (removed). The download itself is the download machine. Staged
// entries are committed all at once, under the journal, by the update run. `status` classifies
// through the table compiled from this chart (machines/generated/file-status-table.ts).
import { assign, fromPromise, setup } from 'xstate'
import { downloadMachine, type DownloadOutput } from './download.machine.ts'
import type { FileFactEvent, FileFacts, FileStatus } from './file-status.facts.ts'

export { FILE_STATUSES, factEvents, needsAction, sameEntry } from './file-status.facts.ts'
export type { FileFactEvent, FileFacts, FileStatus, LocalEntry } from './file-status.facts.ts'

export type ConflictPolicy = 'alert' | 'overwrite' | 'abort'

export interface FileStatusInput {
  path: string
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
  /** The facts received so far. */
  facts: FileFacts
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

/** The facts with one more, as an event brings it. */
function withFact(facts: FileFacts, event: FileFactEvent): FileFacts {
  switch (event.type) {
    case 'rules.ignored':
      return { ...facts, ignored: true }
    case 'base.present':
      return { ...facts, base: event.entry }
    case 'target.same':
    case 'target.changed':
    case 'target.added':
      return { ...facts, target: event.entry }
    case 'local.asTarget':
    case 'local.asBase':
    case 'local.other':
      return { ...facts, local: event.entry }
    default:
      return facts
  }
}

/** A transition to a status (a top-level state), recording the fact that decided it. */
const decide = (status: FileStatus) => ({ target: `#fileStatus.${status}`, actions: 'recordFact' as const })

export const fileStatusMachine = setup({
  types: {
    context: {} as FileStatusContext,
    input: {} as FileStatusInput,
    output: {} as FileStatusOutput,
    events: {} as FileFactEvent,
  },
  actors: {
    /** Publishes the administrators' alert (R-STATUS-3). */
    alert: fromPromise<void, AlertInput>(async () => {
      throw new Error('file-status machine: actor alert is not provided')
    }),
    download: downloadMachine,
  },
  guards: {
    presentLocally: ({ context }) => context.facts.local !== undefined,
    overwriteWithTarget: ({ context }) => context.onConflict === 'overwrite' && context.facts.target !== undefined,
    overwriteByRemoval: ({ context }) => context.onConflict === 'overwrite',
    downloaded: (_, output: DownloadOutput) => output.ok,
  },
  actions: {
    recordFact: assign({ facts: ({ context, event }) => withFact(context.facts, event) }),
    setStatus: assign((_, status: FileStatus) => ({ status })),
  },
}).createMachine({
  id: 'fileStatus',
  context: ({ input }) => ({
    ...input,
    facts: { ignored: false },
    status: undefined,
    outcome: 'noop',
    action: undefined,
    download: undefined,
    alerted: false,
    alertError: undefined,
    error: undefined,
  }),
  initial: 'classifying',
  states: {
    // R-STATUS, claim 7: the facts of the path arrive stage by stage; the first stage that
    // settles the status ends the classification.
    classifying: {
      description: 'The facts of one path arrive: ignore rules, installed revision, target revision, disk.',
      initial: 'rules',
      states: {
        rules: {
          description: 'Do the ignore rules cover the path? (R-STATUS-2)',
          on: {
            'rules.ignored': decide('ignored'),
            'rules.tracked': 'installed',
          },
        },
        installed: {
          description: 'Has the installed revision an entry at the path?',
          on: {
            'base.present': { target: 'inInstalled', actions: 'recordFact' },
            'base.absent': 'notInstalled',
          },
        },
        inInstalled: {
          description: 'Installed. What has the target revision at the path?',
          on: {
            'target.same': { target: 'unchanged', actions: 'recordFact' },
            'target.changed': { target: 'changed', actions: 'recordFact' },
            'target.absent': 'dropped',
          },
        },
        notInstalled: {
          description: 'Not installed. Has the target revision an entry at the path?',
          on: {
            'target.added': { target: 'added', actions: 'recordFact' },
            'target.absent': decide('unversioned'),
          },
        },
        unchanged: {
          description: 'The target keeps the installed version. What is on disk?',
          on: {
            'local.asTarget': decide('current'),
            'local.other': decide('modified'),
            'local.absent': decide('missing'),
          },
        },
        changed: {
          description: 'The target has a new version. What is on disk?',
          on: {
            'local.asTarget': decide('current'),
            'local.asBase': decide('outdated'),
            'local.other': decide('conflict'),
            'local.absent': decide('missing'),
          },
        },
        dropped: {
          description: 'The target no longer has the path. What is on disk?',
          on: {
            'local.asBase': decide('removed'),
            'local.other': decide('conflict'),
            'local.absent': decide('removed'),
          },
        },
        added: {
          description: 'The target adds the path. What is on disk?',
          on: {
            'local.asTarget': decide('current'),
            'local.other': decide('conflict'),
            'local.absent': decide('missing'),
          },
        },
      },
    },
    // R-STATUS-1 and the other no-ops.
    current: { type: 'final', description: 'R-STATUS-1: unmodified and current; nothing to do.', entry: { type: 'setStatus', params: 'current' } },
    // R-STATUS-2: takes no part in the update.
    ignored: { type: 'final', description: 'R-STATUS-2: locally ignored; takes no part in the update.', entry: { type: 'setStatus', params: 'ignored' } },
    modified: { type: 'final', description: 'Changed by hand, not out of date; left alone.', entry: { type: 'setStatus', params: 'modified' } },
    unversioned: { type: 'final', description: 'In neither revision; left alone.', entry: { type: 'setStatus', params: 'unversioned' } },
    // R-STATUS-3: never overwritten silently; the administrators are told.
    conflict: {
      description: 'R-STATUS-3: modified and out of date; the administrators are alerted.',
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
      description: 'R-STATUS-4: unmodified and out of date; the new version is downloaded (update).',
      entry: { type: 'setStatus', params: 'outdated' },
      always: { target: 'downloading' },
    },
    // R-STATUS-5: checkout.
    missing: {
      description: 'R-STATUS-5: missing from the working copy; downloaded (checkout).',
      entry: { type: 'setStatus', params: 'missing' },
      always: { target: 'downloading' },
    },
    removed: {
      description: 'In the installed revision only, and pristine or gone; deleted.',
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
