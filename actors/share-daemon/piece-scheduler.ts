// R-ACCEL-2: the decisions of the multi-source download, without I/O — which piece to ask whom
// for (rarest first, a few requests per peer), when a piece goes to the servers (coordination-
// free striping, patience, the backups' turns, the busy owner), the end-game's duplicates, and
// what a failed request means. The daemon (multi-source.ts) drives it with real sessions and the
// wall clock; the swarm simulator (bench/simulate/) drives the same code with modelled peers on a
// virtual clock, so the simulator cannot drift from what the daemon does (issue 14 item 3).
import { sha256Hex } from '../../infra/release/hash.ts'

export const PEER_SLOTS = 4
/** Server pieces one client has in flight at most, over all its downloads (the daemon's ServerSlots limit). */
export const SERVER_SLOTS = 2
/**
 * How long (at least) a piece outside this client's stripe waits for a peer before the servers
 * are asked, counted from the later of the update's start and the last time this client still
 * wanted a server for a piece of its own stripe: while a client works through its stripe, the
 * others are working through theirs. See ServerSlots.patienceMs.
 */
export const PATIENCE_MS = 500
export const PEER_REQUEST_TIMEOUT_MS = 8_000
/** Turns of patience the backups of a late piece take before the rest may ask the servers too. */
export const MAX_BACKUP_TURNS = 4
/** A peer that answered 'busy' (upload saturated) is asked again after this long. */
export const BUSY_BACKOFF_MS = 250
/** How long to wait for a peer to announce a piece that no server can send. */
export const NO_SOURCE_TIMEOUT_MS = 60_000

/** Exponentially weighted moving average of durations (ms), 0 meaning no sample yet. */
export function movingAverage(avg: number, sample: number): number {
  return avg === 0 ? sample : 0.8 * avg + 0.2 * sample
}

/** How long a peer takes to deliver a piece, over every download of one client: what "late" means in the end-game. */
export class PieceTimes {
  /** EWMA of piece times from peers (ms; 0: none yet). */
  pieceMsAvg = 0

  /** Records one peer piece's time from request to data. */
  served(ms: number): void {
    this.pieceMsAvg = movingAverage(this.pieceMsAvg, ms)
  }

  /**
   * A piece request to a peer older than this is late: the end-game may ask a second peer for
   * the same piece. Three typical piece times, at least 300 ms (and 1 s before any is known).
   */
  lateAfterMs(): number {
    return this.pieceMsAvg === 0 ? 1_000 : Math.max(300, 3 * this.pieceMsAvg)
  }
}

/** Server requests in flight, shared by every blob of one client: the servers are the scarce resource. */
export class ServerSlots {
  inUse = 0
  /** When a piece of this client's own stripe last wanted a server (started, or waited for a slot). */
  stripeWantedAt = 0
  /** Moving average of how long a server piece takes to arrive, ms (0: none yet). */
  serverPieceMs = 0
  constructor(readonly limit: number) {}

  /** A server piece arrived after `ms`. */
  served(ms: number): void {
    this.serverPieceMs = movingAverage(this.serverPieceMs, ms)
  }

  /**
   * How long a piece outside this client's stripe waits for a peer, once the stripe wants no
   * server: at least PATIENCE_MS, and as long as a server piece takes now — while the servers
   * are slow, so are the other stripes' owners, and asking the servers too only duplicates.
   */
  patienceMs(): number {
    return Math.max(PATIENCE_MS, this.serverPieceMs)
  }
  get free(): boolean {
    return this.inUse < this.limit
  }
}

/** Rendezvous score of `key` for piece `index` of blob `sha256` (higher wins). */
export function stripeScore(key: string, sha256: string, index: number): number {
  return parseInt(sha256Hex(`${key}:${sha256}:${index}`).slice(0, 12), 16)
}

/** The range of stripeScore: 12 hex digits. */
const SCORE_RANGE = 2 ** 48

/**
 * Patiences per added importer of a piece in a site larger than a client's view. In the
 * simulator at N = 1 000 in 8 sites: a turn as long as a late piece (three piece times) took
 * cross-site bytes to 0.94 × sites × F but p99 from 35 to 57 s; one patience, 3.0 × and 35 s;
 * two, 2.2 × and 36 s.
 */
