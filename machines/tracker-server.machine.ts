// R-TRACKER: the tracker server's life as a statechart. openingBucket (the shared peer bucket;
// right after a cluster starts its stream may still be electing a leader, so an unreachable
// bucket is retried on the machine's clock, a refused permission is not) → startingRegistry →
// opening the three doors one by one (NATS service, HTTP(S), UDP: R-TRACKER-PROTO) → listening,
// where three clocks run side by side (issue 12: no timers outside the machine): the rate
// limiters are swept every `sweepInterval`, expired peers every `peerSweepInterval`, and bucket
// writes not acknowledged in time are sent again every `writeRetryInterval` → closing → stopped. A failure at any
// step closes what was opened and ends in `failed`, naming the step. Pure: the I/O is provided
// by actors/tracker.
import { and, assign, emit, fromPromise, setup } from 'xstate'

export type TrackerStep = 'openingBucket' | 'startingRegistry' | 'openingNatsDoor' | 'openingHttpDoor' | 'openingUdpDoor'

export interface TrackerServerInput {
  id: string
  /** Tries of the peer bucket before the tracker gives up (default 10). */
  maxBucketAttempts?: number
  /** How often expired peers are dropped (default 90 s: half the default peer TTL). */
  peerSweepMs?: number
  /** How often late bucket writes are looked for (default 1 s). */
  writeRetryMs?: number
}

export interface TrackerFailure {
  step: TrackerStep
  code: string
  message: string
  cause: unknown
}

export interface TrackerServerContext {
  id: string
  bucketAttempts: number
  maxBucketAttempts: number
  peerSweepMs: number
  writeRetryMs: number
  httpUrl: string | null
  udpUrl: string | null
  failure: TrackerFailure | null
}

export type TrackerServerEvent = { type: 'stop' }

export type TrackerServerEmitted =
  | { type: 'tracker.listening'; httpUrl: string; udpUrl: string }
  | { type: 'tracker.stopped' }

export const DEFAULT_BUCKET_ATTEMPTS = 10
/** How often the per-address and per-identity rate limiters drop idle entries. */
export const SWEEP_INTERVAL_MS = 10_000

export const DEFAULT_PEER_SWEEP_MS = 90_000
export const DEFAULT_WRITE_RETRY_MS = 1_000

export const bucketRetryWait = (attempts: number): number => Math.min(1_000, 100 * 2 ** Math.max(0, attempts - 1))

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`tracker-server machine: actor ${name} is not provided`)
}

/** The bucket and registry are NATS's (UPSWARM_E_NATS); a door that cannot listen is the configuration's. */
const failed = (step: TrackerStep, error: unknown, message: string): TrackerFailure => ({
  step, code: step === 'openingBucket' || step === 'startingRegistry' ? 'UPSWARM_E_NATS' : 'UPSWARM_E_CONFIG', message, cause: error,
})
const text = (error: unknown): string => (error instanceof Error ? error.message : String(error))
type ErrorEvent = { event: { error: unknown } }

