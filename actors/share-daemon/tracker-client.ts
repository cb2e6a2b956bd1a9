// The sharing daemon's tracker client (R-ANNOUNCE, R-DHT-1): the tracker-session statechart
// wired to the tracker's doors. It announces on an interval, fails over NATS → HTTP → UDP, and
// reports 'ok' | 'degraded' | 'down'; on 'down' the daemon finds peers through the DHT.
import { createActor, fromPromise, waitFor, type AnyActorRef } from 'xstate'
import { inspectionUnder } from '../../infra/inspect/nats-inspector.ts'
import { UpswarmError } from '../../infra/errors.ts'
import { queryPeers, trackerDoors, type DoorName, type TrackerEndpoints, type TrackerPeer } from '../../infra/tracker-client/index.ts'
import { isProductId, isRevision } from '../../infra/tracker/info-hash.ts'
import { trackerSessionMachine, type AnnounceInput, type AnnounceOutput, type TrackerStatus } from '../../machines/tracker-session.machine.ts'

export type { TrackerStatus, TrackerPeer, DoorName }

export interface TrackerClientOptions extends TrackerEndpoints {
  product: string
  rev: number
  /** 20 bytes, hex. */
  peerId: string
  /** TCP port our peers connect to. */
  port: number
  /** Noise public key, 32 bytes hex. */
  publicKey?: string
  /** Issue 14 item 4: our site; the tracker answers with peers of the same site first. */
  site?: string
  intervalMs: number
  /** First retry delay after a failed round (doubles up to intervalMs). */
  retryMs?: number
  /** Failed rounds in a row, after having announced, before 'down'. Default 2. */
  maxFailedRounds?: number
  numwant?: number
  /** The actor the session works for (the daemon's): its parent in inspection (issue 12). */
  parent?: AnyActorRef
}

export interface TrackerClient {
  /** 'announcing' until the first round ends. */
  readonly status: TrackerStatus | 'announcing'
  /** Issue 14 item 4: peers of our site in the swarm, as the tracker last counted them (undefined: not told). */
  readonly sitePeers: number | undefined
  /** Issue 14 item 3: peers in the swarm (seeders + leechers, us included), as the tracker last counted them (undefined: no answer yet). */
  readonly swarmPeers: number | undefined
  /** The peers of the last successful announce. */
  readonly peers: TrackerPeer[]
  on(event: 'peers', listener: (peers: TrackerPeer[], door: DoorName) => void): () => void
  on(event: 'status', listener: (status: TrackerStatus) => void): () => void
  /** Our working copy moved to another revision: announce it now. */
  setRev(rev: number): void
  announceNow(): void
  /** R-PEERLIST, one shot, through the same endpoints. */
  queryPeers(product: string, rev?: number): Promise<TrackerPeer[]>
  /** Withdraws the peer (best effort) and stops. */
  stop(): Promise<void>
}

export function createTrackerClient(opts: TrackerClientOptions): TrackerClient {
  validate(opts)
  const product = opts.product.toLowerCase()
  const doors = trackerDoors(opts)
  const announce = fromPromise<AnnounceOutput, AnnounceInput>(({ input, signal }) =>
    doors[input.door]!.announce(
      {
        product,
        rev: input.rev,
        peerId: opts.peerId.toLowerCase(),
        port: opts.port,
        event: input.event,
        ...(opts.publicKey ? { publicKey: opts.publicKey.toLowerCase() } : {}),
        ...(opts.site ? { site: opts.site } : {}),
        ...(opts.numwant !== undefined ? { numwant: opts.numwant } : {}),
      },
      signal,
    ).then((r) => {
      if (r.sitePeers !== undefined) sitePeers = r.sitePeers
      if (r.swarmPeers !== undefined) swarmPeers = r.swarmPeers
      return r
    }),
  )
  /** Issue 14 item 4: peers of our site in the swarm, from the last answer that said (NATS, with a site). */
  let sitePeers: number | undefined
  /** Issue 14 item 3: peers in our swarm, from the last answer. */
  let swarmPeers: number | undefined
  const actor = createActor(trackerSessionMachine.provide({ actors: { announce } }), {
    input: {
      doors: doors.length,
      rev: opts.rev,
      intervalMs: opts.intervalMs,
      ...(opts.retryMs !== undefined ? { retryMs: opts.retryMs } : {}),
      ...(opts.maxFailedRounds !== undefined ? { maxFailedRounds: opts.maxFailedRounds } : {}),
    },
    ...inspectionUnder(opts.parent),
  })
  let peers: TrackerPeer[] = []
  let stopping: Promise<void> | undefined
  actor.on('peers', (e) => {
    peers = e.peers
  })
  // The root actor's error observer: a bug in the session must not go unseen nor crash the daemon.
  actor.subscribe({ error: (err) => process.emitWarning(`tracker client: session failed: ${(err as Error).message}`) })
  actor.start()

  return {
    get status() {
      return actor.getSnapshot().context.status
    },
    get peers() {
      return peers
    },
    get sitePeers() {
      return sitePeers
    },
    get swarmPeers() {
      return swarmPeers
    },
    on(event: 'peers' | 'status', listener: (...args: never[]) => void): () => void {
      const sub =
        event === 'peers'
          ? actor.on('peers', (e) => (listener as (p: TrackerPeer[], d: DoorName) => void)(e.peers, doors[e.door]!.name))
          : actor.on('status', (e) => (listener as (s: TrackerStatus) => void)(e.status))
      return () => sub.unsubscribe()
    },
    setRev(rev) {
      if (!isRevision(rev)) throw new UpswarmError('UPSWARM_E_CONFIG', `tracker client: revision ${rev} is not a non-negative integer`)
      actor.send({ type: 'rev.changed', rev })
    },
    announceNow() {
      actor.send({ type: 'announce.now' })
    },
    queryPeers(p, rev) {
      return queryPeers(opts, p, rev)
    },
    stop() {
      stopping ??= (async () => {
        actor.send({ type: 'stop' })
        await waitFor(actor, (s) => s.status === 'done', { timeout: (opts.timeoutMs ?? 2_000) + 1_000 }).catch(() => {})
        actor.stop()
        for (const door of doors) door.close()
      })()
      return stopping
    },
  } as TrackerClient
}

function validate(opts: TrackerClientOptions): void {
  const bad = (what: string): never => {
    throw new UpswarmError('UPSWARM_E_CONFIG', `tracker client: ${what}`)
  }
  if (!isProductId(opts.product)) bad(`product "${opts.product}" is not a UUID`)
  if (!isRevision(opts.rev)) bad(`revision ${opts.rev} is not a non-negative integer`)
  if (!/^[0-9a-fA-F]{40}$/.test(opts.peerId)) bad('peerId must be 20 bytes in hex')
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65_535) bad(`port ${opts.port} is not a TCP port`)
  if (opts.publicKey !== undefined && !/^[0-9a-fA-F]{64}$/.test(opts.publicKey)) bad('publicKey must be 32 bytes in hex')
  if (!(opts.intervalMs > 0)) bad('intervalMs must be positive')
}
