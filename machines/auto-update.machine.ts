// The sharing daemon's updates (issue 11 item 2, R-WATCH, R-ROLLBACK): one statechart decides when
// a run starts, whoever asks — a release announced on the stream or the feed (automatic, with
// --auto), or an explicit request (`update` through the daemon). A run that fails, or falls short
// of the announced revision, backs off before the next try; a rolled-back copy waits in `held`
// until a release newer than the one it left is announced or someone asks for a revision. With
// NATS, an automatic run also waits until some holder (a server that synced it, a peer at it, the
// feed's peers) has the announced revision: the stream tells of a release before anyone holds it.
// Inside the sharing daemon (machines/share-daemon.machine.ts) it is a child actor: it starts
// `ready: false` until the daemon's first round of discovery ends (a run with no peer would send
// everything to the servers), and tells its parent every outcome by event as well as emitting it.
// A run is three steps: `openRun` makes it ready (the updater's update-run statechart, wired to the
// locked working copy), the machine runs that statechart as its child `updateRun` (so it is part
// of this actor tree, in live inspection too: issue 12 item 1), and `closeRun` turns its output
// into the outcome and releases the working copy.
// Issue 16 item 1: once a staged rollout governs the product, the daemon tells the machine the
// revision the client's stage lets it be on (`rollout.target`); automatic runs then go to that
// revision (by number), up as the stage allows, and down when the revision it is on is halted.
import { assign, enqueueActions, fromPromise, setup, stopChild, type AnyActorLogic, type AnyActorRef } from 'xstate'

export interface AutoUpdateRequest {
  rev?: number
  onConflict?: 'alert' | 'overwrite' | 'abort'
}

/** The working copy after a run: where it is and the rollback hold it keeps. */
export interface RunOutcome {
  to: number
  hold: number | undefined
  /** What the run reports to whoever asked (the daemon's DaemonUpdate); opaque to the machine. */
  report?: unknown
  /**
   * Issue 16 item 2: the run installed `rev`, which failed its health check (or post-install hook),
   * and the working copy went back (to `to`, with a hold on `rev`); `error` says so to whoever asked.
   */
  reverted?: { rev: number; error: unknown }
}

/** A run made ready by `openRun`: the statechart run as the child `updateRun` (started by `run.start`) and its input. */
export interface OpenedRun {
  logic: AnyActorLogic
  input: unknown
}

/** How the child `updateRun` ended: its output, or the error it failed with. */
export type RunEnd = { output: unknown } | { error: unknown }

export interface QueuedRequest {
  request: AutoUpdateRequest
  id: number
}

export interface AutoUpdateContext {
  auto: boolean
  /** With NATS: wait for a holder of the announced revision before an automatic run. */
  needsHolders: boolean
  current: number
  hold: number | undefined
  /** Newest revision announced (stream, feed). */
  announced: number
  /** The revision a staged rollout wants the copy on (issue 16 item 1); undefined while none governs the product. */
  staged: number | undefined
  /** Newest revision some holder has. */
  holders: number
  failures: number
  /** The announced revision `update.held` was last said for (once per revision). */
  heldSaidFor: number
  /** The run in progress: its request and the id its caller waits on (0: automatic). */
  request: AutoUpdateRequest
  runId: number
  /** Requests that came during a run (or before discovery ended), each run in its turn. */
  queued: QueuedRequest[]
  /** Runs may start (the daemon's first discovery round is over). */
  ready: boolean
  /** `stop` came during a run: the run ends first (an update is never cut off half-way). */
  stopping: boolean
  /** The parent (the sharing daemon) that is told every emitted event too. */
  parent: AnyActorRef | undefined
}

export type AutoUpdateEvent =
  | { type: 'release.announced'; rev: number }
  | { type: 'holders.changed'; newest: number }
  | { type: 'nats.changed'; connected: boolean }
  | { type: 'update.requested'; request: AutoUpdateRequest; id: number }
  | { type: 'discovery.done' }
  /** The revision the client's rollout stage allows, recomputed whenever statements, releases or the copy change. */
  | { type: 'rollout.target'; rev: number }
  | { type: 'stop' }
  /** The child `updateRun` ended (XState's own events for a child actor). */
  | { type: 'xstate.done.actor.updateRun'; output: unknown }
  | { type: 'xstate.error.actor.updateRun'; error: unknown }

export type AutoUpdateEmitted =
  | { type: 'update.held'; rev: number; newest: number }
  | { type: 'run.done'; id: number; outcome: RunOutcome }
  | { type: 'run.failed'; id: number; error: unknown }
  /** The run's revision failed its health check: the copy is back on `to` and holds there (issue 16 item 2). */
  | { type: 'run.reverted'; id: number; rev: number; to: number; error: unknown }

