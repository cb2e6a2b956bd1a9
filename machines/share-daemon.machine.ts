// R-SHARE: the client sharing daemon as one statechart. While it runs, five regions go on side
// by side:
// - nats: attach to the repository's NATS (follow releases, heartbeats, announce through it);
//   when NATS cannot be reached it keeps retrying on its own clock (R-DHT-2: the swarm works
//   meanwhile), and a late connection is attached the same way;
// - discovery: the first round of peer discovery (tracker, else DHT, R-DHT-1) ends — or
//   `discoveryWait` passes — before the first update may start, so a run does not send
//   everything to the servers;
// - dht: announce only, until the tracker is down, slow or knows no other peer; then look peers
//   up on the DHT topics (R-DHT-1);
// - redial: while it has no peer, dial the peers it reached before (the address book) again;
// - rootLook: a release whose key is refused makes it look for newer roots at most every
//   `rootLookInterval`, so junk on the release subject cannot make it read the roots in a loop;
// - serverNews: it hears the repository servers' heartbeats (which revision each holds, their
//   swarm keys) only while it has a use for them — a release to reach, a requested run — and for
//   `serverNewsLinger` after start, after NATS attaches and after the last use; otherwise it
//   rests (unsubscribed). Every server says the same thing every second, so an idle fleet no
//   longer takes servers × daemons messages a second from NATS (issue 13 item 5).
// The updates are the auto-update machine, invoked as the child `updates` (R-WATCH, R-ROLLBACK
// hold, backoff); it tells this machine every run's outcome by event. The I/O (NATS, swarm,
// tracker, the updater) is provided by actors/share-daemon with `.provide()`.
import { assign, emit, enqueueActions, fromPromise, not, raise, sendTo, setup } from 'xstate'
import { autoUpdateMachine, heldBack, moves, type AutoUpdateEmitted, type AutoUpdateRequest, type RunOutcome } from './auto-update.machine.ts'

/** How a NATS attempt failed, as the daemon reports it (the error's code and message). */
export interface NatsFailure {
  code: string
  message: string
}

export interface ShareDaemonInput {
  auto: boolean
  /** The working copy's revision and rollback hold at start. */
  current: number
  hold: number | undefined
  /** NATS at start: a connection to attach, one to keep trying to reach, or none at all. */
  nats: 'attach' | 'retry' | 'none'
  /** A tracker door is configured (else the DHT is looked up from the start). */
  tracker: boolean
  /** DHT bootstrap nodes are configured. */
  dht: boolean
}

export interface ShareDaemonContext {
  auto: boolean
  current: number
  hold: number | undefined
  tracker: boolean
  dht: boolean
  /** Newest revision announced (release stream, feeds), said once each as `release.available`. */
  announced: number
  /** The revision a staged rollout allows this client (`rollout.target`), as the updates have it. */
  staged: number | undefined
  /** Requested runs (`update.requested`) not yet done: each wants the servers' news. */
  requests: number
  /** Newest revision a repository server synced (heartbeats) and a connected peer holds. */
  serversNewest: number
  peersNewest: number
  /** NATS attempts that failed in a row (the retry delay grows with them). */
  natsAttempts: number
  natsFailure: NatsFailure | null
  /** NATS was attached after the daemon started without it. */
  natsLate: boolean
  natsStart: ShareDaemonInput['nats']
}

export type ShareDaemonEvent =
  | { type: 'nats.reached' }
  /** NATS attached (at start or late): the servers' news is heard for a while (serverNews). */
  | { type: 'nats.attached' }
  | { type: 'servers.synced'; rev: number }
  | { type: 'peer.has'; rev: number }
  /** A verified release of the product (stream, feed, a rotated key's feed); `holders`: the newest the feeds' peers hold. */
  | { type: 'release.found'; rev: number; holders: number }
  | { type: 'tracker.peers'; others: number }
  | { type: 'tracker.status'; status: string }
  | { type: 'discovery.roundEnded' }
  | { type: 'dht.wanted'; why: string }
  | { type: 'roots.looked' }
  | { type: 'update.requested'; request: AutoUpdateRequest; id: number }
  /** Issue 16 item 1: the revision the client's rollout stage allows, passed on to the updates. */
  | { type: 'rollout.target'; rev: number }
  | { type: 'stop' }
  | AutoUpdateEmitted