export const SIZED_TURNS = 2

/**
 * Issue 14 item 3: in a swarm larger than the view, clients expected to ask the servers for a
 * piece at once (seedsNow). In the simulator at N = 1 000 (1 MiB pieces): 2 took origin from 7.4
 * to 2.9 × F but p99 from 32.8 to 39.9 s (a piece with no first seeder waits a turn); 4, origin
 * 3.6 × F, duplicates 5.4 → 2.1 × F, p99 32.7 s; at N = 3 000, origin 8.0 → 4.1 × F, p99 34.7 → 33.5 s.
 */
export const SEED_FIRST = 4
/** Below this share of the blob's pieces held by no peer in view, those few are rare in the whole swarm: seeders double per turn. */
export const RARE_SHARE = 0.1
/** Seeding turns per added seeder while many pieces are still out of view (the swarm is being seeded). */
export const SLOW_TURNS = 4
/**
 * The sized rule applies in a swarm this many times larger than the view: below it, striping over
 * the view is as good (at N = 100 in the simulator it was slightly faster), and a swarm whose
 * count includes a few servers or clients at other revisions is not taken for a large one.
 */
export const SIZED_VIEWS = 2
/**
 * Nor in a swarm of at most this many clients: one the transport's connection cap (infra/swarm/
 * transport.ts DEFAULT_MAX_CONNECTIONS, 64) lets every client see whole, so striping over the view
 * is exact (a client that starts with a few connections in a swarm of 8 is not in a large swarm).
 */
export const SIZED_MIN_SWARM = 64

/**
 * Whether a swarm of `size` clients (the tracker's count) is larger than a view of `view` keys
 * (this client and its connected client peers) in the sense of the sized rules: over
 * SIZED_MIN_SWARM clients and SIZED_VIEWS views.
 */
export function largeSwarm(size: number | undefined, view: number): size is number {
  return size !== undefined && size > SIZED_MIN_SWARM && size > SIZED_VIEWS * view
}

/**
 * The longest run of a format-2 file's chunks a client asks for as one piece in a large swarm
 * (issue 14 item 3): a piece spreads one hop per piece time, and the last pieces into a swarm of N
 * take about log₂ N hops, so shorter pieces shorten the start of the run and the tail. In the
 * simulator at N = 1 000: p99 29.0 s at 1 MiB, 21.3 s at 256 KiB. In a swarm the view sees whole,
 * 1 MiB (four times fewer requests and announcements, where the machine's CPU is the limit).
 */
export const LARGE_SWARM_RUN = 256 * 1024

/** The run length (at most) a client cuts a format-2 file's chunks into, for a swarm of `size` seen through `view` keys. */
export function runLength(size: number | undefined, view: number, pieceSize: number): number {
  return largeSwarm(size, view) ? Math.min(pieceSize, LARGE_SWARM_RUN) : pieceSize
}

/** When piece `i` was first seen in some state: the time recorded in `since`, or `now`, recorded, the first time. */
function firstSeen(since: Map<number, number>, i: number, now: number): number {
  let t = since.get(i)
  if (t === undefined) since.set(i, (t = now))
  return t
}

/** stripeScore, or a cache of it (the simulator's: thousands of clients score the same keys). */
export type StripeScore = (key: string, sha256: string, index: number) => number

const outranks = (a: { key: string; score: number }, b: { key: string; score: number }): boolean =>
  a.score > b.score || (a.score === b.score && a.key > b.key)

/**
 * Coordination-free striping: the client, among `keys` (this client and the client peers it is
 * connected to), whose stripe piece `index` of blob `sha256` is in. Rendezvous hashing (the key
 * with the highest hash of key and piece wins), so that two clients that see different peers
 * still agree on every piece whose owner both see (a modulo over the key list would reassign
 * almost every piece when one view lacks one peer).
 */
export function stripeOwner(sha256: string, index: number, keys: readonly string[], score: StripeScore = stripeScore): string | undefined {
  let best: { key: string; score: number } | undefined
  for (const key of keys) {
    const c = { key, score: score(key, sha256, index) }
    if (!best || outranks(c, best)) best = c
  }
  return best?.key
}

