// R-SHARE: the client sharing daemon. Joins the swarm for its product, announces to the tracker
// (R-ANNOUNCE) and, when the tracker is down, slow or empty, finds peers on the DHT (R-DHT-1);
// serves every blob it holds to peers (content-keyed, any revision); replicates the release
// feed (R-DHT-2); follows the release stream (R-WATCH) and, with `auto`, updates the working copy
// through the multi-source download (R-ACCEL-2/3).
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import type { NatsConnection } from '@nats-io/transport-node'
import { errorMessage, isUpswarmError, UpswarmError } from '../../infra/errors.ts'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import type { TrustStore } from '../../infra/formats/trust-store.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { identityOf } from '../../infra/nats/identity.ts'
import { actorEventSubject, SERVER_HEARTBEATS } from '../../infra/nats/names.ts'
import { decodeTrusted } from '../../infra/release/release-trust.ts'
import { decodeRelease, fileEntries, manifestSha256, type SignedRelease } from '../../infra/release/manifest.ts'
import { followReleases, type FollowHandle } from '../../infra/release/release-log.ts'
import { listBlobs } from '../../infra/store/working-copy/history.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { PieceSession } from '../../infra/swarm/piece-protocol.ts'
import { openFeed, type ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import { TokenBucket } from '../../infra/swarm/token-bucket.ts'
import { loadSwarmIdentity, privateProductId, productTopic } from '../../infra/swarm/fleet.ts'
import { loadOrCreateKeyPair, SwarmTransport } from '../../infra/swarm/transport.ts'
import { HeartbeatForClient } from '../repo-server/heartbeat.ts'
import { createTrackerClient, type TrackerClient, type TrackerPeer } from '../tracker/client.ts'
import { createActor, fromPromise, type Actor } from 'xstate'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { autoUpdateMachine, type AutoUpdateEvent, type AutoUpdateRequest, type RunOutcome } from '../../machines/auto-update.machine.ts'
import { update, type ConflictPolicy, type UpdateResult } from '../updater/index.ts'
import type { AlertSink } from '../updater/source.ts'
import { DialBook } from './dial-book.ts'
import { AddressBook } from '../../infra/swarm/address-book.ts'
import { ServerSlots, type PartialBlob, type BlobFetchStats } from './multi-source.ts'
import { PeerSet } from './peers.ts'
import { makeServe } from './serve.ts'
import { natsTrustSource, swarmSource, type FeedReleases } from './sources.ts'
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
  log?: (msg: string) => void
}

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
  'update.started': [from: number, to: number]
  'update.done': [result: DaemonUpdate]
  'update.failed': [error: UpswarmError]
  /** A rolled-back working copy stays at `rev` although `newest` is announced (R-ROLLBACK hold). */
  'update.held': [rev: number, newest: number]
  'tracker.status': [status: string]
  'peer.connected': [key: string, via: string]
}

