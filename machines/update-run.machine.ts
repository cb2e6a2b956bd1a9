// One run of the updater on a working copy (R-UPDATER, R-STATUS, R-ROLLBACK):
// idle → checking (which revision, verified manifest) → planning (status of every path) →
// downloading (per path: the file-status machine, which alerts, downloads, verifies and
// stages) → applying (commit by renames under the journal) → retaining (history store kept to
// the last K revisions) → done. Nothing in the tree changes before `applying`; a failure
// there is undone from the journal (rolledBack). Pure: the I/O is provided by actors/updater.
// Issue 16 item 2 (Mender state scripts, RAUC mark-good): an update run with install hooks runs
// the pre-install hook before `applying` (failure: nothing changed, the run fails), then the
// post-install hook and the health check after it; a failure or a health check past its time
// reverts the working copy to the revision it came from (R-ROLLBACK, from local history) and the
// run ends `reverted`.
import { assign, emit, fromPromise, setup } from 'xstate'
import type { ConflictPolicy, FileFacts, FileStatus, FileStatusOutput } from './file-status.machine.ts'

export type RunKind = 'checkout' | 'update' | 'rollback'
export type RunPhase = 'checking' | 'planning' | 'downloading' | 'preInstall' | 'applying' | 'postInstall' | 'health' | 'reverting' | 'retaining'

/** Commands run around an update's install (issue 16 item 2); shell command lines. */
export interface InstallHooks {
  preInstall?: string
  postInstall?: string
  health?: string
  /** How long the health command may take before it counts as failed. */
  healthTimeoutMs: number
}

export type HookName = 'pre-install' | 'post-install' | 'health'

export interface HookInput {
  hook: HookName
  command: string
  target: RunTarget
  /** `revert`: the post-install hook after the working copy went back (the program restarts on the old revision). */
  run: 'update' | 'revert'
}

export interface RunRequest {
  kind: RunKind
  /** Explicit revision; without it, an update goes to the newest verified revision. */
  rev?: number
  onConflict: ConflictPolicy
  /** Only update runs that change the revision run them. */
  hooks?: InstallHooks
}

export interface RunTarget {
  from: number
  to: number
}

export interface PlannedPath {
  path: string
  status: FileStatus
  facts: FileFacts
  slot?: string
}

export interface RunPlan {
  /** Paths the run acts on (outdated, missing, removed, conflict); all others are left alone. */
  tasks: PlannedPath[]
  conflicts: string[]
}

export interface StagedSet {
  files: FileStatusOutput[]
  failed: string[]
  bytesFromServers: number
  bytesFromPeers: number
}

export interface ApplySummary {
  updated: number
  checkedOut: number
  removed: number
  /** Paths of the target not installed: something the user keeps (a file, a symlink) is in the way above them. */
  blocked: string[]
}

export interface RunFailure {
  phase: RunPhase
  /**
   * conflicts: policy `abort` met a conflict; downloads: some path could not be fetched; hook: an
   * install hook failed; health: the health check failed; timeout: it did not end in time.
   */
  reason: 'conflicts' | 'downloads' | 'error' | 'hook' | 'health' | 'timeout'
  error?: unknown
  paths?: string[]
}

export interface RunOutput {
  /** reverted: installed, then failed a post-install hook or the health check, and went back to `target.from`. */
  outcome: 'done' | 'failed' | 'rolledBack' | 'reverted'
  target?: RunTarget
  plan?: RunPlan
  staged?: StagedSet
  applied?: ApplySummary
  warnings: string[]
  failure?: RunFailure
}

export type RunEvent = { type: 'run.start' }
export type RunEmitted = { type: 'run.phase'; phase: RunPhase }

interface RunContext {
  request: RunRequest
  outcome: RunOutput['outcome']
  target?: RunTarget
  plan?: RunPlan
  staged?: StagedSet
  applied?: ApplySummary
  warnings: string[]
  failure?: RunFailure
}

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`update-run machine: actor ${name} is not provided`)
}

