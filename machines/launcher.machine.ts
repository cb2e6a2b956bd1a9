// `upswarm up` (ARCHITECTURE §6, the embedded default) as a statechart: startingNats (the
// three-node cluster with its identities, when asked for) → preparing (the JetStream resources,
// the deployment's root of trust, the trust file) → startingDht (the bootstrap node, when asked
// for) → startingRoles (servers, proxy, tracker, notary, each its own process, at once) →
// writingEndpoints (endpoints.json: its presence means everything is ready) → up → stopping →
// stopped. A process that is not ready within `readyTimeout` (the machine's clock, not a timer in
// the launcher) or any failed step stops everything started and ends in `failed`, naming the step.
// Pure: the processes and files are provided by actors/launcher.
import { assign, fromPromise, setup } from 'xstate'

export type LauncherStep = 'startingNats' | 'preparing' | 'startingDht' | 'startingRoles' | 'writingEndpoints'

export interface LauncherInput {
  nats: boolean
  dht: boolean
}

export interface LauncherFailure {
  step: LauncherStep
  message: string
  cause: unknown
}

export interface LauncherContext {
  nats: boolean
  dht: boolean
  failure: LauncherFailure | null
}

export type LauncherEvent = { type: 'stop' }

/** How long a started process has to say READY. */
export const READY_TIMEOUT_MS = 60_000

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`launcher machine: actor ${name} is not provided`)
}

const failed = (step: LauncherStep, error: unknown): LauncherFailure => ({
  step, message: error instanceof Error ? error.message : String(error), cause: error,
})
const notReady = (step: LauncherStep, what: string): LauncherFailure => ({
  step, message: `${what} not ready after ${READY_TIMEOUT_MS} ms; see its output above`, cause: undefined,
})

export const launcherMachine = setup({
  types: {
    context: {} as LauncherContext,
    events: {} as LauncherEvent,
    input: {} as LauncherInput,
  },
  actors: {
    startNats: fromPromise<void, void>(notProvided('startNats')),
    prepare: fromPromise<void, void>(notProvided('prepare')),
    startDht: fromPromise<void, void>(notProvided('startDht')),
    startRoles: fromPromise<void, void>(notProvided('startRoles')),
    writeEndpoints: fromPromise<void, void>(notProvided('writeEndpoints')),
    /** Stops every process started (NATS clients first, then the DHT, then the cluster). */
    stopAll: fromPromise<void, void>(notProvided('stopAll')),
  },
  actions: {
    fail: assign((_, failure: LauncherFailure) => ({ failure })),
  },
  guards: {
    wantsNats: ({ context }) => context.nats,
    wantsDht: ({ context }) => context.dht,
    hasFailed: ({ context }) => context.failure !== null,
  },
  delays: {
    readyTimeout: READY_TIMEOUT_MS,
  },
}).createMachine({
  id: 'launcher',
  context: ({ input }) => ({ nats: input.nats, dht: input.dht, failure: null }),
  initial: 'choosingNats',
  states: {
    choosingNats: {
      always: [{ guard: 'wantsNats', target: 'startingNats' }, { target: 'preparing' }],
    },
    startingNats: {
      invoke: {
        src: 'startNats',
        onDone: 'preparing',
        onError: { target: 'stopping', actions: { type: 'fail', params: ({ event }) => failed('startingNats', event.error) } },
      },
      on: { stop: 'stopping' },
    },
    preparing: {
      invoke: {
        src: 'prepare',
        onDone: 'choosingDht',
        onError: { target: 'stopping', actions: { type: 'fail', params: ({ event }) => failed('preparing', event.error) } },
      },
      on: { stop: 'stopping' },
    },
    choosingDht: {
      always: [{ guard: 'wantsDht', target: 'startingDht' }, { target: 'startingRoles' }],
    },
    startingDht: {
      invoke: {
        src: 'startDht',
        onDone: 'startingRoles',
        onError: { target: 'stopping', actions: { type: 'fail', params: ({ event }) => failed('startingDht', event.error) } },
      },
      after: { readyTimeout: { target: 'stopping', actions: { type: 'fail', params: () => notReady('startingDht', 'the DHT bootstrap node') } } },
      on: { stop: 'stopping' },
    },
    startingRoles: {
      invoke: {
        src: 'startRoles',
        onDone: 'writingEndpoints',
        onError: { target: 'stopping', actions: { type: 'fail', params: ({ event }) => failed('startingRoles', event.error) } },
      },
      after: { readyTimeout: { target: 'stopping', actions: { type: 'fail', params: () => notReady('startingRoles', 'a role process') } } },
      on: { stop: 'stopping' },
    },
    writingEndpoints: {
      invoke: {
        src: 'writeEndpoints',
        onDone: 'up',
        onError: { target: 'stopping', actions: { type: 'fail', params: ({ event }) => failed('writingEndpoints', event.error) } },
      },
    },
    up: {
      on: { stop: 'stopping' },
    },
    stopping: {
      invoke: {
        src: 'stopAll',
        onDone: [{ guard: 'hasFailed', target: 'failed' }, { target: 'stopped' }],
        onError: [{ guard: 'hasFailed', target: 'failed' }, { target: 'stopped' }],
      },
    },
    stopped: { type: 'final' },
    failed: { type: 'final' },
  },
})