/**
 * Where `self` stands for piece `index` of blob `sha256` among `keys`: 0 for the owner, 1 for the
 * first backup, and so on (the rendezvous order). A piece whose owner is late goes to the
 * servers through its backups one at a time, not through every waiting client at once.
 */
export function stripeRank(sha256: string, index: number, keys: readonly string[], self: string, score: StripeScore = stripeScore): number {
  const mine = { key: self, score: score(self, sha256, index) }
  let rank = 0
  for (const key of keys) if (key !== self && outranks({ key, score: score(key, sha256, index) }, mine)) rank++
  return rank
}

/**
 * The sorted keys of this client and the client peers it is connected to (servers are not in a
 * stripe); with `site`, only the peers of that site (issue 14 item 4).
 */
export function swarmKeysOf(selfKey: string, peers: { all(): ReadonlyArray<{ key: string; server: boolean; site?: string | undefined }> }, site?: string): string[] {
  return [selfKey, ...peers.all().filter((p) => !p.server && (site === undefined || p.site === site)).map((p) => p.key)].sort()
}

/** What the scheduler needs to know of a connected peer (the daemon's PeerEntry is one). */
export interface SchedPeer {
  readonly key: string
  /** A repository server seeding the swarm. */
  server: boolean
  /** Requests of this client in flight to it. */
  inflight: number
  /** Not to be asked before this time (ms, the driver's clock) after it answered 'busy'. */
  busyUntil: number
  /** When it last announced a newly verified piece (ms; 0: never). */
  lastPieceAt: number
  /** Its locality (site) label, if it told one (issue 14 item 4). */
  site?: string | undefined
}

/** A request in flight for a piece of the blob. */
export interface SchedRequest<P> {
  piece: number
  source: P | 'server'
  /** When it was asked (ms, the driver's clock). */
  asked: number
}

/** What the scheduler reads from and asks of its driver (the daemon, or the simulator). */
export interface SchedulerIO<P extends SchedPeer> {
  now(): number
  /** Open, unchoked, unbanned peers holding piece `i` (servers' seeds included). */
  holders(i: number): P[]
  /** The connected peer with this key, if any (looked up once per piece). */
  peer(key: string): P | undefined
  /** The peer's connection is closed. */
  closed(p: P): boolean
  /** The requests of this blob in flight, now (it changes as the scheduler starts requests). */
  inflight(): Iterable<SchedRequest<P>>
  /** See PieceTimes.lateAfterMs. */
  lateAfterMs(): number
  /** The proxy-assigned server can be asked (a NATS connection, and no failure so far). */
  serverAvailable(): boolean
  /** Ask `peer` for piece `i` now; `asServer`: a server's seed, holding one of the server slots. The driver counts peer.inflight and slots.inUse. */
  startPeer(i: number, peer: P, asServer: boolean): void
  /** Ask the proxy-assigned server for piece `i` now (the driver counts slots.inUse). */
  startServer(i: number): void
  /**
   * Withdraws one request in flight (the daemon aborts it; a server or peer that has not started
   * sending it drops it): a piece asked of the servers once a client peer holds it, or of another
   * site once a peer of this client's site does (plan).
   */
  withdraw?(f: SchedRequest<P>): void
  /** Called before a piece goes to a server (UPSWARM_DEBUG logging). */
  beforeServer?(i: number): void
}

/** A request's source that is a repository server: the assigned one, or a server's seed. */
function isServer(s: SchedPeer | 'server'): boolean {
  return s === 'server' || s.server
}

/** What a failed peer request means for the rest of the download. */
export type FailureAction = 'ignore' | 'back-off' | 'shun'

/**
 * A failed request to a peer (a PieceFailure reason): 'aborted' was ours; 'busy' is no fault
 * (the piece goes back to the pool and the peer is asked again after BUSY_BACKOFF_MS); anything
 * else shuns the peer for this blob in this run.
 */
export function failureAction(why: string | undefined): FailureAction {
  if (why === 'aborted') return 'ignore'
  if (why === 'busy') return 'back-off'
  return 'shun'
}