export type ShareDaemonEmitted =
  | { type: 'release.available'; rev: number }
  | { type: 'tracker.status'; status: string }
  | { type: 'dht.lookup'; why: string }
  | { type: 'nats.retrying'; attempt: number; waitMs: number; error: NatsFailure }
  | { type: 'nats.connected' }
  | { type: 'nats.failed'; error: NatsFailure }
  /** The machine is done; `unrun`: ids of requested updates that never ran. */
  | { type: 'daemon.stopped'; unrun: number[] }
  | AutoUpdateEmitted

/** First wait after NATS could not be reached; doubles up to NATS_RETRY_MAX_MS. */
export const NATS_RETRY_FIRST_MS = 1_000
export const NATS_RETRY_MAX_MS = 30_000
/** The first update waits for the first round of peer discovery this long at most. */
export const DISCOVERY_WAIT_MS = 30_000
/** How often a daemon with no peer dials the peers it remembers again. */
export const REDIAL_REMEMBERED_MS = 10_000
/** A daemon looks for newer roots on a refused key at most this often. */
export const ROOT_LOOK_MS = 2_000
/** After start, after NATS attaches and after its last use, the servers' heartbeats are heard this long. */
export const SERVER_NEWS_LINGER_MS = 10_000

export const natsRetryWait = (attempts: number): number => Math.min(NATS_RETRY_MAX_MS, NATS_RETRY_FIRST_MS * 2 ** Math.max(0, attempts - 1))

const failureOf = (error: unknown): NatsFailure => {
  const e = error as { code?: unknown; message?: unknown } | undefined
  return { code: typeof e?.code === 'string' ? e.code : 'UPSWARM_E_NATS', message: typeof e?.message === 'string' ? e.message : String(error) }
}

/** Requests left once run `id` ended (0: an automatic run, which no one requested). */
const requestsLeft = (requests: number, id: number): number => (id === 0 ? requests : Math.max(0, requests - 1))

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`share-daemon machine: actor ${name} is not provided`)
}

