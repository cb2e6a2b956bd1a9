// R-SERVER sync loop of one repository server: take the next release from its durable
// JetStream consumer, copy and verify every blob into the local store, mark it synced, and only
// then acknowledge. Transient failures back off and retry the same release; a release that can
// never verify (bad signature, malformed) is rejected so it cannot stall the server, and one that
// keeps failing (a blob missing from the object store, bytes that never match their hash) is
// parked after `maxAttempts` tries, so every later release of every product goes on (issue 11
// item 6); the server retries parked releases on its own schedule. A full disk is the server's
// condition, not the release's: it is never parked (every later release would need the space
// too) and costs no try; the server waits in `waitingForSpace` until the release fits, then
// syncs it again (issue 11 item 8, fault suite "disk full during server sync").
//
// The server's clocks are the statechart's (issue 12: no role keeps timers outside its machine):
// the `heartbeat` region, parallel to `sync`, publishes the server's heartbeat on entry and every
// `heartbeatInterval` (R-SERVER, R-PROXY-1); while a release is in hand (`syncing`,
// `waitingForSpace`) an inner `after` loop tells JetStream every `keepAliveInterval` that the
// message is still being worked on, so its ack wait never runs out during a long copy; and
// `waitingForSpace` looks at the free space every `spacePoll`, trying anyway after `spaceRetry`.
import { assign, emit, setup, fromPromise } from 'xstate'

export interface PendingRelease {
  /** Stream sequence of the release message. */
  seq: number
  product: string
  rev: number
}

export interface ServerSyncContext {
  serverId: string
  pending: PendingRelease | null
  lastError: string | null
  failures: number
  /** Tries of one release before it is parked. */
  maxAttempts: number
  /** Bytes of free space the pending release needs (set while waiting for space). */
  spaceNeeded: number
  /** How often the heartbeat is published, in ms. */
  heartbeatMs: number
  /** How often a release message in hand is said to be still in progress, in ms (well under its ack wait). */
  keepAliveMs: number
  /** While the disk is too full for the release: how often free space is looked at, and the longest wait before a try anyway (ms). */
  spacePollMs: number
  spaceRetryMs: number
}

export interface ServerSyncInput {
  serverId: string
  maxAttempts?: number
  heartbeatMs: number
  keepAliveMs: number
  spacePollMs: number
  spaceRetryMs: number
}

/**
 * What one sync of a release came to: synced (or held already); a permanent refusal; or no
 * room for it on the server's disk (`needed` bytes free, by the server's estimate).
 */
export type SyncOutcome =
  | { permanent: false; noSpace?: { reason: string; needed: number } }
  | { permanent: true; reason: string }

/** Tries of one release before it is parked, when the input does not say. */
export const DEFAULT_SYNC_ATTEMPTS = 8

export type ServerSyncEvent = { type: 'stop' }

/**
 * While a release is in hand: the message is said to be in progress every keepAliveInterval,
 * re-entering only this inner state, so the invoked sync or wait of the parent goes on.
 */
const keepingAlive = {
  initial: 'inHand',
  states: {
    inHand: { after: { keepAliveInterval: { target: 'inHand', reenter: true, actions: 'keepAlive' } } },
  },
} as const

/** The sync region's top-level state (`syncing`, `waiting`, …) of a snapshot. */
export function syncState(value: unknown): string {
  const sync = (value as { sync?: unknown }).sync
  return typeof sync === 'string' ? sync : Object.keys(sync as object)[0]!
}

export type ServerSyncEmitted =
  | { type: 'release.synced'; product: string; rev: number; seq: number }
  | { type: 'release.rejected'; seq: number; reason: string }
  | { type: 'sync.failed'; seq: number; reason: string }
  | { type: 'release.parked'; seq: number; product: string; rev: number; reason: string }
  | { type: 'sync.noSpace'; seq: number; product: string; rev: number; reason: string; needed: number }

