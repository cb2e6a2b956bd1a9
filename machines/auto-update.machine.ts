// The sharing daemon's updates (issue 11 item 2, R-WATCH, R-ROLLBACK): one statechart decides when
// a run starts, whoever asks — a release announced on the stream or the feed (automatic, with
// --auto), or an explicit request (`update` through the daemon). A run that fails, or falls short
// of the announced revision, backs off before the next try; a rolled-back copy waits in `held`
// until a release newer than the one it left is announced or someone asks for a revision. With
// NATS, an automatic run also waits until some holder (a server that synced it, a peer at it, the
// feed's peers) has the announced revision: the stream tells of a release before anyone holds it.
import { assign, emit, enqueueActions, fromPromise, setup } from 'xstate'

export interface AutoUpdateRequest {
  rev?: number
  onConflict?: 'alert' | 'overwrite' | 'abort'
}

/** The working copy after a run: where it is and the rollback hold it keeps. */
export interface RunOutcome {
  to: number
  hold: number | undefined
}

export interface AutoUpdateContext {
  auto: boolean
  /** With NATS: wait for a holder of the announced revision before an automatic run. */
  needsHolders: boolean
  current: number
  hold: number | undefined
  /** Newest revision announced (stream, feed). */
  announced: number
  /** Newest revision some holder has. */
  holders: number
  failures: number
  /** The announced revision `update.held` was last said for (once per revision). */
  heldSaidFor: number
  /** The run in progress: its request and the id its caller waits on (0: automatic). */
  request: AutoUpdateRequest
  runId: number
  queued: { request: AutoUpdateRequest; id: number } | null
}

export type AutoUpdateEvent =
  | { type: 'release.announced'; rev: number }
  | { type: 'holders.changed'; newest: number }
  | { type: 'nats.changed'; connected: boolean }
  | { type: 'update.requested'; request: AutoUpdateRequest; id: number }
  | { type: 'stop' }

export type AutoUpdateEmitted =
  | { type: 'update.held'; rev: number; newest: number }
  | { type: 'run.done'; id: number; outcome: RunOutcome }
  | { type: 'run.failed'; id: number; error: unknown }

export interface AutoUpdateInput {
  auto: boolean
  needsHolders: boolean
  current: number
  hold: number | undefined
}

const heldBack = (c: AutoUpdateContext): boolean => c.hold !== undefined && c.announced <= c.hold

export const autoUpdateMachine = setup({
  types: {
    context: {} as AutoUpdateContext,
    events: {} as AutoUpdateEvent,
    input: {} as AutoUpdateInput,
    emitted: {} as AutoUpdateEmitted,
  },
  actors: {
    runUpdate: fromPromise<RunOutcome, { request: AutoUpdateRequest; id: number }>(async () => ({ to: 0, hold: undefined })),
  },
  delays: {
    retryDelay: ({ context }) => Math.min(30_000, 500 * 2 ** Math.min(context.failures, 6)),
  },
  guards: {
    heldBack: ({ context }) => context.auto && context.announced > context.current && heldBack(context),
    notHeldBack: ({ context }) => !heldBack(context),
    shouldUpdate: ({ context }) =>
      context.auto && context.announced > context.current && !heldBack(context) && (!context.needsHolders || context.holders >= context.announced),
    hasQueued: ({ context }) => context.queued !== null,
    failing: ({ context }) => context.failures > 0,
  },
  actions: {
    startAutomatic: assign({ request: () => ({}), runId: () => 0 }),
    startRequested: assign(({ event }) => (event.type === 'update.requested' ? { request: event.request, runId: event.id } : {})),
    queue: assign(({ event }) => (event.type === 'update.requested' ? { queued: { request: event.request, id: event.id } } : {})),
  },
}).createMachine({
  id: 'autoUpdate',
  context: ({ input }) => ({
    auto: input.auto, needsHolders: input.needsHolders, current: input.current, hold: input.hold,
    announced: 0, holders: 0, failures: 0, heldSaidFor: 0, request: {}, runId: 0, queued: null,
  }),
  initial: 'idle',
  on: {
    'release.announced': { actions: assign({ announced: ({ context, event }) => Math.max(context.announced, event.rev) }) },
    'holders.changed': { actions: assign({ holders: ({ context, event }) => Math.max(context.holders, event.newest) }) },
    'nats.changed': { actions: assign({ needsHolders: ({ event }) => event.connected }) },
    stop: '.stopped',
  },
  states: {
    idle: {
      always: [
        { guard: 'heldBack', target: 'held' },
        { guard: 'shouldUpdate', target: 'updating', actions: 'startAutomatic' },
      ],
      on: { 'update.requested': { target: 'updating', actions: 'startRequested' } },
    },
    held: {
      entry: enqueueActions(({ context, enqueue }) => {
        if (context.heldSaidFor === context.announced) return
        enqueue.emit({ type: 'update.held' as const, rev: context.current, newest: context.announced })
        enqueue.assign({ heldSaidFor: context.announced })
      }),
      always: { guard: 'notHeldBack', target: 'idle' },
      on: { 'update.requested': { target: 'updating', actions: 'startRequested' } },
    },
    updating: {
      invoke: {
        src: 'runUpdate',
        input: ({ context }) => ({ request: context.request, id: context.runId }),
        onDone: {
          target: 'settling',
          actions: [
            assign(({ context, event }) => {
              const next = { ...context, current: event.output.to, hold: event.output.hold }
              // An automatic run that fell short of the announced revision (servers not answering
              // yet) backs off like a failure, never retries at once; a hold is not a shortfall.
              const short = context.request.rev === undefined && next.current < next.announced && !heldBack(next)
              return { current: next.current, hold: next.hold, failures: short ? context.failures + 1 : 0 }
            }),
            emit(({ context, event }) => ({ type: 'run.done' as const, id: context.runId, outcome: event.output })),
          ],
        },
        onError: {
          target: 'settling',
          actions: [
            assign({ failures: ({ context }) => context.failures + 1 }),
            emit(({ context, event }) => ({ type: 'run.failed' as const, id: context.runId, error: event.error })),
          ],
        },
      },
      on: { 'update.requested': { actions: 'queue' } },
    },
    settling: {
      always: [
        { guard: 'hasQueued', target: 'updating', actions: assign(({ context }) => ({ request: context.queued!.request, runId: context.queued!.id, queued: null })) },
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
})