export interface PieceSchedulerOptions {
  sha256: string
  /** Number of pieces of the blob. */
  count: number
  selfKey: string
  /** See swarmKeysOf: fixed for the blob's download. */
  swarmKeys: readonly string[]
  /** When the whole update started: the patience for other stripes counts from here, not per blob. */
  startedAt: number
  slots: ServerSlots
  /** Source of the client's random piece order (default Math.random; the simulator seeds it). */
  random?: () => number
  /** stripeScore itself by default; the simulator passes a cache of it. */
  score?: StripeScore
  /**
   * The stripe piece `i` belongs to (default: `i`). A format-2 file's runs of chunks pass the 1 MiB
   * piece their first byte is in, so that their stripes are the fixed pieces' of the same file: the
   * ones the download schedule ranks files by (sources.ts swarmSchedule), whatever the run lengths.
   */
  stripeOf?: (i: number) => number
  /**
   * Issue 14 item 4: this client's locality (site) label. With one, a piece held by a peer of the
   * same site is fetched only from such peers; one that no peer of the site holds yet crosses into
   * the site through about one client (importsNow) while the others wait for it to appear in the
   * site. Without one, every peer is alike.
   */
  selfSite?: string | undefined
  /** The keys of this client and of its connected peers of its site (see swarmKeysOf); needed with `selfSite`. */
  siteKeys?: readonly string[]
  /**
   * How many nodes its site has in the swarm (the tracker's count), when it knows: a site larger
   * than the peers this client is connected to. Then the import of a piece is decided by the
   * client's own rendezvous score against the site's size (about one importer per site, whatever
   * each client's view), not by its rank among the peers it happens to see.
   */
  siteSize?: () => number | undefined
  /**
   * Issue 14 item 3: how many clients are in this swarm (the tracker's count: seeders and
   * leechers), when it knows. In a swarm larger than this client's view, striping over the view
   * says nothing of who else asks the servers: every client owns 1/view of the pieces, and each
   * piece goes to the servers about N/view times. Then (in a swarm over SIZED_MIN_SWARM clients
   * and SIZED_VIEWS views) the clients whose rendezvous score for a piece is in the top
   * SEED_FIRST/size of the range ask the servers for it at once, and more only as it stays out of
   * view (seedsNow).
   */
  swarmSize?: () => number | undefined
}

/** The piece choice of one blob's multi-source download. */
export class PieceScheduler<P extends SchedPeer> {
  readonly verified: Uint8Array
  remaining: number
  /** Peers that failed a request for this blob are not asked for it again in this run. */
  readonly shunned = new Set<string>()
  private readonly order: number[]
  private readonly ranks = new Map<number, number>()
  private readonly siteRanks = new Map<number, number>()
  /** Pieces seen held only by peers of other sites, and since when (ms). */
  private readonly farSince = new Map<number, number>()
  /** Pieces seen held by no client peer, and since when (ms): the clock of seedsNow. */
  private readonly unheldSince = new Map<number, number>()
  /** Of all the blob's pieces, the share missing here and held by no connected client peer (as of the last plan). */
  private unheldShare = 1
  private readonly owners = new Map<number, P | undefined>()

  constructor(private readonly o: PieceSchedulerOptions, private readonly io: SchedulerIO<P>) {
    this.verified = new Uint8Array(o.count)
    this.remaining = o.count
    // Each client walks the pieces in its own random order, so concurrent clients fetch different
    // pieces from the servers and then trade them.
    const random = o.random ?? Math.random
    this.order = Array.from({ length: o.count }, (_, i) => i).sort(() => random() - 0.5)
  }

  /** Records piece `i` as verified; false if it already was. */
  markVerified(i: number): boolean {
    if (this.verified[i]) return false
    this.verified[i] = 1
    this.remaining--
    return true
  }

  private stripeOf(i: number): number {
    return this.o.stripeOf ? this.o.stripeOf(i) : i
  }

  rankOf(i: number): number {
    let r = this.ranks.get(i)
    if (r === undefined) this.ranks.set(i, (r = stripeRank(this.o.sha256, this.stripeOf(i), this.o.swarmKeys, this.o.selfKey, this.o.score)))
    return r
  }

  mine(i: number): boolean {
    return this.rankOf(i) === 0
  }