export interface AutoUpdateInput {
  auto: boolean
  needsHolders: boolean
  current: number
  hold: number | undefined
  /** Default true; false holds every run until `discovery.done`. */
  ready?: boolean
  parent?: AnyActorRef
}

export interface AutoUpdateOutput {
  /** Requests that never ran (the machine stopped first): their callers are told so. */
  queued: QueuedRequest[]
}

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`auto-update machine: actor ${name} is not provided`)
}

/** What the rules below read of the context (the sharing daemon's machine reads them from its own). */
type Where = Pick<AutoUpdateContext, 'current' | 'announced' | 'staged'>

/** Where an automatic run would go: the stage's revision under a staged rollout, else the newest announced. */
const wanted = (c: Where): number => c.staged ?? c.announced
/** A hold (rollback, failed health check) keeps the copy from going up to a revision it left; never from going down. */
export const heldBack = (c: Where & Pick<AutoUpdateContext, 'hold'>): boolean => c.hold !== undefined && wanted(c) > c.current && wanted(c) <= c.hold
/** An automatic run would change the copy's revision. */
export const moves = (c: Where): boolean => (c.staged === undefined ? c.announced > c.current : c.staged !== c.current)

export const autoUpdateMachine = setup({
  types: {
    context: {} as AutoUpdateContext,
    events: {} as AutoUpdateEvent,
    input: {} as AutoUpdateInput,
    emitted: {} as AutoUpdateEmitted,
    output: {} as AutoUpdateOutput,
  },
  actors: {
    /** Makes a run ready (the working copy locked): the statechart to run as the child `updateRun`. */
    openRun: fromPromise<OpenedRun, { request: AutoUpdateRequest; id: number }>(notProvided('openRun')),
    /** The child's end as the run's outcome (or its error); releases the working copy either way. */
    closeRun: fromPromise<RunOutcome, { request: AutoUpdateRequest; id: number; end: RunEnd }>(notProvided('closeRun')),
  },
  delays: {
    retryDelay: ({ context }) => Math.min(30_000, 500 * 2 ** Math.min(context.failures, 6)),
  },
  guards: {
    heldBack: ({ context }) => context.auto && moves(context) && heldBack(context),
    notHeldBack: ({ context }) => !heldBack(context),
    shouldUpdate: ({ context }) =>
      context.ready && context.auto && moves(context) && !heldBack(context) && (!context.needsHolders || context.holders >= wanted(context)),
    ready: ({ context }) => context.ready,
    hasQueued: ({ context }) => context.ready && context.queued.length > 0,
    failing: ({ context }) => context.failures > 0,
    stopping: ({ context }) => context.stopping,
    reverted: (_, outcome: RunOutcome) => outcome.reverted !== undefined,
  },
  actions: {
    startAutomatic: assign({ request: ({ context }) => (context.staged !== undefined ? { rev: context.staged } : {}), runId: () => 0 }),
    startRequested: assign(({ event }) => (event.type === 'update.requested' ? { request: event.request, runId: event.id } : {})),
    startQueued: assign(({ context }) => ({ request: context.queued[0]!.request, runId: context.queued[0]!.id, queued: context.queued.slice(1) })),
    queue: assign(({ context, event }) => (event.type === 'update.requested' ? { queued: [...context.queued, { request: event.request, id: event.id }] } : {})),
    /** Emitted for listeners, and sent to the parent (the sharing daemon) as an event. */
    report: enqueueActions(({ context, enqueue }, event: AutoUpdateEmitted) => {
      enqueue.emit(event)
      if (context.parent) enqueue.sendTo(context.parent, event)
    }),
  },
}).createMachine({
  id: 'autoUpdate',
  context: ({ input }) => ({
    auto: input.auto, needsHolders: input.needsHolders, current: input.current, hold: input.hold,
    announced: 0, staged: undefined, holders: 0, failures: 0, heldSaidFor: 0, request: {}, runId: 0, queued: [],
    ready: input.ready ?? true, stopping: false, parent: input.parent,
  }),
  initial: 'idle',
  on: {
    'release.announced': { actions: assign({ announced: ({ context, event }) => Math.max(context.announced, event.rev) }) },
    'holders.changed': { actions: assign({ holders: ({ context, event }) => Math.max(context.holders, event.newest) }) },
    'nats.changed': { actions: assign({ needsHolders: ({ event }) => event.connected }) },
    'discovery.done': { actions: assign({ ready: true }) },
    'rollout.target': { actions: assign({ staged: ({ event }) => event.rev }) },
    stop: '.stopped',
  },
  states: {
    idle: {
      always: [
        { guard: 'hasQueued', target: 'updating', actions: 'startQueued' },
        { guard: 'heldBack', target: 'held' },
        { guard: 'shouldUpdate', target: 'updating', actions: 'startAutomatic' },
      ],
      on: {
        'update.requested': [
          { guard: 'ready', target: 'updating', actions: 'startRequested' },
          { actions: 'queue' },
        ],
      },
    },
    held: {
      entry: enqueueActions(({ context, enqueue }) => {
        if (context.heldSaidFor === wanted(context)) return
        enqueue({ type: 'report', params: { type: 'update.held' as const, rev: context.current, newest: wanted(context) } })
        enqueue.assign({ heldSaidFor: wanted(context) })
      }),
      always: [
        { guard: 'hasQueued', target: 'updating', actions: 'startQueued' },
        { guard: 'notHeldBack', target: 'idle' },
      ],
      on: {
        'update.requested': [
          { guard: 'ready', target: 'updating', actions: 'startRequested' },
          { actions: 'queue' },
        ],
      },
    },
    updating: {
      initial: 'opening',
      states: {
        opening: {
          invoke: {
            src: 'openRun',
            input: ({ context }) => ({ request: context.request, id: context.runId }),
            onDone: {
              target: 'running',
              actions: enqueueActions(({ enqueue, event }) => {
                // Typed for logic named in setup; this one comes with the run.
                enqueue.spawnChild(event.output.logic, { id: 'updateRun', input: event.output.input } as never)
                enqueue.sendTo('updateRun', { type: 'run.start' })
              }),
            },
            onError: 'failing',
          },
        },
        // The child `updateRun` (spawned on the way in, stopped on exit, like an invoked actor): its
        // logic comes with the run, so it cannot be named in this machine's config.
        running: {
          exit: stopChild('updateRun'),
          on: {
            'xstate.done.actor.updateRun': 'closing',
            'xstate.error.actor.updateRun': 'closing',
          },
        },
        closing: {
          invoke: {
            src: 'closeRun',
            input: ({ context, event }) => ({
              request: context.request,
              id: context.runId,
              end: event.type === 'xstate.error.actor.updateRun' ? { error: event.error } : { output: (event as { output?: unknown }).output },
            }),
            onDone: [{
              // Back where it was and held there: not a shortfall to retry, not a failure to back off from.
              guard: { type: 'reverted', params: ({ event }) => event.output },
              target: '#autoUpdate.settling',
              actions: [
                assign(({ event }) => ({ current: event.output.to, hold: event.output.hold, failures: 0 })),
                {
                  type: 'report',
                  params: ({ context, event }) => ({ type: 'run.reverted' as const, id: context.runId, rev: event.output.reverted!.rev, to: event.output.to, error: event.output.reverted!.error }),
                },
              ],
            }, {
              target: '#autoUpdate.settling',
              actions: [
                assign(({ context, event }) => {
                  const next = { ...context, current: event.output.to, hold: event.output.hold }
                  // An automatic run that fell short of the announced revision (servers not answering
                  // yet) backs off like a failure, never retries at once; a hold is not a shortfall.
                  const short = (context.request.rev === undefined && next.current < next.announced && !heldBack(next)) ||
                    (context.runId === 0 && context.request.rev !== undefined && next.current !== context.request.rev)
                  return { current: next.current, hold: next.hold, failures: short ? context.failures + 1 : 0 }
                }),
                { type: 'report', params: ({ context, event }) => ({ type: 'run.done' as const, id: context.runId, outcome: event.output }) },
              ],
            }],
            onError: 'failing',
          },
        },
        // Opening or closing failed (the error is the event's): counted for the backoff and reported.
        failing: {
          entry: [
            assign({ failures: ({ context }) => context.failures + 1 }),
            { type: 'report', params: ({ context, event }) => ({ type: 'run.failed' as const, id: context.runId, error: (event as { error?: unknown }).error }) },
          ],
          always: '#autoUpdate.settling',
        },
      },
      on: {
        'update.requested': { actions: 'queue' },
        stop: { actions: assign({ stopping: true }) },
      },
    },
    settling: {
      always: [
        { guard: 'stopping', target: 'stopped' },
        { guard: 'hasQueued', target: 'updating', actions: 'startQueued' },
        { guard: 'failing', target: 'backoff' },
        { target: 'idle' },
      ],
    },
    backoff: {
      after: { retryDelay: 'idle' },
      on: { 'update.requested': { target: 'updating', actions: 'startRequested' } },
    },
    stopped: { type: 'final' },
  },
  output: ({ context }) => ({ queued: context.queued }),
})
