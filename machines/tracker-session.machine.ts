// The sharing daemon's session with the tracker (R-ANNOUNCE, R-DHT-1). Each round announces on
// the tracker's doors in order (NATS, HTTP, UDP — whichever are configured) until one answers:
//   ok        the first door answered
//   degraded  a later door answered, or one round failed after the tracker had answered before
//   down      every door failed (at once when never announced, else `maxFailedRounds` rounds in
//             a row): the "tracker unavailable" signal on which the daemon relies on the DHT
// Rounds repeat every announce interval (the shorter of ours and the tracker's); after a failure
// they retry sooner, with a doubling delay capped at the interval. `stop` withdraws the peer.
import { assign, emit, enqueueActions, fromPromise, setup } from 'xstate'

export type TrackerStatus = 'ok' | 'degraded' | 'down'
export type AnnounceKind = 'started' | 'update' | 'completed' | 'stopped'

/** A peer as any door reports it; UDP knows only the address. */
export interface SessionPeer {
  ip: string
  port: number
  peerId?: string
  rev?: number
  publicKey?: string
}

export interface AnnounceInput {
  door: number
  rev: number
  event: AnnounceKind
}

export interface AnnounceOutput {
  peers: SessionPeer[]
  /** The tracker's interval, when it gave one. */
  intervalMs?: number
}

export interface TrackerSessionInput {
  /** Number of doors, tried in index order; at least 1. */
  doors: number
  rev: number
  intervalMs: number
  /** First retry delay after a failed round; doubles up to intervalMs. */
  retryMs?: number
  maxFailedRounds?: number
}

export interface TrackerSessionContext {
  doors: number
  door: number
  rev: number
  event: AnnounceKind
  intervalMs: number
  trackerIntervalMs: number | undefined
  retryMs: number
  maxFailedRounds: number
  failedRounds: number
  announced: boolean
  status: TrackerStatus | 'announcing'
  /** The door that last answered, for withdrawing the peer there on stop. */
  lastDoor: number
}

export type TrackerSessionEvent = { type: 'rev.changed'; rev: number } | { type: 'announce.now' } | { type: 'stop' }

export type TrackerSessionEmitted =
  | { type: 'status'; status: TrackerStatus }
  | { type: 'peers'; peers: SessionPeer[]; door: number; rev: number }

export const trackerSessionMachine = setup({
  types: {
    input: {} as TrackerSessionInput,
    context: {} as TrackerSessionContext,
    events: {} as TrackerSessionEvent,
    emitted: {} as TrackerSessionEmitted,
  },
  actors: {
    // Provided by actors/tracker/client.ts: one announce on one door.
    announce: fromPromise<AnnounceOutput, AnnounceInput>(async () => {
      throw new Error('tracker-session: the announce actor is not provided')
    }),
  },
  guards: {
    onFirstDoor: ({ context }) => context.door === 0,
    hasNextDoor: ({ context }) => context.door + 1 < context.doors,
    unreachable: ({ context }) => !context.announced || context.failedRounds + 1 >= context.maxFailedRounds,
    announced: ({ context }) => context.announced,
  },
  actions: {
    firstDoor: assign({ door: 0 }),
    nextDoor: assign({ door: ({ context }) => context.door + 1 }),
    recordSuccess: assign(({ context }, output: AnnounceOutput) => ({
      failedRounds: 0,
      announced: true,
      event: 'update' as const,
      lastDoor: context.door,
      trackerIntervalMs: output.intervalMs ?? context.trackerIntervalMs,
    })),
    recordFailure: assign({ failedRounds: ({ context }) => context.failedRounds + 1 }),
    emitPeers: emit(({ context }, output: AnnounceOutput) => ({ type: 'peers' as const, peers: output.peers, door: context.door, rev: context.rev })),
    setRev: assign(({ event }) => (event.type === 'rev.changed' ? { rev: event.rev, event: 'completed' as const } : {})),
    report: enqueueActions(({ context, enqueue }, params: { status: TrackerStatus }) => {
      if (context.status === params.status) return
      enqueue.assign({ status: params.status })
      enqueue.emit({ type: 'status', status: params.status })
    }),
  },
  delays: {
    // After a success: the announce interval. After failures: retryMs, 2×, 4× … up to it.
    nextRound: ({ context }) => {
      const interval = Math.min(context.intervalMs, context.trackerIntervalMs ?? Number.POSITIVE_INFINITY)
      if (context.failedRounds === 0) return interval
      return Math.min(interval, context.retryMs * 2 ** (context.failedRounds - 1))
    },
  },
}).createMachine({
  id: 'trackerSession',
  context: ({ input }) => ({
    doors: Math.max(1, input.doors),
    door: 0,
    rev: input.rev,
    event: 'started',
    intervalMs: input.intervalMs,
    trackerIntervalMs: undefined,
    retryMs: input.retryMs ?? Math.min(input.intervalMs, 1_000),
    maxFailedRounds: input.maxFailedRounds ?? 2,
    failedRounds: 0,
    announced: false,
    status: 'announcing',
    lastDoor: 0,
  }),
  initial: 'active',
  states: {
    active: {
      initial: 'announcing',
      on: {
        'rev.changed': { target: '.announcing', actions: ['setRev', 'firstDoor'] },
        'announce.now': { target: '.announcing', actions: 'firstDoor' },
        stop: [{ guard: 'announced', target: 'stopping' }, { target: 'stopped' }],
      },
      states: {
        announcing: {
          invoke: {
            src: 'announce',
            input: ({ context }) => ({ door: context.door, rev: context.rev, event: context.event }),
            onDone: [
              {
                guard: 'onFirstDoor',
                target: 'ok',
                actions: [
                  { type: 'emitPeers', params: ({ event }) => event.output },
                  { type: 'recordSuccess', params: ({ event }) => event.output },
                ],
              },
              {
                target: 'degraded',
                actions: [
                  { type: 'emitPeers', params: ({ event }) => event.output },
                  { type: 'recordSuccess', params: ({ event }) => event.output },
                ],
              },
            ],
            onError: [
              { guard: 'hasNextDoor', target: 'announcing', reenter: true, actions: 'nextDoor' },
              { guard: 'unreachable', target: 'down', actions: 'recordFailure' },
              { target: 'degraded', actions: 'recordFailure' },
            ],
          },
        },
        ok: {
          entry: { type: 'report', params: { status: 'ok' } },
          after: { nextRound: { target: 'announcing', actions: 'firstDoor' } },
        },
        degraded: {
          entry: { type: 'report', params: { status: 'degraded' } },
          after: { nextRound: { target: 'announcing', actions: 'firstDoor' } },
        },
        down: {
          entry: { type: 'report', params: { status: 'down' } },
          after: { nextRound: { target: 'announcing', actions: 'firstDoor' } },
        },
      },
    },
    // Withdraw the peer where it last answered; on failure its entry simply expires there.
    stopping: {
      entry: assign({ door: ({ context }) => context.lastDoor, event: 'stopped' }),
      invoke: {
        src: 'announce',
        input: ({ context }) => ({ door: context.door, rev: context.rev, event: 'stopped' as const }),
        onDone: 'stopped',
        onError: 'stopped',
      },
    },
    stopped: { type: 'final' },
  },
})
