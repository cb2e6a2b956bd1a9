// R-SHARE: the client sharing daemon. Joins the swarm for its product, announces to the tracker
// (R-ANNOUNCE) and, when the tracker is down, slow or empty, finds peers on the DHT (R-DHT-1);
// serves every blob it holds to peers (content-keyed, any revision); replicates the release
// feed (R-DHT-2); follows the release stream (R-WATCH) and, with `auto`, updates the working copy
// through the multi-source download (R-ACCEL-2/3).
// The daemon's logic is the statechart machines/share-daemon.machine.ts (NATS attach and retry,
// discovery, DHT lookups, redials, root looks, with the auto-update machine as its child); this
// file wires it to the swarm, the tracker, NATS and the updater, and starts it.
import type { RolloutStore } from '../../infra/formats/rollout-store.ts'
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import b4a from 'b4a'
import { join } from 'node:path'
import type { NatsConnection } from '@nats-io/transport-node'
import { ERROR_CODES, errorMessage, isUpswarmError, UpswarmError, type ErrorCode } from '../../infra/errors.ts'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import type { TrustStore } from '../../infra/formats/trust-store.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { identityKeyOf, identityOf } from '../../infra/nats/identity.ts'
import { actorEventSubject, META_STREAM, SERVER_HEARTBEATS, signedRelease2Subject, signedRolloutSubject } from '../../infra/nats/names.ts'
import { RolloutView } from '../../infra/formats/rollout-view.ts'
import { stageOf, type Rollout } from '../../infra/formats/rollout.ts'
import { followRollouts, readRollouts } from '../../infra/formats/rollout-stream.ts'
import { followReleases2 } from '../../infra/formats/release-stream.ts'
import { fetchMeta } from '../../infra/formats/meta-wire.ts'
import { decodeTrusted } from '../../infra/release/release-trust.ts'
import { followReleases, type FollowHandle } from '../../infra/release/release-log.ts'
import { listBlobs } from '../../infra/store/working-copy/history.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { PieceSession } from '../../infra/swarm/piece-protocol.ts'
import type { ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import { DaemonFeed } from './daemon-feed.ts'
import { StreamReleases } from './stream-releases.ts'
import { exchangeSite } from '../../infra/swarm/site-channel.ts'
import { TokenBucket } from '../../infra/swarm/token-bucket.ts'
import { loadSwarmIdentity, privateProductId, productTopic } from '../../infra/swarm/fleet.ts'
import { loadOrCreateKeyPair, SwarmTransport } from '../../infra/swarm/transport.ts'
import { HeartbeatForClient } from '../../infra/nats/heartbeat.ts'
import { createTrackerClient, type TrackerClient, type TrackerPeer } from './tracker-client.ts'
import { createActor, fromPromise, waitFor, type ActorOptions, type AnyActorLogic } from 'xstate'
import { autoUpdateMachine, type AutoUpdateRequest, type OpenedRun, type RunEnd, type RunOutcome } from '../../machines/auto-update.machine.ts'
import { shareDaemonMachine, type NatsFailure, type ShareDaemonInput } from '../../machines/share-daemon.machine.ts'
import type { ConflictPolicy } from '../../machines/file-status.machine.ts'
import type { InstallHooks, RunOutput } from '../../machines/update-run.machine.ts'
import type { AlertSink, ReleaseSource, UpdateResult } from '../../infra/release/source.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { DialBook } from './dial-book.ts'
import { mark } from '../../infra/timings.ts'
import { failed, installed, reverted, startFleetReporter, type FleetReporter } from './fleet-report.ts'
import { AddressBook } from '../../infra/swarm/address-book.ts'
import { ServerSlots, type PartialBlob, type BlobFetchStats } from './multi-source.ts'
import { SERVER_SLOTS } from './piece-scheduler.ts'
import { PeerSet } from './peers.ts'
import { makeServe } from './serve.ts'
import { natsTrustSource, serverSource, swarmSource, type FeedReleases } from './sources.ts'
import { followTrust, type TrustEvents } from './trust.ts'

export interface DaemonOptions {
  dir: string
  /** The repository's NATS; without it (unreachable) the daemon runs on the swarm alone until `attachNats`. */
  nc?: NatsConnection
  trackerHttp?: string
  trackerUdp?: string
  /** "host:port[,host:port]" of DHT bootstrap nodes. */
  bootstrap?: string
  host?: string
  port?: number
  auto?: boolean
  threads?: number
  /** Bytes/s uploaded to peers, all connections together; 0 = unlimited. */
  maxUploadRate?: number
  announceIntervalMs?: number
  /** This machine's fleet identity file (`creds issue --client`); required for a private product. */
  swarmIdentity?: string
  /**
   * Issue 14 item 4: this machine's locality label (a site or subnet, SITE_LABEL), told to peers and
   * the tracker; peers of the same site are preferred, so a WAN link carries each piece about once.
   */
  site?: string
  /**
   * One bounded attempt to reach the repository's NATS. Given without `nc`, the daemon keeps
   * trying on its statechart's clock (R-DHT-2: it shares meanwhile) and attaches once it answers;
   * a connection made this way is the daemon's and closed by `close()`.
   */
  connect?: () => Promise<NatsConnection>
  /**
   * The updater's run (actors/updater `update`), given by whoever composes the client process so
   * that the daemon never imports the updater; without it the daemon shares but cannot update.
   */
  updater?: DaemonUpdater
  /**
   * Issue 15 item 4: without `auto`, a release heard of is verified and its changed tree nodes
   * kept in the copy at once (actors/updater `prefetchRelease`), so the `upswarm update` asked
   * later reads them from disk. Given with the updater; changes nothing in the tree.
   */
  prefetch?: (dir: string, source: ReleaseSource) => Promise<number>
  /** Commands around each install and the health check after it (issue 16 item 2). */
  hooks?: InstallHooks
  /**
   * Issue 16 item 1: the key the client's rollout stage is hashed from (its NATS user nkey, from
   * the creds file); default: the user nkey of `nc`, else the daemon's node key.
   */
  stageKey?: string
  /** The client's ring label: in the stage of every rollout statement that lists it. */
  ring?: string
  /** Issue 16 item 3: report this client's revision, stage and health to the fleet view (at most one report per 10 s). */
  fleet?: boolean
  /** An XState inspection observer for the daemon's actors (live inspection, issue 12). */
  inspect?: ActorOptions<AnyActorLogic>['inspect']
  log?: (msg: string) => void
}

/** One run of the updater as the daemon asks for it: the swarm as the source, its alerts, its log. */
export interface UpdaterRun {
  source: ReleaseSource
  alerts?: AlertSink
  threads: number
  rev?: number
  onConflict?: ConflictPolicy
  hooks?: InstallHooks
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void }
  /** The history store is kept after the result (`settle`): the command waiting on the control socket does not wait for it. */
  deferRetain: boolean
}