export const updateRunMachine = setup({
  types: {
    context: {} as RunContext,
    events: {} as RunEvent,
    input: {} as RunRequest,
    output: {} as RunOutput,
    emitted: {} as RunEmitted,
  },
  actors: {
    /** Recovered working copy → the revision to go to, its manifest verified (R-WATCH). */
    check: fromPromise<RunTarget, RunRequest>(notProvided('check')),
    /** Status of every path against the target (R-STATUS). */
    plan: fromPromise<RunPlan, { request: RunRequest; target: RunTarget }>(notProvided('plan')),
    /** Runs the file-status machine of every planned path. */
    download: fromPromise<StagedSet, { request: RunRequest; target: RunTarget; plan: RunPlan }>(notProvided('download')),
    /** Drops everything staged; the tree was not touched. */
    discard: fromPromise<void, void>(notProvided('discard')),
    /** Journal, renames, commit of the new revision. */
    apply: fromPromise<ApplySummary, { target: RunTarget; staged: StagedSet }>(notProvided('apply')),
    /** Undoes a failed apply from the journal. */
    undo: fromPromise<void, void>(notProvided('undo')),
    /** Runs one install hook or the health check; fails when the command fails. */
    runHook: fromPromise<void, HookInput>(notProvided('runHook')),
    /** Takes the working copy back to `target.from` (R-ROLLBACK) after a failed check; records and alerts it. */
    revert: fromPromise<void, { target: RunTarget; failure: RunFailure }>(notProvided('revert')),
    /** History window, garbage collection, stat cache; returns warnings (never fails the run). */
    retain: fromPromise<string[], { request: RunRequest; target: RunTarget }>(notProvided('retain')),
  },
  delays: {
    healthTimeout: ({ context }) => context.request.hooks?.healthTimeoutMs ?? 60_000,
  },
  guards: {
    /** An update that changes the revision runs the hook, when it is given. */
    hasHook: ({ context }, hook: 'preInstall' | 'postInstall' | 'health') =>
      context.request.kind === 'update' && context.request.hooks?.[hook] !== undefined && context.target !== undefined && context.target.from !== context.target.to,
    abortOnConflicts: ({ context }, plan: RunPlan) => context.request.onConflict === 'abort' && plan.conflicts.length > 0,
    someDownloadFailed: (_, staged: StagedSet) => staged.failed.length > 0,
  },
  actions: {
    announce: emit((_, phase: RunPhase) => ({ type: 'run.phase' as const, phase })),
    fail: assign((_, failure: RunFailure) => ({ failure })),
    warn: assign(({ context }, p: { error: unknown }) => ({ warnings: [...context.warnings, String((p.error as Error)?.message ?? p.error)] })),
  },
}).createMachine({
  id: 'updateRun',
  context: ({ input }) => ({ request: input, outcome: 'failed', warnings: [] }),
  initial: 'idle',
  states: {
    idle: {
      on: { 'run.start': 'checking' },
    },
    checking: {
      entry: { type: 'announce', params: 'checking' },
      invoke: {
        src: 'check',
        input: ({ context }) => context.request,
        onDone: { target: 'planning', actions: assign({ target: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => ({ phase: 'checking', reason: 'error', error: event.error }) } },
      },
    },
    planning: {
      entry: { type: 'announce', params: 'planning' },
      invoke: {
        src: 'plan',
        input: ({ context }) => ({ request: context.request, target: context.target! }),
        onDone: [
          {
            guard: { type: 'abortOnConflicts', params: ({ event }) => event.output },
            target: 'failed',
            actions: [
              assign({ plan: ({ event }) => event.output }),
              { type: 'fail', params: ({ event }) => ({ phase: 'planning', reason: 'conflicts', paths: event.output.conflicts }) },
            ],
          },
          { target: 'downloading', actions: assign({ plan: ({ event }) => event.output }) },
        ],
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => ({ phase: 'planning', reason: 'error', error: event.error }) } },
      },
    },
    downloading: {
      entry: { type: 'announce', params: 'downloading' },
      invoke: {
        src: 'download',
        input: ({ context }) => ({ request: context.request, target: context.target!, plan: context.plan! }),
        onDone: [
          {
            guard: { type: 'someDownloadFailed', params: ({ event }) => event.output },
            target: 'discarding',
            actions: [
              assign({ staged: ({ event }) => event.output }),
              { type: 'fail', params: ({ event }) => ({ phase: 'downloading', reason: 'downloads', paths: event.output.failed }) },
            ],
          },
          { guard: { type: 'hasHook', params: 'preInstall' }, target: 'preInstalling', actions: assign({ staged: ({ event }) => event.output }) },
          { target: 'applying', actions: assign({ staged: ({ event }) => event.output }) },
        ],
        onError: {
          target: 'discarding',
          actions: { type: 'fail', params: ({ event }) => ({ phase: 'downloading', reason: 'error', error: event.error }) },
        },
      },
    },
    discarding: {
      invoke: { src: 'discard', onDone: 'failed', onError: 'failed' },
    },
    // Everything is staged and verified; the tree is untouched until the hook says yes.
    preInstalling: {
      entry: { type: 'announce', params: 'preInstall' },
      invoke: {
        src: 'runHook',
        input: ({ context }) => ({ hook: 'pre-install' as const, command: context.request.hooks!.preInstall!, target: context.target!, run: 'update' as const }),
        onDone: 'applying',
        onError: { target: 'discarding', actions: { type: 'fail', params: ({ event }) => ({ phase: 'preInstall', reason: 'hook', error: event.error }) } },
      },
    },
    applying: {
      entry: { type: 'announce', params: 'applying' },
      invoke: {
        src: 'apply',
        input: ({ context }) => ({ target: context.target!, staged: context.staged! }),
        onDone: [
          { guard: { type: 'hasHook', params: 'postInstall' }, target: 'postInstalling', actions: assign({ applied: ({ event }) => event.output }) },
          { guard: { type: 'hasHook', params: 'health' }, target: 'healthChecking', actions: assign({ applied: ({ event }) => event.output }) },
          { target: 'retaining', actions: assign({ applied: ({ event }) => event.output }) },
        ],
        onError: {
          target: 'rollingBack',
          actions: { type: 'fail', params: ({ event }) => ({ phase: 'applying', reason: 'error', error: event.error }) },
        },
      },
    },
    rollingBack: {
      invoke: {
        src: 'undo',
        onDone: 'rolledBack',
        // The journal stays: the next command on the working copy finishes the recovery.
        onError: { target: 'failed', actions: assign({ warnings: ({ context, event }) => [...context.warnings, String((event.error as Error)?.message ?? event.error)] }) },
      },
    },
    postInstalling: {
      entry: { type: 'announce', params: 'postInstall' },
      invoke: {
        src: 'runHook',
        input: ({ context }) => ({ hook: 'post-install' as const, command: context.request.hooks!.postInstall!, target: context.target!, run: 'update' as const }),
        onDone: [{ guard: { type: 'hasHook', params: 'health' }, target: 'healthChecking' }, { target: 'retaining' }],
        onError: { target: 'reverting', actions: { type: 'fail', params: ({ event }) => ({ phase: 'postInstall', reason: 'hook', error: event.error }) } },
      },
    },
    // The new revision is committed; it stays only if the health command says so in time.
    healthChecking: {
      entry: { type: 'announce', params: 'health' },
      invoke: {
        src: 'runHook',
        input: ({ context }) => ({ hook: 'health' as const, command: context.request.hooks!.health!, target: context.target!, run: 'update' as const }),
        onDone: 'retaining',
        onError: { target: 'reverting', actions: { type: 'fail', params: ({ event }) => ({ phase: 'health', reason: 'health', error: event.error }) } },
      },
      after: {
        healthTimeout: { target: 'reverting', actions: { type: 'fail', params: { phase: 'health', reason: 'timeout' } } },
      },
    },
    reverting: {
      entry: { type: 'announce', params: 'reverting' },
      invoke: {
        src: 'revert',
        input: ({ context }) => ({ target: context.target!, failure: context.failure! }),
        onDone: [{ guard: { type: 'hasHook', params: 'postInstall' }, target: 'restarting' }, { target: 'reverted' }],
        // The revert's own failure is said; the failed revision may still be installed.
        onError: { target: 'failed', actions: { type: 'warn', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    // The post-install hook once more, on the revision gone back to (e.g. restart the program).
    restarting: {
      invoke: {
        src: 'runHook',
        input: ({ context }) => ({ hook: 'post-install' as const, command: context.request.hooks!.postInstall!, target: { from: context.target!.to, to: context.target!.from }, run: 'revert' as const }),
        onDone: 'reverted',
        onError: { target: 'reverted', actions: { type: 'warn', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    retaining: {
      entry: { type: 'announce', params: 'retaining' },
      invoke: {
        src: 'retain',
        input: ({ context }) => ({ request: context.request, target: context.target! }),
        onDone: { target: 'done', actions: assign({ warnings: ({ context, event }) => [...context.warnings, ...event.output] }) },
        onError: { target: 'done', actions: assign({ warnings: ({ context, event }) => [...context.warnings, String((event.error as Error)?.message ?? event.error)] }) },
      },
    },
    done: { type: 'final', entry: assign({ outcome: 'done' }) },
    failed: { type: 'final', entry: assign({ outcome: 'failed' }) },
    rolledBack: { type: 'final', entry: assign({ outcome: 'rolledBack' }) },
    reverted: { type: 'final', entry: assign({ outcome: 'reverted' }) },
  },
  output: ({ context }) => ({
    outcome: context.outcome,
    ...(context.target ? { target: context.target } : {}),
    ...(context.plan ? { plan: context.plan } : {}),
    ...(context.staged ? { staged: context.staged } : {}),
    ...(context.applied ? { applied: context.applied } : {}),
    warnings: context.warnings,
    ...(context.failure ? { failure: context.failure } : {}),
  }),
})