  /** Where this client stands for piece `i` among its site's peers (0: it brings the piece into the site). */
  siteRankOf(i: number): number {
    let r = this.siteRanks.get(i)
    if (r === undefined) this.siteRanks.set(i, (r = stripeRank(this.o.sha256, this.stripeOf(i), this.o.siteKeys ?? [this.o.selfKey], this.o.selfKey, this.o.score)))
    return r
  }

  /** A request's source that is a client peer of another site. */
  private readonly farClient = (s: P | 'server'): boolean => s !== 'server' && !s.server && this.remote(s)

  /** A peer of another site than this client's (never, without a site of its own). */
  remote(p: P): boolean {
    return this.o.selfSite !== undefined && p.site !== this.o.selfSite
  }

  /** The connected client peer whose stripe piece `i` is in (undefined: this client, or not connected). */
  ownerOf(i: number): P | undefined {
    if (!this.owners.has(i)) {
      const key = stripeOwner(this.o.sha256, this.stripeOf(i), this.o.swarmKeys, this.o.score)
      this.owners.set(i, key === this.o.selfKey || key === undefined ? undefined : this.io.peer(key))
    }
    return this.owners.get(i)
  }

  /**
   * The owner of piece `i` is still working through its stripe: it announced a new piece within
   * one patience. Its pieces will come; asking the servers for them now only duplicates.
   */
  ownerBusy(i: number, now: number): boolean {
    const owner = this.ownerOf(i)
    return owner !== undefined && !this.io.closed(owner) && now - owner.lastPieceAt < this.o.slots.patienceMs()
  }

  /**
   * When this client may ask the servers for piece `i` of another stripe: the piece's backups
   * take turns, one patience each, up to MAX_BACKUP_TURNS (peers that are not updating are in
   * the stripes too, and must not delay a piece for long).
   */
  patienceEnds(i?: number): number {
    const slots = this.o.slots
    return Math.max(this.o.startedAt, slots.stripeWantedAt) + slots.patienceMs() * (i === undefined ? 1 : Math.min(MAX_BACKUP_TURNS, Math.max(1, this.rankOf(i))))
  }

  /**
   * When this client may bring piece `i` from another site though another peer of its site is to:
   * one turn per backup rank, counted from when it first saw the piece held only in other sites.
   */
  sitePatienceEnds(i: number, now: number): number {
    // A turn lasts until the importer's copy is late (several piece times), at least one patience.
    const turn = Math.max(this.o.slots.patienceMs(), this.io.lateAfterMs())
    return this.farSinceOf(i, now) + turn * Math.min(MAX_BACKUP_TURNS, Math.max(1, this.siteRankOf(i)))
  }

  /** When this client first saw piece `i` held only in other sites (now, the first time it is asked). */
  private farSinceOf(i: number, now: number): number {
    return firstSeen(this.farSince, i, now)
  }

  /** This client's rendezvous score for piece `i` is in the top `share` of the range (the sized rules). */
  private scoreInTop(i: number, share: number): boolean {
    return (this.o.score ?? stripeScore)(this.o.selfKey, this.o.sha256, this.stripeOf(i)) / SCORE_RANGE >= 1 - share
  }

  /** How many of its site's nodes this client sees: itself and its connected peers of the site. */
  private siteSeen(): number {
    return (this.o.siteKeys ?? [this.o.selfKey]).length
  }

  /**
   * A site larger than two of this client's views of it (largeSwarm): its uploaders' queues are
   * deep, so a piece asked of another site may be overtaken by a copy from this one (plan).
   */
  largeSite(): boolean {
    return largeSwarm(this.o.siteSize?.(), this.siteSeen())
  }

  /**
   * Whether this client brings piece `i` into its site now. In a site no larger than its view: the
   * stripe owner among the site's connected peers at once, each backup one turn later. In a larger
   * site (siteSize): the clients whose score for the piece is in the top 1/size of the range at
   * once — about one per site — and one more expected per SIZED_TURNS patiences waited, so a site
   * whose importer is slow or absent still gets the piece, from few clients at a time.
   */
  importsNow(i: number, now: number): boolean {
    const size = this.o.siteSize?.()
    if (size === undefined || size <= this.siteSeen()) return this.siteRankOf(i) === 0 || now > this.sitePatienceEnds(i, now)
    const expected = 1 + Math.floor((now - this.farSinceOf(i, now)) / (SIZED_TURNS * this.o.slots.patienceMs()))
    return this.scoreInTop(i, expected / size)
  }