/**
 * One update made ready by the updater (actors/updater `openUpdate`): the update-run statechart
 * wired to the locked working copy, which the daemon runs as its child actor (issue 12 item 1),
 * and how its output becomes the result (`finish`) or the copy is let go unfinished (`abandon`);
 * `settle`, after the result, keeps the history store and lets the copy go.
 */
export interface OpenedUpdate {
  logic: AnyActorLogic
  input: unknown
  finish(output: RunOutput): Promise<UpdateResult>
  settle(): Promise<string[]>
  abandon(): Promise<void>
}

export type DaemonUpdater = (dir: string, run: UpdaterRun) => Promise<OpenedUpdate>

/** What one update asks for, whichever path runs it (the CLI's direct path takes the same). */
export interface UpdateRequest {
  rev?: number
  onConflict?: ConflictPolicy
}

export interface DaemonUpdate extends UpdateResult {
  sources: BlobFetchStats
  ms: number
  /** Bytes this daemon has served to peers since it started (R-SHARE), at the end of the run. */
  uploadedBytes: number
}

export interface DaemonEvents extends TrustEvents {
  'release.available': [rev: number]
  /** Without `auto`: the release an update would go to was verified and its changed tree nodes kept in the copy (issue 15 item 4). */
  'release.prefetched': [rev: number]
  /** A trusted release block arrived in the daemon's release feed (what it passes on to peers). */
  'feed.release': [rev: number]
  /** The daemon holds format-2 release `rev`'s document, verified, and passes it on to peers (issue 13 item 3). */
  'release.doc': [rev: number]
  'update.started': [from: number, to: number]
  'update.done': [result: DaemonUpdate]
  'update.failed': [error: UpswarmError]
  /** Revision `rev` failed its health check; the working copy is back on `to` and holds there (issue 16 item 2). */
  'update.reverted': [rev: number, to: number, error: UpswarmError]
  /** Issue 16 item 1: a new rollout statement was verified and taken into account (the updates were told the stage's revision). */
  'rollout.statement': [seq: number, rev: number, state: string, target: number | undefined]
  /** A rolled-back working copy stays at `rev` although `newest` is announced (R-ROLLBACK hold). */
  'update.held': [rev: number, newest: number]
  'tracker.status': [status: string]
  'peer.connected': [key: string, via: string]
  /** NATS could not be reached (attempt `attempt`); the next try is in `waitMs`. */
  'nats.retrying': [attempt: number, waitMs: number, error: UpswarmError]
  /** NATS was reached after the daemon started without it: releases and servers are followed from now on. */
  'nats.connected': []
  /** NATS refused the daemon (credentials, permissions): it goes on with the swarm alone. */
  'nats.failed': [error: UpswarmError]
}

export interface Daemon extends EventEmitter<DaemonEvents> {
  readonly port: number
  readonly publicKey: string
  readonly peerId: string
  readonly peers: PeerSet
  /** The working copy's root of trust, shared with peers; whatever feeds it (a stream follower) is passed on. */
  readonly trust: TrustStore
  /** The product's rollout statements this daemon verified (stream or peers), kept on disk and passed on (issue 16 item 1). */
  readonly rollouts: RolloutStore
  rev(): number
  /** Issue 16 item 1: this client's place in the fleet for staged rollouts, basis points [0, 10000). */
  readonly stage: number
  uploaded(): number
  /** Every connection made so far (also those made while the daemon started). */
  connections(): { key: string; via: string }[]
  /** Runs one update now (to `request.rev`, or the newest verified), as `upswarm update` does. */
  updateNow(request?: UpdateRequest): Promise<DaemonUpdate>
  /**
   * NATS became reachable after the daemon started without it (R-DHT-2): follow the release
   * stream and the heartbeats, announce through it, and use the servers from now on.
   */
  attachNats(nc: NatsConnection): Promise<void>
  close(): Promise<void>
}

/**
 * Our announce interval; the tracker's own (a third of its peer TTL, 60 s by default) is used
 * when shorter. Idle, an announce only renews the entry: a changed revision announces at once
 * and a newcomer dials us itself (docs/decisions.md, "The idle daemon").
 */