export const trackerServerMachine = setup({
  types: {
    context: {} as TrackerServerContext,
    events: {} as TrackerServerEvent,
    input: {} as TrackerServerInput,
    emitted: {} as TrackerServerEmitted,
  },
  actors: {
    openBucket: fromPromise<void, { attempt: number }>(notProvided('openBucket')),
    startRegistry: fromPromise<void, void>(notProvided('startRegistry')),
    openNatsDoor: fromPromise<void, void>(notProvided('openNatsDoor')),
    openHttpDoor: fromPromise<{ url: string }, void>(notProvided('openHttpDoor')),
    openUdpDoor: fromPromise<{ url: string }, void>(notProvided('openUdpDoor')),
    /** Closes every door opened, in reverse order, then the registry. */
    closeAll: fromPromise<void, void>(notProvided('closeAll')),
  },
  actions: {
    sweepLimiters: () => {},
    sweepPeers: () => {},
    retryWrites: () => {},
    fail: assign((_, failure: TrackerFailure) => ({ failure })),
  },
  guards: {
    /** The bucket's error may pass (a leader election), unlike a permission refused. */
    bucketRetryable: (_, _error: unknown) => true,
    mayRetryBucket: ({ context }) => context.bucketAttempts < context.maxBucketAttempts,
    hasFailed: ({ context }) => context.failure !== null,
  },
  delays: {
    bucketRetryDelay: ({ context }) => bucketRetryWait(context.bucketAttempts),
    sweepInterval: SWEEP_INTERVAL_MS,
    peerSweepInterval: ({ context }) => context.peerSweepMs,
    writeRetryInterval: ({ context }) => context.writeRetryMs,
  },
}).createMachine({
  id: 'trackerServer',
  context: ({ input }) => ({
    id: input.id, bucketAttempts: 0, maxBucketAttempts: input.maxBucketAttempts ?? DEFAULT_BUCKET_ATTEMPTS,
    peerSweepMs: input.peerSweepMs ?? DEFAULT_PEER_SWEEP_MS, writeRetryMs: input.writeRetryMs ?? DEFAULT_WRITE_RETRY_MS,
    httpUrl: null, udpUrl: null, failure: null,
  }),
  initial: 'openingBucket',
  states: {
    openingBucket: {
      entry: assign({ bucketAttempts: ({ context }) => context.bucketAttempts + 1 }),
      invoke: {
        src: 'openBucket',
        input: ({ context }) => ({ attempt: context.bucketAttempts }),
        onDone: 'startingRegistry',
        onError: [
          { guard: and([{ type: 'bucketRetryable', params: ({ event }: ErrorEvent) => event.error }, 'mayRetryBucket']), target: 'waitingForBucket' },
          {
            target: 'failed',
            actions: {
              type: 'fail',
              params: ({ context, event }) => failed('openingBucket', event.error,
                `tracker ${context.id}: cannot open the peer bucket: ${text(event.error)}; is JetStream enabled on the NATS servers?`),
            },
          },
        ],
      },
      on: { stop: 'stopped' },
    },
    waitingForBucket: {
      after: { bucketRetryDelay: 'openingBucket' },
      on: { stop: 'stopped' },
    },
    startingRegistry: {
      invoke: {
        src: 'startRegistry',
        onDone: 'openingNatsDoor',
        onError: {
          target: 'closing',
          actions: { type: 'fail', params: ({ context, event }) => failed('startingRegistry', event.error, `tracker ${context.id}: cannot load the peers of the peer bucket: ${text(event.error)}`) },
        },
      },
    },
    openingNatsDoor: {
      invoke: {
        src: 'openNatsDoor',
        onDone: 'openingHttpDoor',
        onError: {
          target: 'closing',
          actions: { type: 'fail', params: ({ context, event }) => failed('openingNatsDoor', event.error, `tracker ${context.id}: cannot serve the tracker service on NATS: ${text(event.error)}`) },
        },
      },
    },
    openingHttpDoor: {
      invoke: {
        src: 'openHttpDoor',
        onDone: { target: 'openingUdpDoor', actions: assign({ httpUrl: ({ event }) => event.output.url }) },
        onError: {
          target: 'closing',
          actions: { type: 'fail', params: ({ context, event }) => failed('openingHttpDoor', event.error, `tracker ${context.id}: cannot listen for HTTP: ${text(event.error)}; choose free ports`) },
        },
      },
    },
    openingUdpDoor: {
      invoke: {
        src: 'openUdpDoor',
        onDone: { target: 'listening', actions: assign({ udpUrl: ({ event }) => event.output.url }) },
        onError: {
          target: 'closing',
          actions: { type: 'fail', params: ({ context, event }) => failed('openingUdpDoor', event.error, `tracker ${context.id}: cannot listen for UDP: ${text(event.error)}; choose free ports`) },
        },
      },
    },
    listening: {
      entry: emit(({ context }) => ({ type: 'tracker.listening' as const, httpUrl: context.httpUrl!, udpUrl: context.udpUrl! })),
      type: 'parallel',
      states: {
        limiters: {
          initial: 'serving',
          states: { serving: { after: { sweepInterval: { target: 'serving', reenter: true, actions: 'sweepLimiters' } } } },
        },
        peers: {
          initial: 'listed',
          states: { listed: { after: { peerSweepInterval: { target: 'listed', reenter: true, actions: 'sweepPeers' } } } },
        },
        writes: {
          initial: 'writing',
          states: { writing: { after: { writeRetryInterval: { target: 'writing', reenter: true, actions: 'retryWrites' } } } },
        },
      },
      on: { stop: 'closing' },
    },
    closing: {
      invoke: {
        src: 'closeAll',
        onDone: [{ guard: 'hasFailed', target: 'failed' }, { target: 'stopped' }],
        onError: [{ guard: 'hasFailed', target: 'failed' }, { target: 'stopped' }],
      },
    },
    stopped: { type: 'final', entry: emit({ type: 'tracker.stopped' as const }) },
    failed: { type: 'final' },
  },
})