  /**
   * How long a piece one client of a swarm of `size` brought from the servers takes to show in this
   * client's view: a patience, then a piece time for each doubling of its holders until about
   * size/view of them hold it.
   */
  seedingTurnMs(size: number): number {
    const hops = Math.max(1, Math.log2(size / this.o.swarmKeys.length))
    return PATIENCE_MS + (hops * this.io.lateAfterMs()) / 3
  }

  /**
   * Whether this client asks the servers for piece `i`, which no client peer in view holds, in a
   * swarm of `size` clients larger than its view: when its score for the piece is in the top
   * SEED_FIRST/size of the range. While many pieces are out of view (the swarm is being seeded)
   * one more seeder is expected per SLOW_TURNS seeding turns; once few are, those few are rare in
   * the whole swarm, and the expected seeders double per turn — so a piece whose seeders left or
   * are slow still comes, while the servers send each piece a few times and the clients trade it.
   */
  seedsNow(i: number, now: number, size: number): boolean {
    const turns = Math.floor((now - firstSeen(this.unheldSince, i, now)) / this.seedingTurnMs(size))
    const expected = this.unheldShare <= RARE_SHARE ? SEED_FIRST * 2 ** turns : SEED_FIRST + Math.floor(turns / SLOW_TURNS)
    return this.scoreInTop(i, expected / size)
  }

  /** A peer that may take one more request now: a free request slot, and not backing off after 'busy'. */
  readyAt(p: P, now: number): boolean {
    return p.inflight < PEER_SLOTS && p.busyUntil <= now
  }

  usable(i: number): P[] {
    return this.io.holders(i).filter((p) => !this.shunned.has(p.key))
  }

