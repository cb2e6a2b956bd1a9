// The repository server's format-2 sync (docs/formats.md §5 step 5; issue 13 item 3): its own
// durable consumer on UPSWARM_META hands it the format-2 releases one at a time; each is verified
// and everything its tree reaches (nodes, whole-file blobs) copied and verified into the server's
// store before the message is acknowledged. preparing (the consumer, from the server's own
// disk) → waiting (the next release) → syncing → acking → waiting. A copy that fails is tried again
// after `retryMs`, at most `maxAttempts` times; then the release is given up (and said so) so the
// ones after it are not held back. A release that cannot be trusted is refused at once. Pure:
// the I/O is provided by actors/repo-server/meta-sync.ts.
import { assign, emit, fromPromise, setup } from 'xstate'

export interface PendingMeta {
  seq: number
  /** Empty until the message is parsed (a malformed one is refused with the reason). */
  product: string
  rev: number
}

/** What became of a release: kept (synced) or refused, with why. */
export type MetaOutcome = { kept: true } | { kept: false; reason: string }

export interface MetaSyncInput {
  serverId: string
  retryMs?: number
  maxAttempts?: number
}

export interface MetaSyncContext {
  serverId: string
  retryMs: number
  maxAttempts: number
  attempts: number
  pending?: PendingMeta
  outcome?: MetaOutcome
}

export type MetaSyncEvent = { type: 'stop' }
export type MetaSyncEmitted =
  | { type: 'release2.synced'; seq: number; product: string; rev: number }
  | { type: 'release2.refused'; seq: number; product: string; rev: number; reason: string }
  | { type: 'meta.failed'; reason: string }

export const META_RETRY_MS = 2000
export const META_MAX_ATTEMPTS = 10

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`meta sync machine: actor ${name} is not provided`)
}
const reasonOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

export const metaSyncMachine = setup({
  types: {
    context: {} as MetaSyncContext,
    events: {} as MetaSyncEvent,
    input: {} as MetaSyncInput,
    emitted: {} as MetaSyncEmitted,
  },
  actors: {
    prepareConsumer: fromPromise<void, { serverId: string }>(notProvided('prepareConsumer')),
    nextRelease: fromPromise<PendingMeta | null, { serverId: string }>(notProvided('nextRelease')),
    syncRelease: fromPromise<MetaOutcome, { release: PendingMeta }>(notProvided('syncRelease')),
    acknowledge: fromPromise<void, { release: PendingMeta; outcome: MetaOutcome }>(notProvided('acknowledge')),
  },
  guards: {
    mayRetry: ({ context }) => context.attempts < context.maxAttempts,
  },
  delays: {
    retry: ({ context }) => context.retryMs,
  },
  actions: {
    failed: emit((_, reason: string) => ({ type: 'meta.failed' as const, reason })),
    told: emit(({ context }) => {
      const r = context.pending!
      const o = context.outcome!
      return o.kept
        ? { type: 'release2.synced' as const, seq: r.seq, product: r.product, rev: r.rev }
        : { type: 'release2.refused' as const, seq: r.seq, product: r.product, rev: r.rev, reason: o.reason }
    }),
  },
}).createMachine({
  id: 'metaSync',
  context: ({ input }) => ({ serverId: input.serverId, retryMs: input.retryMs ?? META_RETRY_MS, maxAttempts: input.maxAttempts ?? META_MAX_ATTEMPTS, attempts: 0 }),
  initial: 'preparing',
  on: { stop: '.stopped' },
  states: {
    preparing: {
      invoke: {
        src: 'prepareConsumer',
        input: ({ context }) => ({ serverId: context.serverId }),
        onDone: 'waiting',
        onError: { target: 'retrying', actions: { type: 'failed', params: ({ event }) => `cannot prepare the meta consumer: ${reasonOf(event.error)}` } },
      },
    },
    waiting: {
      invoke: {
        src: 'nextRelease',
        input: ({ context }) => ({ serverId: context.serverId }),
        onDone: [
          { guard: ({ event }) => event.output === null, target: 'waiting', reenter: true },
          { target: 'syncing', actions: assign({ pending: ({ event }) => event.output!, attempts: 0, outcome: undefined }) },
        ],
        onError: { target: 'retrying', actions: { type: 'failed', params: ({ event }) => `cannot read the meta stream: ${reasonOf(event.error)}` } },
      },
    },
    syncing: {
      entry: assign({ attempts: ({ context }) => context.attempts + 1 }),
      invoke: {
        src: 'syncRelease',
        input: ({ context }) => ({ release: context.pending! }),
        onDone: { target: 'acking', actions: assign({ outcome: ({ event }) => event.output }) },
        onError: [
          { guard: 'mayRetry', target: 'backoff', actions: { type: 'failed', params: ({ context, event }) => `sync of meta seq ${context.pending!.seq} failed (try ${context.attempts}), will retry: ${reasonOf(event.error)}` } },
          {
            target: 'acking',
            actions: assign({ outcome: ({ context, event }) => ({ kept: false, reason: `gave up after ${context.attempts} tries: ${reasonOf(event.error)}` }) }),
          },
        ],
      },
    },
    backoff: { after: { retry: 'syncing' } },
    acking: {
      invoke: {
        src: 'acknowledge',
        input: ({ context }) => ({ release: context.pending!, outcome: context.outcome! }),
        onDone: { target: 'waiting', actions: 'told' },
        onError: { target: 'retrying', actions: { type: 'failed', params: ({ event }) => `cannot acknowledge a meta message: ${reasonOf(event.error)}` } },
      },
    },
    retrying: { after: { retry: 'preparing' } },
    stopped: { type: 'final' },
  },
})