const DEFAULT_ANNOUNCE_MS = 30_000
const DEFAULT_SWARM_THREADS = 16
/** Concurrent downloads of a run from the servers alone: as the `update` command's own. */
const DEFAULT_SERVER_THREADS = 4
/** How long discovery waits for connected peers' first `have`. */
const HAVE_WAIT_MS = 3_000

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const log = opts.log ?? (() => {})
  const events = new EventEmitter<DaemonEvents>()
  const dir = opts.dir
  const first = await WorkingCopy.open(dir)
  const { product, publicKey: publisherKey } = first.config
  // A private product (docs/protocol.md §5): members only, secret topics and tracker id.
  const identity = opts.swarmIdentity ? await loadSwarmIdentity(opts.swarmIdentity) : undefined
  const topicSecret = first.config.private ? identity?.topicSecret : null
  if (topicSecret === undefined) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${dir}: product ${product} is private; give this machine's fleet identity with --swarm-identity FILE or UPSWARM_SWARM_IDENTITY (\`upswarm creds issue --client NAME\` writes it)`)
  }
  const swarmProduct = topicSecret ? privateProductId(topicSecret, product) : product
  const keyPair = identity?.keyPair ?? await loadOrCreateKeyPair(join(first.layout.meta, 'swarm-key.json'))
  const publicKey = keyPair.publicKey.toString('hex')
  const peerId = createHash('sha1').update(keyPair.publicKey).digest('hex')
  const peers = new PeerSet()
  const partials = new Map<string, PartialBlob>()
  const uploadBucket = opts.maxUploadRate ? new TokenBucket(opts.maxUploadRate) : undefined
  const connections: { key: string; via: string }[] = []
  /** Verified releases learnt from the release stream: a source of manifests when no server answers. */
  const streamReleases = new StreamReleases()
  /** Revisions from the installed one on whose format-2 release document verified (stageChanged's choices when no format-1 release is heard). */
  const releases2Seen = new Set<number>()
  const pendingDials = new Set<Promise<unknown>>()
  // Addresses that never complete a handshake are aged out instead of dialled every round.
  const dialBook = new DialBook()
  const hasDht = parseBootstrap(opts.bootstrap).length > 0

  /**
   * The I/O resources the machine's actors act on. The machine decides when; these only do.
   * `wc` is reopened after every update; `nc` is set once NATS is attached.
   */
  const io = {
    wc: first,
    nc: opts.nc,
    /** The connection was made by `opts.connect` (the daemon closes it). */
    ownsNc: false,
    /** A NATS attempt under way (close waits for it, at most its bound). */
    connecting: undefined as Promise<unknown> | undefined,
    tracker: undefined as TrackerClient | undefined,
    trackerHasNats: false,
    initialQuery: Promise.resolve() as Promise<void>,
    follow: undefined as FollowHandle | undefined,
    rollouts: undefined as { unsubscribe(): void } | undefined,
    heartbeats: undefined as { unsubscribe(): void } | undefined,
    /** The machine's serverNews region is listening: the heartbeats are subscribed to while NATS is there. */
    serverNews: false,
    releases2: undefined as { stop(): void } | undefined,
    /** Blobs held (history store and working copy) and the current tree's paths by SHA-256. */
    held: [] as string[],
    pathsBySha: new Map<string, string[]>(),
    uploaded: 0,
    dhtLookup: false,
    closed: false,
    /** What the daemon does after a run, once its result is out (reopened): the next run and close wait for it. */
    settling: Promise.resolve() as Promise<void>,
  }

  const refreshHeld = async (): Promise<void> => {
    const current = io.wc.state.current
    const next = new Map<string, string[]>()
    if (current > 0) {
      // Format 1 or 2, whichever the copy holds the installed revision in (docs/formats.md §5 step 6).
      for (const e of (await io.wc.entries(current)).values()) if (e.kind === 'file') next.set(e.sha256, [...(next.get(e.sha256) ?? []), e.path])
    }
    io.pathsBySha = next
    io.held = [...new Set([...(await listBlobs(io.wc.history)), ...next.keys()])]
  }
  await refreshHeld()

  const serve = makeServe({ partials, stores: () => [io.wc.history], layout: first.layout, pathsOf: (sha) => io.pathsBySha.get(sha), node: (hash) => io.wc.trees.node(hash) })
  const rotation = await followTrust({ wc: first, emit: (event, ...args) => (events.emit as (e: typeof event, ...a: typeof args) => boolean)(event, ...args), log, ban: (peer, reason) => peers.ban(peer, reason), installed: () => io.wc.state.current })
  /** Wired once the feed is open (below, once the machine exists). */
  let wireFeed: (f: ReleaseFeed) => Promise<void> = async () => {}
  // Issue 13 item 5: a product whose root lists format 2 learns of releases from release documents
  // (servers and peers), so its daemon loads the format-1 release feed only for a client of an
  // earlier release that asks for it (daemon-feed.ts).
  const daemonFeed = await DaemonFeed.start({
    storageDir: join(first.layout.meta, 'feed'), publisherPublicKey: publisherKey,
    eager: rotation.store.root?.products[product]?.formats?.includes(2) !== true,
    onOpen: (f) => wireFeed(f),
    // Known by its heartbeat, or by its `have` (within HAVE_WAIT_MS): a server's names no product.
    isServer: async (key) => {
      if (peers.isServer(key)) return true
      await peers.announced(HAVE_WAIT_MS, key)
      return peers.get(key)?.session.remote.product === '' || peers.isServer(key)
    },
    isBanned: (key) => peers.isBanned(key),
    log,
  })
  // Issue 16 item 1: the product's staged rollout as this client sees it.
  const stageKey = opts.stageKey ?? (opts.nc && identityKeyOf(opts.nc)) ?? publicKey
  const stage = new RolloutView(product, { key: stageKey, ...(opts.ring ? { ring: opts.ring } : {}) })
  const releaseDocs = rotation.releaseDocs
  /** The newest release document the working copy verified and kept: offered to peers. */
  async function offerStoredReleaseDoc(): Promise<void> {
    const rev = (await io.wc.trees.revisions()).at(-1)
    const text = rev === undefined || !rotation.store.root ? undefined : await io.wc.trees.release(rev).catch(() => undefined)
    if (text === undefined) return
    try {
      releaseDocs.accept(text, io.wc.trees.where(rev!))
    } catch (err) {
      log(`not offering the stored release document of r${rev}: ${errorMessage(err)}`)
    }
  }
  const feedNewest = (): number => Math.max(0, ...daemonFeed.releases(product).map((e) => e.rev), rotation.releases.newest())

  // The actor is made before any I/O can tell it something: events sent before it starts wait in its mailbox.
  const daemonStart: ShareDaemonInput = {
    auto: !!opts.auto, current: first.state.current, hold: first.state.hold,
    nats: opts.nc ? 'attach' : opts.connect ? 'retry' : 'none',
    tracker: !!(opts.nc || opts.trackerHttp || opts.trackerUdp),
    dht: hasDht,
  }
  const actor = createActor(shareDaemonMachine.provide({
    actors: {
      autoUpdate: autoUpdateMachine.provide({
        actors: {
          openRun: fromPromise<OpenedRun, { request: AutoUpdateRequest; id: number }>(({ input }) => openRun(input.request)),
          closeRun: fromPromise<RunOutcome, { request: AutoUpdateRequest; id: number; end: RunEnd }>(async ({ input }) => {
            const closed = await closeRun(input.end)
            const at = { to: io.wc.state.current, hold: io.wc.state.hold }
            return closed instanceof UpswarmError ? { ...at, reverted: { rev: Number(closed.details?.rev ?? 0), error: closed } } : { ...at, report: closed }
          }),
        },
      }),
      connectNats: fromPromise<void, { attempt: number }>(async ({ signal }) => {
        if (!opts.connect) throw new UpswarmError('UPSWARM_E_CONFIG', 'the sharing daemon was given no way to reach NATS')
        const attempt = opts.connect()
        io.connecting = attempt.catch(() => {})
        const nc = await attempt
        if (signal.aborted || io.closed || io.nc) {
          await nc.close().catch(() => {})
          throw new UpswarmError('UPSWARM_E_NATS', 'NATS answered after the daemon stopped waiting for it')
        }
        io.nc = nc
        io.ownsNc = true
      }),
      attachNats: fromPromise(() => attachNats()),
      lookUpDht: fromPromise(() => joinDht(true).then(() => transport.flush())),
      // Once the product-wide query and every dial so far are through, and the peers found have told what they hold.
      settleDiscovery: fromPromise(async () => {
        await io.initialQuery
        await Promise.allSettled([...pendingDials])
        await peers.announced(HAVE_WAIT_MS)
      }),
    },
    actions: {
      dialRemembered: () => dialRemembered(),
      listenToServers: () => {
        io.serverNews = true
        hearServers()
      },
      restFromServers: () => {
        io.serverNews = false
        io.heartbeats?.unsubscribe()
        io.heartbeats = undefined
      },
    },
  }), { input: daemonStart, ...(opts.inspect ? { inspect: opts.inspect } : inspection()) })

  const transport = new SwarmTransport({
    keyPair,
    bootstrap: parseBootstrap(opts.bootstrap),
    dhtHost: opts.host ?? '127.0.0.1',
    fleet: { identity: identity ?? null, admit: topicSecret ? 'members' : 'anyone' },
    onConnection: (stream, info) => {
      daemonFeed.attach(stream)
      rotation.attach(stream)
      const session = new PieceSession(stream, {
        serve, product, rev: io.wc.state.current, uploadBucket,
        // With an upload limit, the waiting piece fewest peers hold goes first (issue 14).
        ...(uploadBucket ? { uploadRank: (sha256: string, offset: number, length: number) => peers.holderCount(sha256, offset, length) } : {}),
        requestTimeoutMs: 8_000, stallTimeoutMs: 5_000,
      })
      session.on('upload', (_sha, bytes) => {
        io.uploaded += bytes
      })
      session.on('protocol-error', (err) => peers.ban(info.peer, err.message))
      session.on('have', (have) => {
        if (have.product === product) actor.send({ type: 'peer.has', rev: have.rev })
      })
      peers.add(info.peer, session)
      exchangeSite(stream, opts.site, (site) => peers.setSite(info.peer, site))
      void session.opened().then((ok) => {
        if (ok) session.announceHave(io.held, { reset: true, product, rev: io.wc.state.current })
      })
      connections.push({ key: info.peer, via: info.via })
      events.emit('peer.connected', info.peer, info.via)
    },
  })
  const addr = await transport.listen(opts.host ?? '127.0.0.1', opts.port ?? 0)
  /** R-DHT-2: the peers last reached, dialled at start, so a daemon finds its swarm with NATS, tracker and DHT bootstrap all gone. */
  const book = await AddressBook.open(first.layout.peers, first.layout.tmp)
  transport.on('refused', (peer, reason) => {
    // Two peers dialling each other is normal; anything else is worth a line in the log.
    if (reason !== 'duplicate connection') log(`connection ${peer ? `with peer ${peer.slice(0, 12)}… ` : ''}dropped: ${reason}`)
  })

  const dial = (list: TrackerPeer[]): void => {
    if (io.closed) return
    for (const p of list) {
      if (p.publicKey === publicKey || !p.port) continue
      if (p.publicKey && transport.connections.has(p.publicKey)) {
        // Connected already (it dialled us): the tracker names where it listens, worth remembering.
        book.remember(p.ip, p.port, p.publicKey)
        continue
      }
      const key = DialBook.key(p.ip, p.port, p.publicKey)
      if (!dialBook.begin(key)) continue
      const pending: Promise<unknown> = transport.dial(p.ip, p.port, p.publicKey ? { remotePublicKey: Buffer.from(p.publicKey, 'hex') } : {})
        .then((info) => {
          dialBook.end(key, true)
          book.remember(p.ip, p.port, info.peer)
        }, (err) => {
          const wait = dialBook.end(key, false)
          log(`dial ${p.ip}:${p.port} failed: ${errorMessage(err)}; not dialled again for ${Math.round(wait / 1000)} s`)
        })
        .finally(() => pendingDials.delete(pending))
      pendingDials.add(pending)
    }
  }

  // The machine dials the remembered peers at start and again while the daemon has no peer at
  // all (a handshake that timed out on a loaded machine, a peer that was restarting); the dial
  // book's backoff keeps a dead address from being dialled in a loop.
  function dialRemembered(): void {
    const remembered = book.list()
    if (remembered.length === 0 || transport.connections.size > 0) return
    log(`dialling ${remembered.length} peer(s) reached before`)
    dial(remembered.map((p) => ({ ip: p.host, port: p.port, publicKey: p.publicKey })))
  }

  // DHT: always announce ourselves (server); look peers up (client) once the machine asks to.
  async function joinDht(lookup: boolean): Promise<void> {
    if (!hasDht) return
    io.dhtLookup = io.dhtLookup || lookup
    await transport.join(productTopic(product, undefined, topicSecret), { server: true, client: io.dhtLookup })
    if (io.wc.state.current > 0) await transport.join(productTopic(product, io.wc.state.current, topicSecret), { server: true, client: io.dhtLookup })
  }

  const startTracker = (): TrackerClient => {
    const client = createTrackerClient({
      ...(io.nc ? { nc: io.nc } : {}),
      ...(opts.trackerHttp ? { httpUrl: opts.trackerHttp } : {}),
      ...(opts.trackerUdp ? { udpUrl: opts.trackerUdp } : {}),
      product: swarmProduct, rev: io.wc.state.current, peerId, port: addr.port, publicKey, ...(opts.site ? { site: opts.site } : {}),
      intervalMs: opts.announceIntervalMs ?? DEFAULT_ANNOUNCE_MS, parent: actor,
    })
    io.trackerHasNats = io.nc !== undefined
    client.on('peers', (list) => {
      dial(list)
      actor.send({ type: 'tracker.peers', others: list.filter((p) => p.publicKey !== publicKey).length })
    })
    client.on('status', (status) => actor.send({ type: 'tracker.status', status }))
    return client
  }
  if (daemonStart.tracker) {
    io.tracker = startTracker()
    // A content-keyed swarm: peers at any revision hold blobs we may need (R-PEERLIST).
    io.initialQuery = io.tracker.queryPeers(swarmProduct).then(dial, () => {})
  }
  await joinDht(false)

  // Heartbeats tell which servers hold which revision (an update waits until one does) and
  // name the servers' swarm keys (servers seed the swarm; their bytes count as server bytes).
  // They are heard only while the machine's serverNews region listens (a release to reach, a
  // requested run, and a while after start, attach and the last use).
  // An idle server says the same thing every second: a heartbeat equal to its server's last one
  // is skipped before it is parsed (issue 13 item 5: the idle daemon's biggest steady cost).
  const lastHeartbeat = new Map<string, Uint8Array>()
  /** The newest revision whose tree was fetched ahead (prefetchRelease). */
  let prefetched = 0
  /** Resolved once startDaemon has returned: what a prefetch says then reaches the caller's listeners. */
  let returned!: () => void
  const started = new Promise<void>((resolve) => (returned = resolve))
  const subscribeHeartbeats = (nc: NatsConnection) => nc.subscribe(SERVER_HEARTBEATS, {
    callback: (err, msg) => {
      if (err) return
      const previous = lastHeartbeat.get(msg.subject)
      if (previous && b4a.equals(previous, msg.data)) return
      lastHeartbeat.set(msg.subject, b4a.from(msg.data))
      try {
        const hb = HeartbeatForClient.parse(msg.json())
        if (hb.swarm) peers.markServers([hb.swarm.publicKey])
        // Either format: a product without format-1 manifests has only format-2 revisions.
        const held = [hb.synced[product], hb.synced2[product]].filter((r): r is number => r !== undefined)
        const synced = held.length > 0 ? Math.max(...held) : undefined
        if (synced !== undefined) {
          actor.send({ type: 'servers.synced', rev: synced })
          // Once a server holds it (the release stream tells of a release before they copied it).
          if (!opts.auto && synced > io.wc.state.current) prefetchRelease(synced)
        }
      } catch { /* malformed: the proxy logs it and keeps that server out; a client just ignores it */ }
    },
  })

  /** Subscribes to the heartbeats once, while the serverNews region listens and NATS is there. */
  function hearServers(): void {
    if (io.serverNews && io.nc && !io.closed) io.heartbeats ??= subscribeHeartbeats(io.nc)
  }

  /**
   * `judge()`; when it refuses a signature, one look for newer roots (only when the machine's
   * rootLook is ready: at most every ROOT_LOOK_MS, so junk or forged messages cannot make every
   * daemon read the root stream again and again) and `judge()` again. Logs and answers undefined
   * what still fails.
   */
  async function judgedWithRootLook<T>(judge: () => T, trustSource: ReturnType<typeof natsTrustSource>, what: string): Promise<T | undefined> {
    try {
      return judge()
    } catch (err) {
      if (!isUpswarmError(err, 'UPSWARM_E_SIGNATURE') || !actor.getSnapshot().matches({ running: { rootLook: 'ready' } })) {
        log(`ignored ${what}: ${errorMessage(err)}`)
        return undefined
      }
    }
    actor.send({ type: 'roots.looked' })
    await rotation.refresh(trustSource)
    try {
      return judge()
    } catch (err) {
      log(`ignored ${what}: ${errorMessage(err)}`)
      return undefined
    }
  }

  const followStream = (nc: NatsConnection, trustSource: ReturnType<typeof natsTrustSource>): Promise<FollowHandle> => {
    let checking = Promise.resolve()
    return followReleases(nc, product, (bytes, seq) => {
      // In order, one at a time: a release by a newly rotated key is judged after one look for the
      // root that names it. Only a refused key makes it look, and only when the machine's rootLook
      // is ready (at most every ROOT_LOOK_MS), so junk or forged messages on the subject cannot
      // make every daemon read the root stream again and again.
      checking = checking.then(async () => {
        const release = await judgedWithRootLook(() => decodeTrusted(bytes, { ...io.wc.releaseKeys(), store: rotation.store }, `release stream seq ${seq}`).release, trustSource, `release stream message ${seq}`)
        if (!release) return
        streamReleases.add(release, io.wc.state.current)
        onNewRelease(release.manifest.rev)
      })
    })
  }

  /**
   * Format-2 release documents (docs/formats.md §1.8), each verified under the copy's root, one at a
   * time: how a daemon of a product whose root lists format 2 learns of a release. The newest is
   * asked of the servers once, for one published while the daemon was away; then each new one comes
   * as META republishes it (about 1 KB, where the release stream carries the whole format-1
   * manifest: 0.2 MiB at 1 000 files). A document signed under a root this copy does not hold yet
   * makes it look for newer roots once (at most every ROOT_LOOK_MS, as the release stream's
   * follower does); one that still does not verify is logged and ignored. Returns whether the
   * product lists format 2 (then the release stream is not followed).
   */
  async function followReleaseDocs(nc: NatsConnection, trustSource: ReturnType<typeof natsTrustSource>): Promise<boolean> {
    let checking = Promise.resolve()
    const accept = (text: string, where: string): Promise<void> => (checking = checking.then(async () => {
      // A release of another product, validly signed, is not news of this one (verify() refuses it).
      const rev = await judgedWithRootLook(() => (rotation.store.root ? releaseDocs.verify(text, where).release.rev : undefined), trustSource, where)
      if (rev === undefined) return
      // A newer one is news (releaseDocs' listener); the same one again (asked after a reconnect)
      // still starts a run that has not happened.
      if (releaseDocs.keep(product, rev, text) === 'known') releaseDocNews(rev)
    }))
    const lists2 = (): boolean => rotation.store.root?.products[product]?.formats?.includes(2) === true
    const askNewest = (): Promise<void> => fetchMeta(nc, { kind: 'release', product }).then((text) => accept(text, 'the newest format-2 release from the servers'), (err: unknown) => {
      if (!isUpswarmError(err) || !['UPSWARM_E_NO_SERVER', 'UPSWARM_E_UNKNOWN_REVISION', 'UPSWARM_E_NOT_FOUND'].includes(err.code)) log(`could not ask for the newest format-2 release: ${errorMessage(err)}`)
    })
    const follow = followReleases2(nc, product, (text, seq) => void accept(text, `${META_STREAM} seq ${seq}`), {
      // A release stored while the connection was down was republished to nobody.
      onReconnect: () => void (lists2() ? askNewest() : undefined),
      onError: (err) => log(`cannot follow the format-2 releases of ${product} (${signedRelease2Subject(product)}): ${errorMessage(err)}`),
    })
    if (io.closed) follow.stop()
    else io.releases2 = follow
    if (!lists2()) return false
    await askNewest()
    return true
  }

  /** NATS is there (at start, or reached late): heartbeats, the tracker's NATS door, the release stream. */
  async function attachNats(): Promise<void> {
    const nc = io.nc!
    hearServers()
    if (!io.trackerHasNats) {
      // The tracker's NATS door exists only in a client made with the connection; the old
      // client withdraws first, so that its withdrawal cannot follow the new announce.
      await io.tracker?.stop().catch(() => {})
      io.tracker = startTracker()
    }
    // The rollout first: a release announced before its statements are read would be taken by all.
    await followStage(nc)
    // A product whose root lists format 2: its release documents only, not the format-1 manifests
    // of the release stream (the swarm plans in format 2; the release feed still brings format 1
    // for when no server answers).
    // The roots and fresh statement, read once for whichever follower judges the releases.
    const trustSource = natsTrustSource(nc)
    await rotation.refresh(trustSource)
    if (await followReleaseDocs(nc, trustSource)) return
    const follow = await followStream(nc, trustSource)
    if (io.closed) await follow.stop()
    else io.follow = follow
  }

  /** One rollout statement, verified under the copy's root; the statement when it is new. */
  function acceptStatement(text: string, where: string): Rollout | undefined {
    const root = rotation.store.root
    if (!root) return undefined
    try {
      return stage.accept(text, root, io.wc.state.record, where)
    } catch (err) {
      log(`ignored rollout statement: ${errorMessage(err)}`)
      return undefined
    }
  }

  /** Issue 16 item 1: the product's rollout statements, then each new one as it is stored (root-pinned copies only). */
  async function followStage(nc: NatsConnection): Promise<void> {
    const root = rotation.store.root
    if (!root) return
    // Kept (and passed on to peers) through the rollout store, whose change feeds the stage.
    let keeping = Promise.resolve()
    const keep = (text: string, where: string): Promise<void> => (keeping = keeping.then(() => rotation.rollouts.accept(text, where).then(() => {}, (err: unknown) => log(`ignored rollout statement: ${errorMessage(err)}`))))
    const sub = followRollouts(nc, product, (text, seq) => void keep(text, `${signedRolloutSubject(product)} seq ${seq}`))
    await nc.flush()
    const scan = await readRollouts(nc, product, root)
    for (const s of scan.skipped) log(`ignored rollout statement at seq ${s.streamSeq}: ${s.reason}`)
    for (const s of scan.statements) await keep(s.text, `UPSWARM_META seq ${s.streamSeq}`)
    if (io.closed) sub.unsubscribe()
    else io.rollouts = sub
    stageChanged()
  }

  /** Tells the updates the revision this client's stage allows, once a rollout governs the product; returns it. */
  function stageChanged(): number | undefined {
    const revs = [...Object.keys(io.wc.state.record).map(Number), ...feedReleases.list(product).map((r) => r.rev), ...releases2Seen]
    const rev = stage.target(revs, io.wc.state.current)
    if (rev !== undefined) actor.send({ type: 'rollout.target', rev })
    return rev
  }

  const feedReleases: FeedReleases = {
    list: (p) => {
      const revs = new Map(daemonFeed.releases(p).map((e) => [e.rev, e.manifestSha256]))
      if (p === product) {
        for (const [rev, h] of rotation.releases.list()) revs.set(rev, h)
        for (const [rev, h] of streamReleases.list()) revs.set(rev, h)
      }
      return [...revs].sort(([a], [b]) => a - b).map(([rev, manifestSha256]) => ({ rev, manifestSha256 }))
    },
    get: async (p, rev) => {
      const held = p === product ? streamReleases.get(rev) ?? rotation.releases.get(rev) : undefined
      if (held) return held
      const entry = daemonFeed.releases(p).find((e) => e.rev === rev)
      return entry ? daemonFeed.get(entry.index) : undefined
    },
  }
  const serverSlots = new ServerSlots(SERVER_SLOTS)

  const announceRange = (sha: string, offset: number, length: number): void => {
    for (const p of peers.all()) if (!p.session.closed) p.session.announceRange(sha, offset, length)
  }
  const announcePiece = (sha: string, pieceSize: number, index: number): void => {
    for (const p of peers.all()) if (!p.session.closed) p.session.announcePiece(sha, pieceSize, index)
  }

  /**
   * One run of the updater over the swarm (R-ACCEL-2/3): made ready here, its statechart run by
   * the update machine as its child, ended by closeRun. Only one at a time (the machine's).
   */
  let current: { opened: OpenedUpdate; source: ReleaseSource & { stats: BlobFetchStats }; nc: NatsConnection | undefined; started: number } | undefined

  async function openRun(request: UpdateRequest): Promise<OpenedRun> {
    const { rev } = request
    if (!opts.updater) throw new UpswarmError('UPSWARM_E_CONFIG', `the sharing daemon of ${dir} was started without the updater: it shares its copy but cannot update it`)
    await io.settling
    mark('daemon: run opening')
    const started = Date.now()
    const nc = io.nc
    // Many blobs at once: server requests are capped by serverSlots, peer requests per peer; a
    // wide window lets every client fetch its own stripe early and trade the rest.
    // No peer to trade pieces with (none connected but repository servers): the run is the
    // servers' own path, format 2 throughout (the changed tree nodes, deltas, small files in
    // batches, the bulk port), not the swarm's format-1 plan, whose piece hashes only peers need
    // (issue 15 item 4: it halves a small update's time in the daemon).
    const alone = nc !== undefined && peers.all().every((p) => p.server || p.session.closed)
    const source = alone
      ? serverSource(nc, product)
      : swarmSource({ nc, product, deps: { peers, partials, announcePiece, announceRange, serverSlots, selfKey: publicKey, log, swarmSize: () => io.tracker?.swarmPeers, ...(opts.site ? { site: opts.site, siteSize: () => io.tracker?.sitePeers } : {}) }, feed: feedReleases, releaseDocs, files: opts.threads ?? DEFAULT_SWARM_THREADS, log })
    if (alone) log('no peer connected: this run fetches from the servers alone')
    const from = io.wc.state.current
    events.emit('update.started', from, rev ?? io.wc.state.newestVerified)
    // Without NATS the updater keeps alerts in the working copy until a run that has a connection.
    const alerts: AlertSink | undefined = nc ? jetStreamAlertSink(nc) : undefined
    const opened = await opts.updater(dir, { source, ...(alerts ? { alerts } : {}), threads: opts.threads ?? (alone ? DEFAULT_SERVER_THREADS : DEFAULT_SWARM_THREADS), ...(rev !== undefined ? { rev } : {}), ...(request.onConflict ? { onConflict: request.onConflict } : {}), ...(opts.hooks ? { hooks: opts.hooks } : {}), deferRetain: true, log: { info: (_o, m) => log(m), warn: (o, m) => log(`${m} ${JSON.stringify(o)}`) } })
    current = { opened, source, nc, started }
    return { logic: opened.logic, input: opened.input }
  }

  /** The run's result; for a revision that failed its health check and was taken back, the error saying so. */
  async function closeRun(end: RunEnd): Promise<DaemonUpdate | UpswarmError> {
    const run = current!
    current = undefined
    if ('error' in end) {
      await run.opened.abandon()
      throw end.error
    }
    // The output of the logic the updater gave: its update-run statechart's.
    let result: UpdateResult
    try {
      result = await run.opened.finish(end.output as RunOutput)
    } catch (err) {
      if (!isUpswarmError(err, 'UPSWARM_E_HEALTH')) throw err
      await reopened()
      return err
    }
    const { source, nc } = run
    mark('daemon: run finished')
    await reopened(run.opened)
    mark('daemon: copy read again')
    // The bytes this run actually received, by kind of source (R-ACCEL-2: never a silent fallback).
    const done: DaemonUpdate = {
      ...result,
      bytesFromServers: source.stats.bytesFromServers,
      bytesFromPeers: source.stats.bytesFromPeers,
      sources: source.stats,
      ms: Date.now() - run.started,
      uploadedBytes: io.uploaded,
    }
    // Under the machine's identity: the only events subject its permissions allow (issue 10).
    if (nc) nc.publish(actorEventSubject('daemon', identityOf(nc)), JSON.stringify({ type: 'update.done', product, peerId, ...done }))
    return done
  }

  /**
   * The working copy changed revision: serve, announce and look up what it holds now. The copy is
   * read again before the run's result goes out (`rev()` says the new revision); listing what it
   * holds and telling peers, the tracker and the DHT goes on after it (issue 15 item 4: the
   * command waiting on the control socket does not wait for a DHT announce, nor for the run's
   * retain of the history store, which `settle` does first), and the next run or close waits for it.
   */
  async function reopened(opened?: OpenedUpdate): Promise<void> {
    const before = io.wc
    io.wc = await WorkingCopy.open(dir)
    streamReleases.prune(io.wc.state.current)
    for (const rev of releases2Seen) if (rev < io.wc.state.current) releases2Seen.delete(rev)
    rotation.releases.prune(io.wc.state.current)
    // The update may have garbage-collected blobs the old view kept open for serving.
    before.history.closeHandles()
    const settle = async (): Promise<void> => {
      if (!opened) return
      for (const w of await opened.settle()) log(`keeping the history store: ${w}`)
      mark('daemon: history kept')
    }
    io.settling = io.settling.then(settle).then(announceHeld).catch((err: unknown) => log(`after the update: ${errorMessage(err)}`))
  }

  /** The release's metadata into the copy, between runs (the next run, or close, waits for it); once per revision. */
  function prefetchRelease(rev: number): void {
    const { prefetch } = opts
    const nc = io.nc
    if (!prefetch || !nc || io.closed || rev <= prefetched) return
    prefetched = rev
    io.settling = io.settling.then(async () => {
      if (io.closed || rev <= io.wc.state.current) return
      // The pool may answer from a server that has not copied it yet: the next server's heartbeat tries again.
      const got = await prefetch(dir, serverSource(nc, product))
      if (got < rev) prefetched = Math.min(prefetched, got)
      mark('daemon: release prefetched')
      if (got > io.wc.state.current) void started.then(() => events.emit('release.prefetched', got))
    }).catch((err: unknown) => {
      prefetched = Math.min(prefetched, rev - 1)
      log(`r${rev} heard of, its tree not fetched ahead: ${errorMessage(err)}`)
    })
  }

  async function announceHeld(): Promise<void> {
    await refreshHeld()
    for (const p of peers.all()) if (!p.session.closed) p.session.announceHave(io.held, { reset: true, product, rev: io.wc.state.current })
    io.tracker?.setRev(io.wc.state.current)
    await joinDht(false).catch(() => {})
    stageChanged()
  }

  // What the machine says, said to the daemon's listeners; callers of updateNow wait by run id.
  let nextRunId = 1
  const waiting = new Map<number, { resolve: (d: DaemonUpdate) => void; reject: (e: unknown) => void }>()
  const natsError = (e: NatsFailure): UpswarmError =>
    new UpswarmError((ERROR_CODES as readonly string[]).includes(e.code) ? e.code as ErrorCode : 'UPSWARM_E_NATS', e.message)
  actor.on('release.available', (e) => events.emit('release.available', e.rev))
  actor.on('tracker.status', (e) => events.emit('tracker.status', e.status))
  actor.on('dht.lookup', (e) => log(`${e.why}: looking peers up on the DHT`))
  actor.on('nats.retrying', (e) => events.emit('nats.retrying', e.attempt, e.waitMs, natsError(e.error)))
  actor.on('nats.connected', () => events.emit('nats.connected'))
  actor.on('nats.failed', (e) => {
    log(`NATS: ${e.error.message}; running on the swarm alone`)
    events.emit('nats.failed', natsError(e.error))
  })
  actor.on('run.done', (e) => {
    const done = e.outcome.report as DaemonUpdate
    events.emit('update.done', done)
    waiting.get(e.id)?.resolve(done)
    waiting.delete(e.id)
  })
  actor.on('run.failed', (e) => {
    const err = isUpswarmError(e.error) ? e.error : new UpswarmError('UPSWARM_E_IO', errorMessage(e.error), { cause: e.error })
    events.emit('update.failed', err)
    if (e.id === 0) log(`update failed: ${err.message}`)
    waiting.get(e.id)?.reject(err)
    waiting.delete(e.id)
  })
  actor.on('run.reverted', (e) => {
    const err = isUpswarmError(e.error) ? e.error : new UpswarmError('UPSWARM_E_HEALTH', errorMessage(e.error), { cause: e.error })
    log(err.message)
    events.emit('update.reverted', e.rev, e.to, err)
    waiting.get(e.id)?.reject(err)
    waiting.delete(e.id)
  })
  actor.on('update.held', (e) => {
    log(`holding r${e.rev} (rolled back); r${e.newest} is available: run \`upswarm update --rev ${e.newest}\` to install it`)
    // Deferred: the release stream may tell of the release while startDaemon is still running.
    setImmediate(() => events.emit('update.held', e.rev, e.newest))
  })
  actor.on('daemon.stopped', (e) => {
    for (const id of e.unrun) {
      waiting.get(id)?.reject(new UpswarmError('UPSWARM_E_IO', `the sharing daemon of ${dir} stopped before this update ran`))
      waiting.delete(id)
    }
  })
  actor.subscribe({ error: (err) => log(`the sharing daemon's statechart failed: ${errorMessage(err)}`) })
  // Issue 16 item 1: the statements kept on disk count at once (no NATS needed), and so does each
  // one the store gains later, from the stream or from a peer (the statements channel).
  for (const h of rotation.rollouts.statements(product)) acceptStatement(h.text, `rollout statement ${h.rollout.seq} kept on disk`)
  const stopRollouts = rotation.rollouts.onChange((h) => {
    if (h.rollout.product !== product) return
    const s = acceptStatement(h.text, `rollout statement ${h.rollout.seq}`)
    if (s) events.emit('rollout.statement', s.seq, s.rev, s.state, stageChanged())
  })
  if (rotation.rollouts.statements(product).length > 0) stageChanged()

  // Issue 16 item 3: what the fleet view shows of this client, from the daemon's own events.
  let fleet: FleetReporter | undefined
  if (opts.fleet) {
    const reporter = startFleetReporter({
      product, stageKey, ...(opts.ring ? { ring: opts.ring } : {}), role: 'daemon', nc: () => io.nc, log,
      initial: { rev: first.state.current, health: { state: 'none' } },
    })
    events.on('update.done', (r) => reporter.update(installed(r.from, r.to, r.bytesFromPeers, r.bytesFromServers)))
    events.on('update.reverted', (rev, to, err) => reporter.update(reverted(rev, to, err.message)))
    events.on('update.failed', (err) => reporter.update(failed(err.message)))
    // A report made before NATS was reached went nowhere.
    events.on('nats.connected', () => reporter.update())
    fleet = reporter
  }
  // Issue 13 item 3: a format-2 release document verified here, from the servers or a peer, is
  // news of a release and is passed on to peers (statements channel); the copy's newest stored one
  // is offered from the start, so a daemon restarted without servers still passes it on.
  /** A verified release document names `rev`: a choice for the stage, and news if newer than the copy. */
  function releaseDocNews(rev: number): void {
    releases2Seen.add(rev)
    if (rev > io.wc.state.current) onNewRelease(rev)
  }
  releaseDocs.onChange((_p, rev) => {
    events.emit('release.doc', rev)
    releaseDocNews(rev)
  })
  await offerStoredReleaseDoc()
  // One a peer passed on before the listener was there counts too.
  const docNow = releaseDocs.newest(product)
  if (docNow) releaseDocNews(docNow.rev)
  actor.start()
  // With NATS given, the release stream and the heartbeats are followed before startDaemon returns.
  await waitFor(actor, (s) => !s.matches({ running: { nats: 'attaching' } }))

  function updateNow(request: UpdateRequest = {}): Promise<DaemonUpdate> {
    if (io.closed) return Promise.reject(new UpswarmError('UPSWARM_E_IO', `the sharing daemon of ${dir} is stopping; no update is started`))
    const id = nextRunId++
    const result = new Promise<DaemonUpdate>((resolve, reject) => waiting.set(id, { resolve, reject }))
    actor.send({ type: 'update.requested', request, id })
    return result
  }

  /** A verified release of the product: the machine says the upgrade notice and decides the run. */
  function onNewRelease(rev: number): void {
    stageChanged()
    actor.send({ type: 'release.found', rev, holders: feedNewest() })
  }

  // With a root held, it decides whether the pinned key may still sign (rotated or retired keys).
  // `feed.release`: a release arrived in this daemon's copy of the release feed, which it passes on
  // to peers that cannot reach NATS (R-DHT-2).
  wireFeed = async (feed) => {
    feed.on('release', (entry, release) => {
      if (rotation.store.root && !rotation.trusted(release, `release feed block ${entry.index}`)) return
      events.emit('feed.release', entry.rev)
      onNewRelease(entry.rev)
    })
    // Blocks that arrived before the handler (peers dialled at start replicate at once) count too.
    for (const entry of feed.releases(product)) {
      if (entry.rev <= io.wc.state.current) continue
      const release = await feed.get(entry.index).catch(() => undefined)
      if (release && (!rotation.store.root || rotation.trusted(release, `release feed block ${entry.index}`))) onNewRelease(entry.rev)
    }
  }
  if (daemonFeed.feed) await wireFeed(daemonFeed.feed)
  rotation.onRelease(onNewRelease)
  for (const rev of rotation.releases.list().keys()) onNewRelease(rev)

  const daemon = Object.assign(events, {
    port: addr.port,
    publicKey,
    peerId,
    peers,
    trust: rotation.store,
    rollouts: rotation.rollouts,
    rev: () => io.wc.state.current,
    stage: stageOf(product, stageKey),
    uploaded: () => io.uploaded,
    connections: () => [...connections],
    updateNow,
    async attachNats(late: NatsConnection) {
      if (io.nc || io.closed) return
      io.nc = late
      actor.send({ type: 'nats.reached' })
      await waitFor(actor, (s) => s.status !== 'active' || !s.matches({ running: { nats: 'attaching' } }))
    },
    async close() {
      io.closed = true
      try {
        await fleet?.stop()
        actor.send({ type: 'stop' })
        await io.follow?.stop()
        io.heartbeats?.unsubscribe()
        io.releases2?.stop()
        io.rollouts?.unsubscribe()
        stopRollouts()
        // The run under way ends first; requests that never ran are refused (daemon.stopped).
        await waitFor(actor, (s) => s.status !== 'active', { timeout: Infinity })
        // A run whose statechart never ended (the daemon's failed) lets the working copy go.
        await current?.opened.abandon()
        await io.settling
        await io.connecting
        await io.tracker?.stop().catch(() => {})
        if (io.ownsNc) await io.nc?.close().catch(() => {})
        await book.flush()
        await transport.close()
        await rotation.close()
        await daemonFeed.close()
      } finally {
        // Also when a step above failed (a flush to a full disk): left open, the garbage collector
        // would close the serving handles with a warning, whenever it runs.
        io.wc.history.closeHandles()
      }
    },
  })
  setImmediate(returned)
  return daemon
}