  /**
   * One pass of the scheduler: starts what should start now. Returns the number of candidate
   * pieces (missing, not in flight); with none, the end-game has run.
   */
  plan(): number {
    const { io, verified } = this
    const slots = this.o.slots
    // Pieces asked of a client peer are busy. Pieces asked only of the servers, or in a site larger
    // than two views only of peers of other sites, stay candidates for a peer of the site: an
    // uploader's queue may be deep, and once a nearer peer holds the piece, its copy overtakes the
    // far one and the far request is withdrawn before it is sent (issue 14 items 3 and 4). In a
    // smaller site a far request is sent at once, and a second copy would only be a duplicate.
    const busy = new Set<number>()
    const fromServers = new Set<number>()
    const fromFar = new Set<number>()
    const overtake = this.largeSite()
    for (const f of io.inflight()) {
      const set = isServer(f.source) ? fromServers : overtake && this.farClient(f.source) ? fromFar : busy
      set.add(f.piece)
    }
    // Rarest first among the pieces peers hold; the rest go to the server.
    const candidates = this.order
      .filter((i) => !verified[i] && !busy.has(i))
      .map((i) => ({ i, holders: this.usable(i) }))
      .sort((a, b) => (a.holders.length || Infinity) - (b.holders.length || Infinity))
    // In a swarm larger than the view, a few clients of the whole swarm seed each piece (seedsNow).
    const size = this.o.swarmSize?.()
    const sized = largeSwarm(size, this.o.swarmKeys.length)
    if (sized) {
      let unheld = 0
      for (const c of candidates) if (!c.holders.some((p) => !p.server)) unheld++
      this.unheldShare = unheld / this.o.count
    }
    let open = 0
    for (const { i, holders } of candidates) {
      const now = io.now()
      const ready = (p: P): boolean => this.readyAt(p, now)
      const far = fromFar.has(i)
      const asked = fromServers.has(i) || far
      if (!asked) open++
      // Client peers first. The servers' seeds hold every piece, but they are servers: they
      // are asked only under the server rules below, like the server the proxy assigns.
      const clientHolders = holders.filter((p) => !p.server)
      // Issue 14 item 4: peers of this client's site first; a piece that none of them holds comes
      // from another site through about one client of the site (importsNow), the others waiting their turns.
      const local = clientHolders.filter((p) => !this.remote(p))
      const free = local.filter(ready).sort((a, b) => a.inflight - b.inflight)
      if (free.length > 0) {
        io.startPeer(i, free[0]!, false)
        if (far) this.withdrawFrom(i, this.farClient)
        continue
      }
      if (asked) {
        // In a swarm larger than the view, a piece is asked of the servers by a few clients at once
        // (seedsNow), and their requests wait in the servers' queues behind everyone's first copies.
        // Once a client peer holds it, it will come from the swarm: the server requests still queued
        // are withdrawn, so the servers send each piece a few times, not once per waiting request.
        if (sized && clientHolders.length > 0) this.withdrawFrom(i, isServer)
        // Likewise a piece brought from another site once a peer of this site holds it: it waits
        // for that peer's slot, and the WAN does not carry it into the site again (issue 14 item 4).
        if (far && local.length > 0) this.withdrawFrom(i, this.farClient)
        continue // the servers or another site have it in hand
      }
      if (local.length > 0) continue // held by busy peers of the site: wait for a slot rather than load the servers or the WAN
      if (local.length < clientHolders.length) {
        const importer = this.importsNow(i, now)
        const far = importer ? clientHolders.filter(ready).sort((a, b) => a.inflight - b.inflight)[0] : undefined
        if (far) io.startPeer(i, far, false)
        continue
      }
      // Coordination-free striping: of the pieces no client peer holds yet, each client takes
      // from the servers first those of its own stripe among the connected peers, and waits
      // for the others to appear on peers; only once its own stripe has wanted no server for
      // a while (ServerSlots.patienceMs) does it ask the servers for those too.
      const own = sized ? this.seedsNow(i, now, size) : this.mine(i)
      if (own) slots.stripeWantedAt = now
      if (!slots.free || !(own || (!sized && now > this.patienceEnds(i) && !this.ownerBusy(i, now)))) continue
      const seed = holders.filter(ready).sort((a, b) => a.inflight - b.inflight)[0]
      io.beforeServer?.(i)
      // The proxy-assigned server (weighted round-robin), else a server's seed on the swarm.
      if (io.serverAvailable()) io.startServer(i)
      else if (seed) io.startPeer(i, seed, true)
    }
    // End-game: every missing piece is requested; a request that is late (several typical
    // piece times) gets a duplicate from an idle holder. Duplicating every request at once
    // made each small file (one or two pieces) cost its uploaders about twice its size.
    if (open === 0) this.endGame()
    return open
  }

  /** Withdraws the requests of piece `i` in flight to the sources `from` picks (SchedulerIO.withdraw). */
  private withdrawFrom(i: number, from: (s: P | 'server') => boolean): void {
    const withdraw = this.io.withdraw
    if (!withdraw) return
    for (const f of [...this.io.inflight()]) if (f.piece === i && from(f.source)) withdraw(f)
  }

  private endGame(): void {
    const io = this.io
    const lateBefore = io.now() - io.lateAfterMs()
    for (const f of [...io.inflight()]) {
      if (f.asked > lateBefore) continue
      const all = [...io.inflight()]
      if (all.some((g) => g !== f && g.piece === f.piece)) continue // one duplicate at a time
      const dup = this.usable(f.piece).find((p) => !p.server && !this.remote(p) && this.readyAt(p, io.now()) && p !== f.source &&
        !all.some((g) => g.piece === f.piece && g.source === p))
      if (dup) io.startPeer(f.piece, dup, false)
    }
  }

  /**
   * How long to sleep when nothing changes: with requests in flight, until the next one becomes
   * late; with none, until this client's patience for other stripes ends (at most 1 s).
   */
  wakeAfterMs(): number {
    const io = this.io
    let oldest = Infinity
    for (const f of io.inflight()) oldest = Math.min(oldest, f.asked)
    if (oldest !== Infinity) return Math.max(20, Math.min(1000, oldest + io.lateAfterMs() - io.now() + 5))
    return Math.max(50, Math.min(1000, this.patienceEnds() - io.now() + 10))
  }
}
