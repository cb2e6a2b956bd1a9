// R-PROXY: the upgrade-server proxy's life as a statechart. followingHeartbeats (the pool of
// servers, each a pool-member actor) → hearingServers (until the first server's heartbeat is
// taken, or one and a half heartbeat periods pass: a proxy that joined the queue group at once
// answered "no healthy server" to clients for its first second) → startingService (the NATS micro service with the weighted
// round-robin director, R-PROXY) → openingGateway (HTTP/WebDAV, when asked for) → openingSftp
// (the SSH door, R-PROXY-PROTO, when asked for) → serving → closing → stopped. A door that
// cannot open closes what was opened and ends in `failed`, naming the step. Pure: the I/O is
// provided by actors/proxy.
import { assign, emit, fromPromise, setup } from 'xstate'

export type ProxyStep = 'followingHeartbeats' | 'startingService' | 'openingGateway' | 'openingSftp'

export interface ProxyInput {
  id: string
  gateway: boolean
  sftp: boolean
  /** Most time to wait for a first server's heartbeat before serving (default 1.5 heartbeat periods). */
  hearMs?: number
}

/** Heartbeat periods a new proxy waits at most for a first server: every running server has beaten once by then. */
export const HEAR_PERIODS = 1.5
/**
 * The wait when the input gives none: HEAR_PERIODS × 1 s, the heartbeat period of
 * infra/nats/heartbeat.ts (not imported: a machine stays free of the wire schemas). The proxy
 * actor passes HEAR_PERIODS × HEARTBEAT_MS itself.
 */
export const HEAR_MS = HEAR_PERIODS * 1_000

export interface ProxyFailure {
  step: ProxyStep
  message: string
  cause: unknown
}

export interface ProxyContext {
  id: string
  gateway: boolean
  sftp: boolean
  hearMs: number
  httpUrl: string | null
  sshUrl: string | null
  failure: ProxyFailure | null
}

/** `servers.heard`: the pool took its first server's heartbeat. */
export type ProxyEvent = { type: 'stop' } | { type: 'servers.heard' }
export type ProxyEmitted = { type: 'proxy.serving'; httpUrl: string | null; sshUrl: string | null } | { type: 'proxy.stopped' }

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`proxy machine: actor ${name} is not provided`)
}

const failed = (step: ProxyStep, id: string, what: string, error: unknown): ProxyFailure => ({
  step, message: `proxy ${id}: cannot ${what}: ${error instanceof Error ? error.message : String(error)}`, cause: error,
})

export const proxyMachine = setup({
  types: {
    context: {} as ProxyContext,
    events: {} as ProxyEvent,
    input: {} as ProxyInput,
    emitted: {} as ProxyEmitted,
  },
  actors: {
    followHeartbeats: fromPromise<void, void>(notProvided('followHeartbeats')),
    startService: fromPromise<void, void>(notProvided('startService')),
    openGateway: fromPromise<{ url: string }, void>(notProvided('openGateway')),
    openSftp: fromPromise<{ url: string }, void>(notProvided('openSftp')),
    /** Closes the doors, the service and the heartbeat follower (whatever was opened). */
    closeAll: fromPromise<void, void>(notProvided('closeAll')),
  },
  actions: {
    fail: assign((_, failure: ProxyFailure) => ({ failure })),
  },
  delays: {
    hearServers: ({ context }) => context.hearMs,
  },
  guards: {
    wantsGateway: ({ context }) => context.gateway,
    wantsSftp: ({ context }) => context.sftp,
    hasFailed: ({ context }) => context.failure !== null,
  },
}).createMachine({
  id: 'proxy',
  context: ({ input }) => ({ id: input.id, gateway: input.gateway, sftp: input.sftp, hearMs: input.hearMs ?? HEAR_MS, httpUrl: null, sshUrl: null, failure: null }),
  initial: 'followingHeartbeats',
  states: {
    followingHeartbeats: {
      invoke: {
        src: 'followHeartbeats',
        onDone: 'hearingServers',
        onError: { target: 'closing', actions: { type: 'fail', params: ({ context, event }) => failed('followingHeartbeats', context.id, 'follow the servers\' heartbeats', event.error) } },
      },
    },
    hearingServers: {
      on: { 'servers.heard': 'startingService', stop: 'closing' },
      after: { hearServers: 'startingService' },
    },
    startingService: {
      invoke: {
        src: 'startService',
        onDone: 'choosingGateway',
        onError: { target: 'closing', actions: { type: 'fail', params: ({ context, event }) => failed('startingService', context.id, 'serve the proxy service on NATS', event.error) } },
      },
    },
    choosingGateway: {
      always: [{ guard: 'wantsGateway', target: 'openingGateway' }, { target: 'choosingSftp' }],
    },
    openingGateway: {
      invoke: {
        src: 'openGateway',
        onDone: { target: 'choosingSftp', actions: assign({ httpUrl: ({ event }) => event.output.url }) },
        onError: { target: 'closing', actions: { type: 'fail', params: ({ context, event }) => failed('openingGateway', context.id, 'open the HTTP gateway', event.error) } },
      },
    },
    choosingSftp: {
      always: [{ guard: 'wantsSftp', target: 'openingSftp' }, { target: 'serving' }],
    },
    openingSftp: {
      invoke: {
        src: 'openSftp',
        onDone: { target: 'serving', actions: assign({ sshUrl: ({ event }) => event.output.url }) },
        onError: { target: 'closing', actions: { type: 'fail', params: ({ context, event }) => failed('openingSftp', context.id, 'open the SFTP door', event.error) } },
      },
    },
    serving: {
      entry: emit(({ context }) => ({ type: 'proxy.serving' as const, httpUrl: context.httpUrl, sshUrl: context.sshUrl })),
      on: { stop: 'closing' },
    },
    closing: {
      invoke: {
        src: 'closeAll',
        onDone: [{ guard: 'hasFailed', target: 'failed' }, { target: 'stopped' }],
        onError: [{ guard: 'hasFailed', target: 'failed' }, { target: 'stopped' }],
      },
    },
    stopped: { type: 'final', entry: emit({ type: 'proxy.stopped' as const }) },
    failed: { type: 'final' },
  },
})