export const serverSyncMachine = setup({
  types: {
    context: {} as ServerSyncContext,
    events: {} as ServerSyncEvent,
    input: {} as ServerSyncInput,
    emitted: {} as ServerSyncEmitted,
  },
  actions: {
    /** Publish the server's heartbeat (R-SERVER, R-PROXY-1). */
    beat: () => {},
    /** Tell JetStream the pending release's message is still in progress. */
    keepAlive: () => {},
  },
  actors: {
    prepareConsumer: fromPromise<void, { serverId: string }>(async () => {}),
    nextRelease: fromPromise<PendingRelease | null, { serverId: string }>(async () => null),
    syncRelease: fromPromise<SyncOutcome, { release: PendingRelease }>(async () => ({ permanent: false })),
    /** Whether the release may fit now: `needed` bytes free on the server's disk. */
    checkSpace: fromPromise<boolean, { release: PendingRelease; needed: number }>(async () => true),
    acknowledge: fromPromise<void, { release: PendingRelease; outcome: 'synced' | 'rejected' | 'parked'; reason?: string }>(async () => {}),
  },
  delays: {
    retryDelay: ({ context }) => Math.min(30_000, 250 * 2 ** Math.min(context.failures, 7)),
    heartbeatInterval: ({ context }) => context.heartbeatMs,
    keepAliveInterval: ({ context }) => context.keepAliveMs,
    spacePoll: ({ context }) => context.spacePollMs,
    spaceRetry: ({ context }) => context.spaceRetryMs,
  },
  guards: {
    gotRelease: ({ event }) => (event as unknown as { output: PendingRelease | null }).output !== null,
    hasPending: ({ context }) => context.pending !== null,
    permanentFailure: ({ event }) => (event as unknown as { output: SyncOutcome }).output.permanent,
    noSpace: ({ event }) => {
      const out = (event as unknown as { output: SyncOutcome }).output
      return !out.permanent && out.noSpace !== undefined
    },
    lastAttempt: ({ context }) => context.failures + 1 >= context.maxAttempts,
    fits: ({ event }) => (event as unknown as { output: boolean }).output,
  },
}).createMachine({
  id: 'serverSync',
  context: ({ input }) => ({
    serverId: input.serverId, pending: null, lastError: null, failures: 0, maxAttempts: input.maxAttempts ?? DEFAULT_SYNC_ATTEMPTS, spaceNeeded: 0,
    heartbeatMs: input.heartbeatMs, keepAliveMs: input.keepAliveMs, spacePollMs: input.spacePollMs, spaceRetryMs: input.spaceRetryMs,
  }),
  type: 'parallel',
  on: { stop: { target: ['.sync.stopped', '.heartbeat.stopped'] } },
  states: {
    heartbeat: {
      initial: 'beating',
      states: {
        beating: { entry: 'beat', after: { heartbeatInterval: { target: 'beating', reenter: true } } },
        stopped: { type: 'final' },
      },
    },
    sync: {
      initial: 'preparing',
      states: {
        preparing: {
          invoke: {
            src: 'prepareConsumer',
            input: ({ context }) => ({ serverId: context.serverId }),
            onDone: 'waiting',
            onError: {
              target: 'backoff',
              actions: assign({ lastError: ({ event }) => String(event.error), failures: ({ context }) => context.failures + 1 }),
            },
          },
        },
        waiting: {
          invoke: {
            src: 'nextRelease',
            input: ({ context }) => ({ serverId: context.serverId }),
            onDone: [
              { guard: 'gotRelease', target: 'syncing', actions: assign({ pending: ({ event }) => event.output }) },
              { target: 'waiting', reenter: true },
            ],
            onError: {
              target: 'backoff',
              actions: assign({ lastError: ({ event }) => String(event.error), failures: ({ context }) => context.failures + 1 }),
            },
          },
        },
        syncing: {
          ...keepingAlive,
          invoke: {
            src: 'syncRelease',
            input: ({ context }) => ({ release: context.pending! }),
            onDone: [
              {
                guard: 'permanentFailure',
                target: 'rejecting',
                actions: [
                  assign({ lastError: ({ event }) => (event.output.permanent ? event.output.reason : null) }),
                  emit(({ context, event }) => ({
                    type: 'release.rejected' as const,
                    seq: context.pending!.seq,
                    reason: event.output.permanent ? event.output.reason : '',
                  })),
                ],
              },
              {
                guard: 'noSpace',
                target: 'waitingForSpace',
                actions: [
                  assign(({ event }) => {
                    const { reason, needed } = (event.output as { noSpace: { reason: string; needed: number } }).noSpace
                    return { lastError: reason, spaceNeeded: needed }
                  }),
                  emit(({ context, event }) => {
                    const { reason, needed } = (event.output as { noSpace: { reason: string; needed: number } }).noSpace
                    return { type: 'sync.noSpace' as const, seq: context.pending!.seq, product: context.pending!.product, rev: context.pending!.rev, reason, needed }
                  }),
                ],
              },
              { target: 'acknowledging' },
            ],
            onError: [
              {
                guard: 'lastAttempt',
                target: 'parking',
                actions: [
                  assign({ lastError: ({ context, event }) => `${String(event.error)} (after ${context.failures + 1} tries)` }),
                  emit(({ context }) => ({
                    type: 'release.parked' as const, seq: context.pending!.seq, product: context.pending!.product, rev: context.pending!.rev,
                    reason: context.lastError ?? '',
                  })),
                ],
              },
              {
                target: 'backoff',
                actions: [
                  assign({ lastError: ({ event }) => String(event.error), failures: ({ context }) => context.failures + 1 }),
                  emit(({ context, event }) => ({ type: 'sync.failed' as const, seq: context.pending!.seq, reason: String(event.error) })),
                ],
              },
            ],
          },
        },
        // Free space is looked at every spacePoll; the release is tried anyway after spaceRetry.
        waitingForSpace: {
          type: 'parallel',
          after: { spaceRetry: 'syncing' },
          states: {
            keepAlive: keepingAlive,
            space: {
              initial: 'checking',
              states: {
                checking: {
                  invoke: {
                    src: 'checkSpace',
                    input: ({ context }) => ({ release: context.pending!, needed: context.spaceNeeded }),
                    onDone: [{ guard: 'fits', target: '#serverSync.sync.syncing' }, { target: 'pausing' }],
                    onError: {
                      target: '#serverSync.sync.backoff',
                      actions: assign({ lastError: ({ event }) => String(event.error), failures: ({ context }) => context.failures + 1 }),
                    },
                  },
                },
                pausing: { after: { spacePoll: 'checking' } },
              },
            },
          },
        },
        parking: {
          invoke: {
            src: 'acknowledge',
            input: ({ context }) => ({ release: context.pending!, outcome: 'parked' as const, reason: context.lastError ?? 'unknown' }),
            onDone: { target: 'waiting', actions: assign({ pending: null, failures: 0 }) },
            onError: { target: 'backoff', actions: assign({ failures: ({ context }) => context.failures + 1 }) },
          },
        },
        acknowledging: {
          invoke: {
            src: 'acknowledge',
            input: ({ context }) => ({ release: context.pending!, outcome: 'synced' as const }),
            onDone: {
              target: 'waiting',
              actions: [
                emit(({ context }) => ({
                  type: 'release.synced' as const,
                  product: context.pending!.product,
                  rev: context.pending!.rev,
                  seq: context.pending!.seq,
                })),
                assign({ pending: null, failures: 0, lastError: null, spaceNeeded: 0 }),
              ],
            },
            onError: { target: 'backoff', actions: assign({ failures: ({ context }) => context.failures + 1 }) },
          },
        },
        rejecting: {
          invoke: {
            src: 'acknowledge',
            input: ({ context }) => ({ release: context.pending!, outcome: 'rejected' as const }),
            onDone: { target: 'waiting', actions: assign({ pending: null, failures: 0 }) },
            onError: { target: 'backoff', actions: assign({ failures: ({ context }) => context.failures + 1 }) },
          },
        },
        backoff: {
          after: {
            retryDelay: [{ guard: 'hasPending', target: 'syncing' }, { target: 'preparing' }],
          },
        },
        stopped: { type: 'final' },
      },
    },
  },
})