export interface Daemon extends EventEmitter<DaemonEvents> {
  readonly port: number
  readonly publicKey: string
  readonly peerId: string
  readonly peers: PeerSet
  /** The working copy's root of trust, shared with peers; whatever feeds it (a stream follower) is passed on. */
  readonly trust: TrustStore
  rev(): number
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

const DEFAULT_ANNOUNCE_MS = 5_000
/** A daemon looks for newer roots on a refused key at most this often. */
const ROOT_LOOK_MS = 2_000
/** How often a daemon with no peer dials the peers it remembers again. */
const REDIAL_REMEMBERED_MS = 10_000
const DEFAULT_SWARM_THREADS = 16
/** Server pieces one client has in flight at most, over all its downloads. */
const SERVER_SLOTS = 2
/** The first update waits for the first round of peer discovery (tracker, else DHT), this long at most. */
const DISCOVERY_WAIT_MS = 30_000
/** How long discovery waits for connected peers' first `have`. */
const HAVE_WAIT_MS = 3_000

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const log = opts.log ?? (() => {})
  const events = new EventEmitter<DaemonEvents>()
  let wc = await WorkingCopy.open(opts.dir)
  const { product, publicKey: publisherKey } = wc.config
  // A private product (docs/protocol.md §5): members only, secret topics and tracker id.
  const identity = opts.swarmIdentity ? await loadSwarmIdentity(opts.swarmIdentity) : undefined
  const topicSecret = wc.config.private ? identity?.topicSecret : null
  if (topicSecret === undefined) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${opts.dir}: product ${product} is private; give this machine's fleet identity with --swarm-identity FILE or UPSWARM_SWARM_IDENTITY (\`upswarm creds issue --client NAME\` writes it)`)
  }
  const swarmProduct = topicSecret ? privateProductId(topicSecret, product) : product
  const keyPair = identity?.keyPair ?? await loadOrCreateKeyPair(join(wc.layout.meta, 'swarm-key.json'))
  const publicKey = keyPair.publicKey.toString('hex')
  const peerId = createHash('sha1').update(keyPair.publicKey).digest('hex')
  const peers = new PeerSet()
  const partials = new Map<string, PartialBlob>()
  const uploadBucket = opts.maxUploadRate ? new TokenBucket(opts.maxUploadRate) : undefined
  let uploaded = 0
  const connections: { key: string; via: string }[] = []
  // Update scheduling (declared first: heartbeats and peers may ask for an update at any time).
  let closed = false
  /** The update statechart; events that come before it exists (a heartbeat at start) wait for it. */
  let updates: Actor<typeof autoUpdateMachine> | undefined
  const early: AutoUpdateEvent[] = []
  const tell = (event: AutoUpdateEvent): void => {
    if (updates) updates.send(event)
    else early.push(event)
  }
  /** Newest revision a repository server has synced (from heartbeats). */
  let serversNewest = 0
  let resolveDiscovered!: () => void
  const discovered = new Promise<void>((resolve) => {
    resolveDiscovered = resolve
  })
  let pathsBySha = new Map<string, string[]>()
  /** Newest revision a connected peer announced holding. */
  let peersNewest = 0
  /** Verified releases learnt from the release stream: a source of manifests when no server answers. */
  const streamReleases = new Map<number, SignedRelease>()
  let held: string[] = []

  const refreshHeld = async (): Promise<void> => {
    const current = wc.state.current
    const next = new Map<string, string[]>()
    if (current > 0) {
      for (const e of fileEntries((await wc.release(current)).manifest)) next.set(e.sha256, [...(next.get(e.sha256) ?? []), e.path])
    }
    pathsBySha = next
    held = [...new Set([...(await listBlobs(wc.history)), ...next.keys()])]
  }
  await refreshHeld()

  const serve = makeServe({ partials, stores: () => [wc.history], layout: wc.layout, pathsOf: (sha) => pathsBySha.get(sha) })
  const feed: ReleaseFeed = await openFeed({ storageDir: join(wc.layout.meta, 'feed'), publisherPublicKey: publisherKey })
  const rotation = await followTrust({ wc, emit: (event, ...args) => (events.emit as (e: typeof event, ...a: typeof args) => boolean)(event, ...args), log, ban: (peer, reason) => peers.ban(peer, reason) })

  const transport = new SwarmTransport({
    keyPair,
    bootstrap: parseBootstrap(opts.bootstrap),
    dhtHost: opts.host ?? '127.0.0.1',
    fleet: { identity: identity ?? null, admit: topicSecret ? 'members' : 'anyone' },
    onConnection: (stream, info) => {
      feed.replicate(stream)
      rotation.attach(stream)
      const session = new PieceSession(stream, {
        serve, product, rev: wc.state.current, uploadBucket,
        requestTimeoutMs: 8_000, stallTimeoutMs: 5_000,
      })
      session.on('upload', (_sha, bytes) => {
        uploaded += bytes
      })
      session.on('protocol-error', (err) => peers.ban(info.peer, err.message))
      session.on('have', (have) => {
        if (have.product === product && have.rev > peersNewest) {
          peersNewest = have.rev
          tell({ type: 'holders.changed', newest: peersNewest })
        }
      })
      peers.add(info.peer, session)
      void session.opened().then((ok) => {
        if (ok) session.announceHave(held, { reset: true, product, rev: wc.state.current })
      })
      connections.push({ key: info.peer, via: info.via })
      events.emit('peer.connected', info.peer, info.via)
    },
  })
  const addr = await transport.listen(opts.host ?? '127.0.0.1', opts.port ?? 0)
  /** R-DHT-2: the peers last reached, dialled at start, so a daemon finds its swarm with NATS, tracker and DHT bootstrap all gone. */
  const book = await AddressBook.open(wc.layout.peers, wc.layout.tmp)
  transport.on('refused', (peer, reason) => {
    // Two peers dialling each other is normal; anything else is worth a line in the log.
    if (reason !== 'duplicate connection') log(`connection ${peer ? `with peer ${peer.slice(0, 12)}… ` : ''}dropped: ${reason}`)
  })

  // Heartbeats tell which servers hold which revision (an update waits until one does) and
  // name the servers' swarm keys (servers seed the swarm; their bytes count as server bytes).
  let nc = opts.nc
  const subscribeHeartbeats = (nc: NatsConnection) => nc.subscribe(SERVER_HEARTBEATS, {
    callback: (err, msg) => {
      if (err) return
      try {
        const hb = HeartbeatForClient.parse(msg.json())
        if (hb.swarm) peers.markServers([hb.swarm.publicKey])
        const synced = hb.synced[product]
        if (synced !== undefined && synced > serversNewest) {
          serversNewest = synced
          tell({ type: 'holders.changed', newest: serversNewest })
        }
      } catch { /* malformed: the proxy logs it and keeps that server out; a client just ignores it */ }
    },
  })
  let hbSub = nc ? subscribeHeartbeats(nc) : undefined

  const pendingDials = new Set<Promise<unknown>>()
  // Addresses that never complete a handshake are aged out instead of dialled every round.
  const dialBook = new DialBook()
  const dial = (list: TrackerPeer[]): void => {
    if (closed) return
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

  // The remembered peers are dialled at start, and again while the daemon has no peer at all (a
  // handshake that timed out on a loaded machine, a peer that was restarting); the dial book's
  // backoff keeps a dead address from being dialled in a loop.
  const dialRemembered = (): void => {
    const remembered = book.list()
    if (remembered.length === 0 || transport.connections.size > 0) return
    log(`dialling ${remembered.length} peer(s) reached before`)
    dial(remembered.map((p) => ({ ip: p.host, port: p.port, publicKey: p.publicKey })))
  }
  dialRemembered()
  const redial = setInterval(dialRemembered, REDIAL_REMEMBERED_MS)
  redial.unref()

  // DHT: always announce ourselves (server); look peers up (client) when the tracker fails us.
  const hasDht = parseBootstrap(opts.bootstrap).length > 0
  let dhtLookup = false
  const joinDht = async (lookup: boolean): Promise<void> => {
    if (!hasDht) return
    dhtLookup = dhtLookup || lookup
    await transport.join(productTopic(product, undefined, topicSecret), { server: true, client: dhtLookup })
    if (wc.state.current > 0) await transport.join(productTopic(product, wc.state.current, topicSecret), { server: true, client: dhtLookup })
  }

  /** R-DHT-1: the tracker is down, slow or empty: find peers on the DHT. */
  const lookUpOnDht = (why: string): void => {
    if (!hasDht) return discoveryRoundDone()
    if (!dhtLookup) log(`${why}: looking peers up on the DHT`)
    void joinDht(true).then(() => transport.flush()).then(discoveryRoundDone, (err) => {
      log(`DHT lookup failed: ${errorMessage(err)}`)
      discoveryRoundDone()
    })
  }
  /** A round of discovery ended: once its dials have completed, the first update may start. */
  const discoveryRoundDone = (): void => {
    // Once the product-wide query and every dial so far are through, and the peers found have
    // told what they hold.
    void initialQuery
      .then(() => Promise.allSettled([...pendingDials]))
      .then(() => peers.announced(HAVE_WAIT_MS))
      .then(() => resolveDiscovered())
  }
  let initialQuery: Promise<void> = Promise.resolve()

  let tracker: TrackerClient | undefined
  const startTracker = (): TrackerClient => {
    const client = createTrackerClient({
      ...(nc ? { nc } : {}),
      ...(opts.trackerHttp ? { httpUrl: opts.trackerHttp } : {}),
      ...(opts.trackerUdp ? { udpUrl: opts.trackerUdp } : {}),
      product: swarmProduct, rev: wc.state.current, peerId, port: addr.port, publicKey,
      intervalMs: opts.announceIntervalMs ?? DEFAULT_ANNOUNCE_MS,
    })
    client.on('peers', (list) => {
      dial(list)
      if (list.filter((p) => p.publicKey !== publicKey).length === 0) lookUpOnDht('the tracker knows no other peer')
      else discoveryRoundDone()
    })
    client.on('status', (s) => {
      events.emit('tracker.status', s)
      if (s !== 'ok') lookUpOnDht(`tracker ${s}`)
    })
    return client
  }
  if (nc || opts.trackerHttp || opts.trackerUdp) {
    tracker = startTracker()
    // A content-keyed swarm: peers at any revision hold blobs we may need (R-PEERLIST).
    initialQuery = tracker.queryPeers(swarmProduct).then(dial, () => {})
  }
  await joinDht(!tracker)

  const feedReleases: FeedReleases = {
    list: (p) => {
      const revs = new Map(feed.releases(p).map((e) => [e.rev, e.manifestSha256]))
      if (p === product) for (const [rev, r] of [...rotation.releases, ...streamReleases]) revs.set(rev, manifestSha256(r.manifest))
      return [...revs].sort(([a], [b]) => a - b).map(([rev, manifestSha256]) => ({ rev, manifestSha256 }))
    },
    get: async (p, rev) => {
      if (p === product && streamReleases.has(rev)) return streamReleases.get(rev)
      if (p === product && rotation.releases.has(rev)) return rotation.releases.get(rev)
      const entry = feed.releases(p).find((e) => e.rev === rev)
      return entry ? feed.get(entry.index) : undefined
    },
  }
  const serverSlots = new ServerSlots(SERVER_SLOTS)

  const announcePiece = (sha: string, pieceSize: number, index: number): void => {
    for (const p of peers.all()) if (!p.session.closed) p.session.announcePiece(sha, pieceSize, index)
  }

  async function runUpdate(request: UpdateRequest): Promise<DaemonUpdate> {
    const { rev } = request
    const started = Date.now()
    await discovered
    const source = swarmSource({ nc, product, deps: { peers, partials, announcePiece, serverSlots, selfKey: publicKey, log }, feed: feedReleases, files: opts.threads ?? DEFAULT_SWARM_THREADS, log })
    const from = wc.state.current
    events.emit('update.started', from, rev ?? wc.state.newestVerified)
    // Many blobs at once: server requests are capped by serverSlots, peer requests per peer; a
    // wide window lets every client fetch its own stripe early and trade the rest.
    // Without NATS the updater keeps alerts in the working copy until a run that has a connection.
    const alerts: AlertSink | undefined = nc ? jetStreamAlertSink(nc) : undefined
    const result = await update(opts.dir, { source, ...(alerts ? { alerts } : {}), threads: opts.threads ?? DEFAULT_SWARM_THREADS, ...(rev !== undefined ? { rev } : {}), ...(request.onConflict ? { onConflict: request.onConflict } : {}), log: { info: (_o, m) => log(m), warn: (o, m) => log(`${m} ${JSON.stringify(o)}`) } })
    const before = wc
    wc = await WorkingCopy.open(opts.dir)
    // The update may have garbage-collected blobs the old view kept open for serving.
    before.history.closeHandles()
    await refreshHeld()
    for (const p of peers.all()) if (!p.session.closed) p.session.announceHave(held, { reset: true, product, rev: wc.state.current })
    tracker?.setRev(wc.state.current)
    await joinDht(false).catch(() => {})
    // The bytes this run actually received, by kind of source (R-ACCEL-2: never a silent fallback).
    const done: DaemonUpdate = {
      ...result,
      bytesFromServers: source.stats.bytesFromServers,
      bytesFromPeers: source.stats.bytesFromPeers,
      sources: source.stats,
      ms: Date.now() - started,
      uploadedBytes: uploaded,
    }
    events.emit('update.done', done)
    // Under the machine's identity: the only events subject its permissions allow (issue 10).
    if (nc) nc.publish(actorEventSubject('daemon', identityOf(nc)), JSON.stringify({ type: 'update.done', product, peerId, ...done }))
    return done
  }

  // Issue 11 item 2: one statechart decides every run, automatic or asked for (machines/auto-update.machine.ts).
  const results = new Map<number, DaemonUpdate>()
  /** The run in progress, which close() lets finish (an update is never cut off half-way). */
  let inflight: Promise<unknown> | undefined
  const actor = createActor(autoUpdateMachine.provide({
    actors: {
      runUpdate: fromPromise<RunOutcome, { request: AutoUpdateRequest; id: number }>(async ({ input }) => {
        const run = runUpdate(input.request)
        inflight = run.catch(() => {})
        const done = await run
        results.set(input.id, done)
        return { to: wc.state.current, hold: wc.state.hold }
      }),
    },
  }), { input: { auto: !!opts.auto, needsHolders: nc !== undefined, current: wc.state.current, hold: wc.state.hold }, ...inspection() })
  let nextRunId = 1
  const waiting = new Map<number, { resolve: (d: DaemonUpdate) => void; reject: (e: unknown) => void }>()
  actor.on('run.done', (e) => {
    const done = results.get(e.id)
    results.delete(e.id)
    if (e.id !== 0 && done) waiting.get(e.id)?.resolve(done)
    waiting.delete(e.id)
  })
  actor.on('run.failed', (e) => {
    const err = isUpswarmError(e.error) ? e.error : new UpswarmError('UPSWARM_E_IO', errorMessage(e.error), { cause: e.error })
    events.emit('update.failed', err)
    if (e.id === 0) log(`update failed: ${err.message}`)
    waiting.get(e.id)?.reject(err)
    waiting.delete(e.id)
  })
  actor.on('update.held', (e) => {
    log(`holding r${e.rev} (rolled back); r${e.newest} is available: run \`upswarm update --rev ${e.newest}\` to install it`)
    // Deferred: the release stream may tell of the release while startDaemon is still running.
    setImmediate(() => events.emit('update.held', e.rev, e.newest))
  })
  actor.start()
  updates = actor
  for (const e of early.splice(0)) actor.send(e)

  function updateNow(request: UpdateRequest = {}): Promise<DaemonUpdate> {
    if (closed) return Promise.reject(new UpswarmError('UPSWARM_E_IO', `the sharing daemon of ${opts.dir} is stopping; no update is started`))
    const id = nextRunId++
    const result = new Promise<DaemonUpdate>((resolve, reject) => waiting.set(id, { resolve, reject }))
    actor.send({ type: 'update.requested', request, id })
    return result
  }

  /** Newest revision some holder has: a server that synced it, a peer at it, the feed's peers. */
  const feedNewest = (): number => Math.max(0, ...feed.releases(product).map((e) => e.rev), ...rotation.releases.keys())
  const onNewRelease = (rev: number): void => {
    if (rev <= actor.getSnapshot().context.announced || rev <= wc.state.current) return
    events.emit('release.available', rev)
    actor.send({ type: 'holders.changed', newest: feedNewest() })
    actor.send({ type: 'release.announced', rev })
  }

  // The first update waits for the first round of discovery (bounded): starting with no peer
  // would send everything to the servers.
  const discoveryTimer = setTimeout(resolveDiscovered, DISCOVERY_WAIT_MS)
  void discovered.then(() => clearTimeout(discoveryTimer))
  if (!tracker) void transport.flush().then(discoveryRoundDone, discoveryRoundDone)

  const followStream = async (nc: NatsConnection): Promise<FollowHandle> => {
    const trustSource = natsTrustSource(nc)
    await rotation.refresh(trustSource)
    let checking = Promise.resolve()
    let lastLook = 0
    return followReleases(nc, product, (bytes, seq) => {
      // In order, one at a time: a release by a newly rotated key is judged after one look for the
      // root that names it. Only a refused key makes it look, at most every 2 s, so junk or forged
      // messages on the subject cannot make every daemon read the root stream again and again.
      checking = checking.then(async () => {
        const judge = () => decodeTrusted(bytes, { ...wc.releaseKeys(), store: rotation.store }, `release stream seq ${seq}`)
        let release
        try {
          release = judge().release
        } catch (err) {
          if (!isUpswarmError(err, 'UPSWARM_E_SIGNATURE') || Date.now() - lastLook < ROOT_LOOK_MS) {
            log(`ignored release stream message ${seq}: ${errorMessage(err)}`)
            return
          }
          lastLook = Date.now()
          await rotation.refresh(trustSource)
          try {
            release = judge().release
          } catch (err) {
            log(`ignored release stream message ${seq}: ${errorMessage(err)}`)
            return
          }
        }
        streamReleases.set(release.manifest.rev, release)
        onNewRelease(release.manifest.rev)
      })
    })
  }
  let follow = nc ? await followStream(nc) : undefined
  // With a root held, it decides whether the pinned key may still sign (rotated or retired keys).
  feed.on('release', (entry, release) => {
    if (!rotation.store.root || rotation.trusted(release, `release feed block ${entry.index}`)) onNewRelease(entry.rev)
  })
  // Blocks that arrived before the handler (peers dialled at start replicate at once) count too.
  for (const entry of feed.releases(product)) {
    if (entry.rev <= wc.state.current) continue
    const release = await feed.get(entry.index).catch(() => undefined)
    if (release && (!rotation.store.root || rotation.trusted(release, `release feed block ${entry.index}`))) onNewRelease(entry.rev)
  }
  rotation.onRelease(onNewRelease)
  for (const rev of rotation.releases.keys()) onNewRelease(rev)

  const daemon = Object.assign(events, {
    port: addr.port,
    publicKey,
    peerId,
    peers,
    trust: rotation.store,
    rev: () => wc.state.current,
    uploaded: () => uploaded,
    connections: () => [...connections],
    updateNow,
    async attachNats(late: NatsConnection) {
      if (nc || closed) return
      nc = late
      hbSub = subscribeHeartbeats(late)
      // The tracker's NATS door exists only in a client made with the connection; the old
      // client withdraws first, so that its withdrawal cannot follow the new announce.
      await tracker?.stop().catch(() => {})
      tracker = startTracker()
      follow = await followStream(late)
      if (closed) await follow.stop()
      actor.send({ type: 'nats.changed', connected: true })
    },
    async close() {
      closed = true
      actor.send({ type: 'stop' })
      clearInterval(redial)
      await follow?.stop()
      hbSub?.unsubscribe()
      await inflight
      for (const w of waiting.values()) w.reject(new UpswarmError('UPSWARM_E_IO', `the sharing daemon of ${opts.dir} stopped before this update ran`))
      await tracker?.stop().catch(() => {})
      await book.flush()
      await transport.close()
      await rotation.close()
      await feed.close()
      wc.history.closeHandles()
    },
  })
  return daemon
}