export const shareDaemonMachine = setup({
  types: {
    context: {} as ShareDaemonContext,
    events: {} as ShareDaemonEvent,
    input: {} as ShareDaemonInput,
    emitted: {} as ShareDaemonEmitted,
  },
  actors: {
    /** The daemon's updates; its `openRun`/`closeRun` (the updater's run over the swarm, run as its child) are provided by actors/share-daemon. */
    autoUpdate: autoUpdateMachine,
    /** One attempt to reach NATS (bounded); fails with code UPSWARM_E_NATS when it is unreachable. */
    connectNats: fromPromise<void, { attempt: number }>(notProvided('connectNats')),
    /** Follow the release stream and the heartbeats, announce to the tracker through NATS, refresh the roots. */
    attachNats: fromPromise<void, void>(notProvided('attachNats')),
    /** Join the DHT topics as a client too and wait for the first lookups (R-DHT-1). */
    lookUpDht: fromPromise<void, void>(notProvided('lookUpDht')),
    /** The dials of this round are through and the peers found said what they hold. */
    settleDiscovery: fromPromise<void, void>(notProvided('settleDiscovery')),
  },
  actions: {
    /** Dial the remembered peers if no peer is connected (R-DHT-2). */
    dialRemembered: () => {},
    /** Subscribe to the repository servers' heartbeats (when NATS is there; at attach otherwise). */
    listenToServers: () => {},
    /** Unsubscribe from them. */
    restFromServers: () => {},
  },
  delays: {
    natsRetryDelay: ({ context }) => natsRetryWait(context.natsAttempts),
    discoveryWait: DISCOVERY_WAIT_MS,
    redialInterval: REDIAL_REMEMBERED_MS,
    rootLookInterval: ROOT_LOOK_MS,
    serverNewsLinger: SERVER_NEWS_LINGER_MS,
  },
  guards: {
    natsUnreachable: (_, error: unknown) => failureOf(error).code === 'UPSWARM_E_NATS',
    newServersRev: ({ context, event }) => event.type === 'servers.synced' && event.rev > context.serversNewest,
    newPeersRev: ({ context, event }) => event.type === 'peer.has' && event.rev > context.peersNewest,
    newRelease: ({ context, event }) => event.type === 'release.found' && event.rev > context.announced && event.rev > context.current,
    noOtherPeer: ({ event }) => event.type === 'tracker.peers' && event.others === 0,
    natsGiven: ({ context }) => context.natsStart === 'attach',
    natsToReach: ({ context }) => context.natsStart === 'retry',
    hasTracker: ({ context }) => context.tracker,
    noDht: ({ context }) => !context.dht,
    /**
     * The servers' news has a use: a requested run under way or waiting, or a revision the copy
     * should move to (the updates' own rule: the newest announced, or the stage's, unless a hold
     * keeps the copy from it). A holder of that revision is what an automatic run waits for.
     */
    wantsServerNews: ({ context }) => context.requests > 0 || (moves(context) && !heldBack(context)),
  },
}).createMachine({
  id: 'shareDaemon',
  context: ({ input }) => ({
    auto: input.auto, current: input.current, hold: input.hold, tracker: input.tracker, dht: input.dht,
    announced: 0, staged: undefined, requests: 0, serversNewest: 0, peersNewest: 0, natsAttempts: 0, natsFailure: null, natsLate: false, natsStart: input.nats,
  }),
  invoke: {
    id: 'updates',
    src: 'autoUpdate',
    input: ({ context, self }) => ({
      auto: context.auto, needsHolders: false, current: context.current, hold: context.hold, ready: false, parent: self,
    }),
    onDone: { target: '.stopped', actions: emit(({ event }) => ({ type: 'daemon.stopped' as const, unrun: event.output.queued.map((q) => q.id) })) },
  },
  // The update machine's outcomes, also while stopping (a run under way ends first).
  on: {
    'update.requested': { actions: [assign({ requests: ({ context }) => context.requests + 1 }), sendTo('updates', ({ event }) => event)] },
    'rollout.target': { actions: [assign({ staged: ({ event }) => event.rev }), sendTo('updates', ({ event }) => event)] },
    'run.done': {
      actions: [
        assign(({ context, event }) => ({ current: event.outcome.to, hold: event.outcome.hold, requests: requestsLeft(context.requests, event.id) })),
        emit(({ event }) => event),
      ],
    },
    'run.failed': { actions: [assign({ requests: ({ context, event }) => requestsLeft(context.requests, event.id) }), emit(({ event }) => event)] },
    'run.reverted': {
      actions: [
        // Back on `to`, held below the revision that failed its check (the updates' own hold).
        assign(({ context, event }) => ({ current: event.to, hold: event.rev, requests: requestsLeft(context.requests, event.id) })),
        emit(({ event }) => event),
      ],
    },
    'update.held': { actions: emit(({ event }) => event) },
  },
  initial: 'running',
  states: {
    running: {
      type: 'parallel',
      on: {
        'servers.synced': {
          guard: 'newServersRev',
          actions: [
            assign({ serversNewest: ({ event }) => event.rev }),
            sendTo('updates', ({ event }) => ({ type: 'holders.changed' as const, newest: event.rev })),
          ],
        },
        'peer.has': {
          guard: 'newPeersRev',
          actions: [
            assign({ peersNewest: ({ event }) => event.rev }),
            sendTo('updates', ({ event }) => ({ type: 'holders.changed' as const, newest: event.rev })),
          ],
        },
        // R-WATCH: the upgrade notice, once per newer revision; the update machine decides the run.
        'release.found': {
          guard: 'newRelease',
          actions: [
            assign({ announced: ({ event }) => event.rev }),
            emit(({ event }) => ({ type: 'release.available' as const, rev: event.rev })),
            sendTo('updates', ({ event }) => ({ type: 'holders.changed' as const, newest: event.holders })),
            sendTo('updates', ({ event }) => ({ type: 'release.announced' as const, rev: event.rev })),
          ],
        },
        'tracker.peers': [
          { guard: 'noOtherPeer', actions: raise({ type: 'dht.wanted', why: 'the tracker knows no other peer' }) },
          { actions: raise({ type: 'discovery.roundEnded' }) },
        ],
        'tracker.status': {
          actions: [
            emit(({ event }) => ({ type: 'tracker.status' as const, status: event.status })),
            enqueueActions(({ event, enqueue }) => {
              if (event.status !== 'ok') enqueue.raise({ type: 'dht.wanted', why: `tracker ${event.status}` })
            }),
          ],
        },
        stop: { target: 'stopping', actions: sendTo('updates', { type: 'stop' }) },
      },
      states: {
        nats: {
          initial: 'choosing',
          states: {
            choosing: {
              always: [
                { guard: 'natsGiven', target: 'attaching' },
                { guard: 'natsToReach', target: 'connecting' },
                { target: 'none' },
              ],
            },
            none: { on: { 'nats.reached': { target: 'attaching', actions: assign({ natsLate: true }) } } },
            connecting: {
              invoke: {
                src: 'connectNats',
                input: ({ context }) => ({ attempt: context.natsAttempts + 1 }),
                onDone: { target: 'attaching', actions: assign({ natsLate: true, natsFailure: null }) },
                onError: [
                  {
                    guard: { type: 'natsUnreachable', params: ({ event }: { event: { error: unknown } }) => event.error },
                    target: 'waiting',
                    actions: [
                      assign({ natsAttempts: ({ context }) => context.natsAttempts + 1, natsFailure: ({ event }) => failureOf(event.error) }),
                      emit(({ context }) => ({ type: 'nats.retrying' as const, attempt: context.natsAttempts, waitMs: natsRetryWait(context.natsAttempts), error: context.natsFailure! })),
                    ],
                  },
                  // Refused credentials, an unreadable file: they need the user, not patience.
                  {
                    target: 'failed',
                    actions: [
                      assign({ natsFailure: ({ event }) => failureOf(event.error) }),
                      emit(({ context }) => ({ type: 'nats.failed' as const, error: context.natsFailure! })),
                    ],
                  },
                ],
              },
              on: { 'nats.reached': { target: 'attaching', actions: assign({ natsLate: true }) } },
            },
            waiting: {
              after: { natsRetryDelay: 'connecting' },
              on: { 'nats.reached': { target: 'attaching', actions: assign({ natsLate: true }) } },
            },
            attaching: {
              invoke: {
                src: 'attachNats',
                onDone: {
                  target: 'online',
                  actions: [
                    sendTo('updates', { type: 'nats.changed', connected: true }),
                    raise({ type: 'nats.attached' }),
                    enqueueActions(({ context, enqueue }) => {
                      if (context.natsLate) enqueue.emit({ type: 'nats.connected' as const })
                    }),
                  ],
                },
                onError: {
                  target: 'failed',
                  actions: [
                    assign({ natsFailure: ({ event }) => failureOf(event.error) }),
                    emit(({ context }) => ({ type: 'nats.failed' as const, error: context.natsFailure! })),
                  ],
                },
              },
            },
            online: {},
            failed: { on: { 'nats.reached': 'attaching' } },
          },
        },
        discovery: {
          initial: 'discovering',
          states: {
            discovering: {
              after: { discoveryWait: 'discovered' },
              initial: 'waiting',
              states: {
                waiting: { on: { 'discovery.roundEnded': 'settling' } },
                settling: {
                  invoke: {
                    src: 'settleDiscovery',
                    onDone: '#shareDaemon.running.discovery.discovered',
                    onError: '#shareDaemon.running.discovery.discovered',
                  },
                },
              },
            },
            discovered: { entry: sendTo('updates', { type: 'discovery.done' }) },
          },
        },
        dht: {
          initial: 'choosing',
          states: {
            choosing: {
              always: [
                { guard: 'hasTracker', target: 'announcing' },
                { target: 'lookingUp' },
              ],
            },
            announcing: {
              on: {
                'dht.wanted': [
                  { guard: 'noDht', actions: raise({ type: 'discovery.roundEnded' }) },
                  { target: 'lookingUp', actions: emit(({ event }) => ({ type: 'dht.lookup' as const, why: event.why })) },
                ],
              },
            },
            lookingUp: {
              invoke: {
                src: 'lookUpDht',
                onDone: { target: 'looking', actions: raise({ type: 'discovery.roundEnded' }) },
                onError: { target: 'looking', actions: raise({ type: 'discovery.roundEnded' }) },
              },
            },
            looking: { on: { 'dht.wanted': 'lookingUp' } },
          },
        },
        redial: {
          initial: 'waiting',
          entry: 'dialRemembered',
          states: {
            waiting: { after: { redialInterval: { target: 'waiting', reenter: true, actions: 'dialRemembered' } } },
          },
        },
        rootLook: {
          initial: 'ready',
          states: {
            ready: { on: { 'roots.looked': 'cooling' } },
            cooling: { after: { rootLookInterval: 'ready' } },
          },
        },
        serverNews: {
          initial: 'listening',
          states: {
            listening: {
              entry: 'listenToServers',
              initial: 'lingering',
              states: {
                wanted: { always: { guard: not('wantsServerNews'), target: 'lingering' } },
                lingering: {
                  always: { guard: 'wantsServerNews', target: 'wanted' },
                  after: { serverNewsLinger: '#shareDaemon.running.serverNews.resting' },
                  on: { 'nats.attached': { target: 'lingering', reenter: true } },
                },
              },
            },
            resting: {
              entry: 'restFromServers',
              always: { guard: 'wantsServerNews', target: 'listening' },
              on: { 'nats.attached': 'listening' },
            },
          },
        },
      },
    },
    /** The run under way ends first (an update is never cut off half-way); then the child is done. */
    stopping: {},
    stopped: { type: 'final' },
  },
})
