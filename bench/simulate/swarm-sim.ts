// The swarm simulator (issue 14 item 3): N clients download one release of F bytes from each
// other and from capped repository servers, as a discrete-event simulation on a virtual clock.
// The decisions are the daemon's own: every client runs actors/share-daemon/piece-scheduler.ts
// (PieceScheduler: rarest first, PEER_SLOTS per peer, striping with stripeOwner/stripeRank over
// swarmKeysOf, patience and the backups' turns, the busy owner, the end-game, failureAction),
// with the daemon's ServerSlots (SERVER_SLOTS) and PieceTimes. What is modelled instead of run:
// the links, the uploaders' token buckets and 'busy' answers, the tracker, NAT, churn, bad peers.
//
// The model, in short (docs/benchmarks.md "Swarm simulator" has the why):
// - pieces are counts, never bytes; a piece's content is a token, and "verifying by hash" is
//   comparing the token with the manifest's: a bad peer sends a wrong token of the right length;
// - each uploader (client or server) sends one piece at a time at its upload rate; a client sends
//   first the piece fewest of its peers hold (the daemon's upload turns, lowestRank of
//   infra/swarm/token-bucket.ts) and answers 'busy' when
//   more than DEFAULT_MAX_UPLOAD_BACKLOG_MS of sending is already promised (as PieceSession does);
//   a server queues every request (the NATS range path has no 'busy') and sends the piece it has
//   sent least often first (the repository server's ranked turns);
// - a piece reaches the requester after its upload, its download link (one piece at a time at
//   its download rate) and the one-way latency of both ends; requests pay the latency too;
// - a request a client aborts (the piece came from elsewhere) is withdrawn from the uploader's
//   queue if it is still there, a server's range included (RangeReader.readPiece's ticket and the
//   server's cancel subject, as in the daemon);
// - `have-piece` announcements reach the neighbours at once (no latency), and every change wakes
//   a client's scheduler at most once per `planGapMs` (the daemon's event loop, modelled).
import {
  BUSY_BACKOFF_MS, failureAction, PEER_REQUEST_TIMEOUT_MS, PieceScheduler, runLength, PieceTimes, SERVER_SLOTS, ServerSlots, stripeScore, swarmKeysOf, type SchedPeer, type SchedRequest,
} from '../../actors/share-daemon/piece-scheduler.ts'
import { agedRank, lowestRank } from '../../infra/swarm/token-bucket.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import { EventHeap, type Timed } from './heap.ts'

export const MiB = 1024 * 1024

/** infra/tracker/registry.ts SAME_SITE_SHARE (not imported: it loads the NATS client; a test checks they agree). */
export const SAME_SITE_SHARE = 0.75

export interface SimOptions {
  /** Clients (bad peers included). */
  n: number
  seed: number
  /** Release size F, bytes. */
  fileBytes: number
  /**
   * Piece size, bytes; 0: the daemon's run of a format-2 file's chunks for a swarm of n seen
   * through numwant peers (piece-scheduler.ts runLength: 1 MiB, or LARGE_SWARM_RUN in a large swarm).
   */
  pieceSize: number
  servers: number
  /** Upload cap of each server, bytes/s. */
  serverUp: number
  /** Client upload rates, bytes/s: each client draws one of these at random (heterogeneous). */
  clientUp: number[]
  /** Client download rates, bytes/s, drawn the same way. */
  clientDown: number[]
  /** One-way latency of a client's link, ms: drawn uniformly in [min, max]. */
  latencyMs: [number, number]
  serverLatencyMs: number
  /** Share of clients that leave before the end, and (as many again) that join late. */
  churn: number
  /** Share of clients behind NAT: they dial out, but cannot be dialled. */
  nat: number
  /** Share of clients that send garbage for every piece they are asked for. */
  bad: number
  /** Peers the tracker hands a joining client. */
  numwant: number
  /** Connections a client keeps at most (hyperswarm maxPeers). */
  maxConnections: number
  /** A client announces to the tracker this often and dials new peers when it has fewer than numwant (the daemon's DEFAULT_ANNOUNCE_MS). */
  announceMs: number
  /** Clients present at the start join within this many ms. */
  startSpreadMs: number
  /** From joining (connecting) to starting the download (the daemon waits for its peers' `have`). */
  startDelayMs: number
  /** A client's scheduler runs at most once per this many ms of virtual time. */
  planGapMs: number
  /** Uploader backlog beyond which a client answers 'busy' (PieceSession's default). */
  maxUploadBacklogMs: number
  /** Stop after this much virtual time (a safety net: a run that does not finish reports it). */
  maxVirtualMs: number
  /** Sites the clients are spread over, round robin (issue 14 item 4); 1: one site. */
  sites: number
  /** Extra one-way latency between two sites (the WAN), ms. */
  wanLatencyMs: number
  /** Clients tell their site and prefer its peers (the scheduler's selfSite); false: the same sites, every peer alike. */
  locality: boolean
  /** Clients know how many are updating (the scheduler's swarmSize, the tracker's count); false: striping over each view alone. */
  sizedSeeding: boolean
}

export const SIM_DEFAULTS: Omit<SimOptions, 'n'> = {
  seed: 1,
  fileBytes: 32 * MiB,
  pieceSize: 0,
  servers: 3,
  serverUp: 2 * MiB,
  // Mean 2 MiB/s, as the swarm bench's clients; from a quarter to twice that.
  clientUp: [0.5 * MiB, 1 * MiB, 2.5 * MiB, 4 * MiB],
  clientDown: [8 * MiB, 16 * MiB, 32 * MiB],
  latencyMs: [2, 40],
  serverLatencyMs: 2,
  churn: 0.1,
  nat: 0.2,
  bad: 0.01,
  numwant: 50,
  // infra/swarm/transport.ts DEFAULT_MAX_CONNECTIONS (not imported: it loads hyperswarm; a test checks they agree).
  maxConnections: 64,
  announceMs: 5_000,
  startSpreadMs: 1_000,
  startDelayMs: 100,
  // 20 and 100 ms give results within 5–10% of 50 at N = 300 (docs/benchmarks.md); 50 costs 40% less CPU than 20.
  planGapMs: 50,
  maxUploadBacklogMs: 2_000,
  maxVirtualMs: 3_600_000,
  sites: 1,
  wanLatencyMs: 20,
  locality: true,
  sizedSeeding: true,
}

/** mulberry32: a small seeded PRNG, so that a run is reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Uploader = Client | Server

interface Server {
  kind: 'server'
  id: number
  up: number
  latMs: number
  queue: Req[]
  active: Req | undefined
  queuedBytes: number
  bytesUp: number
  /** Copies of each piece it has started sending (its queue's order). */
  copies: number[]
}

/** A client's view of one connected peer: what the scheduler sees (SchedPeer). */
interface Link extends SchedPeer {
  owner: Client
  remote: Client
  closed: boolean
}

interface Req extends SchedRequest<Link> {
  id: number
  client: Client
  uploader: Uploader
  link: Link | undefined
  asServer: boolean
  bytes: number
  /** Withdrawn by the requester (aborted) before the uploader started it. */
  cancelled: boolean
  /** The requester no longer waits for it (aborted, or failed). */
  settled: boolean
  /** When it reached the uploader's queue (virtual ms). */
  arrived: number
}

interface Client {
  kind: 'client'
  id: number
  key: string
  /** Its site (issue 14 item 4): a number here, its label on the wire. */
  site: number
  up: number
  down: number
  latMs: number
  nat: boolean
  bad: boolean
  joinAt: number
  leaveAt: number
  state: 'idle' | 'connected' | 'downloading' | 'done' | 'gone'
  startedAt: number
  finishedAt: number
  links: Map<number, Link>
  banned: Set<number>
  have: Uint8Array
  /** Per piece: links of peers that announced it (filtered for closed links when read). */
  holderLists: Link[][]
  sched: PieceScheduler<Link> | undefined
  slots: ServerSlots
  times: PieceTimes
  inflight: Set<Req>
  // uploader side
  queue: Req[]
  active: Req | undefined
  queuedBytes: number
  bytesUp: number
  downFreeAt: number
  // scheduling of its planner
  planAt: number
  lastPlan: number
  // accounting
  fromServers: number
  fromPeers: number
  badPieces: number
}

type Ev =
  | (Timed & { k: 'join'; c: Client })
  | (Timed & { k: 'start'; c: Client })
  | (Timed & { k: 'leave'; c: Client })
  | (Timed & { k: 'announce'; c: Client })
  | (Timed & { k: 'plan'; c: Client })
  | (Timed & { k: 'arrive'; r: Req })
  | (Timed & { k: 'sent'; u: Uploader; r: Req })
  | (Timed & { k: 'deliver'; r: Req })
  | (Timed & { k: 'busy'; r: Req })
  | (Timed & { k: 'timeout'; r: Req })
  | (Timed & { k: 'cancel'; r: Req })

/** An event before the heap numbers it. */
type Unseq<E> = E extends unknown ? Omit<E, 'seq'> : never

export interface SimResult {
  n: number
  seed: number
  /** The piece size the run used, bytes. */
  pieceSize: number
  /** Clients that had to finish: present at the end, not bad. */
  finishers: number
  finished: number
  departed: number
  lateJoiners: number
  natClients: number
  badClients: number
  /** Per-client time from its download start to done, ms, sorted. */
  finishMs: number[]
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** From the first download start to the last client done, ms. */
  allDoneMs: number
  boundMs: number
  /** Bytes the servers uploaded by the time the last client was done, and bytes still queued at them then. */
  originBytes: number
  originQueuedBytes: number
  /** Bytes uploaded (by peers and servers) that the receiver did not keep: already verified, aborted, or gone. */
  duplicateBytes: number
  /** Garbage bytes the bad peers sent. */
  garbageBytes: number
  badPiecesReceived: number
  badPiecesAccepted: number
  bannedLinks: number
  peerBytes: number
  serverBytes: number
  /** Peer requests answered 'busy'. */
  busyAnswers: number
  /** Bytes a client uploaded to a client of another site (the WAN links'; duplicates included), issue 14 item 4. */
  crossSiteBytes: number
  sites: number
  /** Server requests by the rule that let them go: a piece of the client's own stripe, or of another after the patience. */
  serverRequests: { ownStripe: number; otherStripes: number; withdrawn: number }
  /** Requests to peers of another site withdrawn once a peer of the client's site held the piece. */
  farWithdrawn: number
  /** Peer requests that timed out (the daemon's PEER_REQUEST_TIMEOUT_MS), each shunning its peer for the blob. */
  timeouts: number
  /** Requests that failed because the peer left or was banned. */
  closedFailures: number
  events: number
  plans: number
  virtualMs: number
  wallMs: number
  eventsPerSecond: number
  /** The last client to finish: who it was (a straggler's story). */
  slowest: { ms: number; startedAtMs: number; nat: boolean; lateJoiner: boolean; links: number; piecesFromServers: number } | undefined
  /** Runs that hit maxVirtualMs say so. */
  truncated: boolean
}

/**
 * Kumar & Ross (2006) lower bound on the time for every client to hold F:
 * max(F/u_s, F/d_min, N·F/(u_s + Σu_i)), over the clients that download (bad peers excluded).
 */
export function kumarRossBoundMs(fileBytes: number, serverUpTotal: number, ups: number[], downs: number[]): number {
  const sumUp = ups.reduce((s, u) => s + u, 0)
  const dMin = Math.min(...downs)
  return 1000 * Math.max(fileBytes / serverUpTotal, fileBytes / dMin, (ups.length * fileBytes) / (serverUpTotal + sumUp))
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const BLOB = 'f'.repeat(64)

/** What a run reports every `everyMs` of virtual time while it goes. */
export interface SimProgress {
  virtualMs: number
  finished: number
  downloading: number
  originBytes: number
  originQueuedBytes: number
  events: number
}

export function simulate(options: Partial<SimOptions> & { n: number }, onProgress?: { everyMs: number; report: (p: SimProgress) => void }): SimResult {
  const o: SimOptions = { ...SIM_DEFAULTS, ...options }
  if (!Number.isInteger(o.n) || o.n < 2) throw new Error(`simulate: n must be an integer ≥ 2, got ${o.n}`)
  for (const k of ['fileBytes', 'serverUp', 'servers'] as const) {
    if (!(o[k] > 0)) throw new Error(`simulate: ${k} must be > 0, got ${o[k]}`)
  }
  if (!(o.pieceSize >= 0)) throw new Error(`simulate: pieceSize must be ≥ 0 (0: the daemon's), got ${o.pieceSize}`)
  // Every modelled client cuts the same pieces: the run a client with a full view (numwant peers) cuts.
  const pieceSize = o.pieceSize > 0 ? o.pieceSize : runLength(o.n, o.numwant + 1, PIECE_SIZE)
  if (!Number.isInteger(o.sites) || o.sites < 1) throw new Error(`simulate: sites must be an integer ≥ 1, got ${o.sites}`)
  for (const k of ['churn', 'nat', 'bad'] as const) {
    if (!(o[k] >= 0 && o[k] < 1)) throw new Error(`simulate: ${k} must be a share in [0, 1), got ${o[k]}`)
  }
  const wall0 = performance.now()
  const rnd = seededRandom(o.seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
  const pieces = Math.max(1, Math.ceil(o.fileBytes / pieceSize))
  const lengthOf = (i: number): number => Math.min(pieceSize, o.fileBytes - i * pieceSize)
  /** One-way latency between a client and an uploader beyond their own links': the WAN's, across sites. */
  const wan = (c: Client, u: Uploader): number => (u.kind === 'client' && u.site !== c.site ? o.wanLatencyMs : 0)
  let crossSiteBytes = 0
  const heap = new EventHeap<Ev>()
  let now = 0
  let events = 0
  let plans = 0
  let reqSeq = 0
  const push = (e: Unseq<Ev>): void => heap.push(e as Ev)

  const servers: Server[] = Array.from({ length: o.servers }, (_, id) => ({
    kind: 'server', id, up: o.serverUp, latMs: o.serverLatencyMs, queue: [], active: undefined, queuedBytes: 0, bytesUp: 0, copies: [],
  }))
  let nextServer = 0
  // The daemon's stripeScore, computed once per (client key, piece): every neighbour of a client
  // ranks it for the same pieces (without the cache, hashing was 40% of a run's start at N = 3 000).
  const scores = new Map<string, number>()
  const score = (key: string, sha256: string, index: number): number => {
    const k = `${key}:${index}`
    let v = scores.get(k)
    if (v === undefined) scores.set(k, (v = stripeScore(key, sha256, index)))
    return v
  }

  const hex = (): string => {
    let s = ''
    for (let j = 0; j < 8; j++) s += Math.floor(rnd() * 2 ** 32).toString(16).padStart(8, '0')
    return s
  }
  const clients: Client[] = []
  for (let id = 0; id < o.n; id++) {
    clients.push({
      kind: 'client', id, key: hex(), site: id % o.sites, up: pick(o.clientUp), down: pick(o.clientDown),
      latMs: o.latencyMs[0] + rnd() * (o.latencyMs[1] - o.latencyMs[0]),
      nat: false, bad: false, joinAt: rnd() * o.startSpreadMs, leaveAt: Infinity, state: 'idle', startedAt: NaN, finishedAt: NaN,
      links: new Map(), banned: new Set(), have: new Uint8Array(pieces), holderLists: Array.from({ length: pieces }, () => []),
      sched: undefined, slots: new ServerSlots(SERVER_SLOTS), times: new PieceTimes(), inflight: new Set(),
      queue: [], active: undefined, queuedBytes: 0, bytesUp: 0, downFreeAt: 0, planAt: Infinity, lastPlan: -Infinity,
      fromServers: 0, fromPeers: 0, badPieces: 0,
    })
  }
  // Roles drawn over a shuffled order, so that they are disjoint and the counts exact.
  const order = clients.map((c) => c.id).sort(() => rnd() - 0.5)
  const take = (share: number): Client[] => order.splice(0, Math.round(share * o.n)).map((id) => clients[id]!)
  const badOnes = take(o.bad)
  const leavers = take(o.churn)
  const joiners = take(o.churn)
  for (const c of badOnes) {
    c.bad = true
    c.have.fill(1)
  }
  for (const c of clients) c.nat = !c.bad && rnd() < o.nat
  const honest = clients.filter((c) => !c.bad)
  const boundMs = kumarRossBoundMs(o.fileBytes, o.servers * o.serverUp, honest.map((c) => c.up), honest.map((c) => c.down))
  for (const c of leavers) c.leaveAt = (0.1 + 0.8 * rnd()) * boundMs
  for (const c of joiners) c.joinAt = rnd() * boundMs
  for (const c of clients) {
    push({ t: c.joinAt, k: 'join', c })
    if (c.leaveAt !== Infinity) push({ t: c.leaveAt, k: 'leave', c })
  }

  // The tracker: clients present, for random picks.
  const present: Client[] = []
  const presentAt = new Map<Client, number>()
  /** The same, per site. */
  const bySite: Client[][] = Array.from({ length: o.sites }, () => [])
  const siteAt = new Map<Client, number>()
  const trackerAdd = (c: Client): void => {
    presentAt.set(c, present.length)
    present.push(c)
    siteAt.set(c, bySite[c.site]!.length)
    bySite[c.site]!.push(c)
  }
  const dropFrom = (list: Client[], index: Map<Client, number>, c: Client): void => {
    const at = index.get(c)
    if (at === undefined) return
    const last = list.pop()!
    if (last !== c) {
      list[at] = last
      index.set(last, at)
    }
    index.delete(c)
  }
  const trackerRemove = (c: Client): void => {
    dropFrom(present, presentAt, c)
    dropFrom(bySite[c.site]!, siteAt, c)
  }
  const sitePick = (site: number): Client | undefined => {
    const list = bySite[site]!
    return list.length === 0 ? undefined : list[Math.floor(rnd() * list.length)]
  }

  let duplicateBytes = 0
  let garbageBytes = 0
  let badPiecesReceived = 0
  let badPiecesAccepted = 0
  let bannedLinks = 0
  let busyAnswers = 0
  /** Server requests withdrawn once a client peer held the piece (PieceScheduler.plan). */
  let withdrawn = 0
  let withdrawnFar = 0
  /** Peer requests that timed out (PEER_REQUEST_TIMEOUT_MS): the peer is shunned for the blob. */
  let timeouts = 0
  let serverOwn = 0
  let serverOther = 0
  let closedFailures = 0
  let finished = 0
  /** Honest clients not yet downloading, and downloading: the run ends when both are 0. */
  let notStarted = o.n - badOnes.length
  let downloading = 0
  let lastDone = 0
  let firstStart = Infinity

  const wantsPlan = (c: Client): boolean => c.state === 'downloading'
  /** Something changed for `c` (the daemon's PeerSet 'changed', or a request settled): run its scheduler soon. */
  const wake = (c: Client, at = now): void => {
    if (!wantsPlan(c)) return
    const t = Math.max(at, c.lastPlan + o.planGapMs)
    if (t >= c.planAt) return
    c.planAt = t
    push({ t, k: 'plan', c })
  }

  const addLink = (a: Client, b: Client): void => {
    const ab: Link = { key: b.key, server: false, inflight: 0, busyUntil: 0, lastPieceAt: 0, site: `s${b.site}`, owner: a, remote: b, closed: false }
    const ba: Link = { key: a.key, server: false, inflight: 0, busyUntil: 0, lastPieceAt: 0, site: `s${a.site}`, owner: b, remote: a, closed: false }
    a.links.set(b.id, ab)
    b.links.set(a.id, ba)
    // The `have` exchange: what each already holds.
    for (let i = 0; i < pieces; i++) {
      if (b.have[i] && !a.have[i]) a.holderLists[i]!.push(ab)
      if (a.have[i] && !b.have[i]) b.holderLists[i]!.push(ba)
    }
    wake(a)
    wake(b)
  }

  const connect = (c: Client): void => {
    const tries = Math.min(o.numwant, present.length)
    // With locality the tracker hands out peers of the client's site first (the daemon's tracker
    // client tells its site: issue 14 item 4): SAME_SITE_SHARE of the draws go to them (half
    // instead took cross-site bytes at N = 1 000 in 8 sites from 3.2 to 5.0 × sites × F).
    const sameSiteFirst = o.locality && o.sites > 1
    const draws = tries * 2
    for (let k = 0; k < draws && k < present.length * 2; k++) {
      if (c.links.size >= o.maxConnections) break
      const t = sameSiteFirst && k < SAME_SITE_SHARE * draws ? sitePick(c.site) : present[Math.floor(rnd() * present.length)]!
      if (!t || t === c || c.links.has(t.id) || t.banned.has(c.id) || c.banned.has(t.id)) continue
      // Behind NAT: the dialled side must accept connections (no hole punching modelled).
      if (t.nat || t.links.size >= o.maxConnections) continue
      addLink(c, t)
      if (c.links.size >= tries) break
    }
  }

  /** The requester gives `r` up: its cancel reaches the uploader, which drops it if still queued. */
  const withdraw = (r: Req): void => {
    r.cancelled = true
    push({ t: now + r.client.latMs + r.uploader.latMs + wan(r.client, r.uploader), k: 'cancel', r })
  }

  const settle = (r: Req): void => {
    if (r.settled) return
    r.settled = true
    r.client.inflight.delete(r)
    if (r.link) r.link.inflight--
    if (r.asServer) r.client.slots.inUse--
  }

  /** Close the connection between a and b: requests in flight either way fail ('closed'). */
  const disconnect = (a: Client, b: Client): void => {
    const ab = a.links.get(b.id)
    const ba = b.links.get(a.id)
    if (ab) ab.closed = true
    if (ba) ba.closed = true
    a.links.delete(b.id)
    b.links.delete(a.id)
    for (const [down, up] of [[a, b], [b, a]] as const) {
      for (const r of [...down.inflight]) {
        if (r.uploader !== up) continue
        r.cancelled = true
        if (up.queue.includes(r)) {
          up.queue.splice(up.queue.indexOf(r), 1)
          up.queuedBytes -= r.bytes
        }
        failed(r, 'closed')
      }
    }
  }

  const failed = (r: Req, why: string): void => {
    if (r.settled) return
    const c = r.client
    const action = failureAction(why)
    settle(r)
    if (action === 'back-off' && r.link) {
      busyAnswers++
      r.link.busyUntil = now + BUSY_BACKOFF_MS
      wake(c, now + BUSY_BACKOFF_MS)
    } else if (action === 'shun' && r.link) {
      closedFailures++
      c.sched?.shunned.add(r.link.key)
    }
    wake(c)
  }

  const startUpload = (u: Uploader): void => {
    // The upload turns of the daemon's TokenBucket: a server sends the piece it has sent least
    // often first (the repository server's takeInTurn rank), a client the piece fewest of its
    // peers hold (PeerSet.holderCount, the PieceSession's uploadRank, aged by agedRank); the
    // earliest among equals.
    const rank = u.kind === 'server'
      ? (q: Req): number => u.copies[q.piece] ?? 0
      : (q: Req): number => {
        if (q.cancelled) return -1
        let holders = 0
        for (const l of u.links.values()) if (l.remote.have[q.piece]) holders++
        return agedRank(now - q.arrived, holders)
      }
    while (!u.active && u.queue.length > 0) {
      const at = lowestRank(u.queue, rank)
      const r = u.queue.splice(at, 1)[0]!
      if (r.cancelled) {
        u.queuedBytes -= r.bytes
        continue
      }
      u.active = r
      if (u.kind === 'server') u.copies[r.piece] = (u.copies[r.piece] ?? 0) + 1
      push({ t: now + (1000 * r.bytes) / u.up, k: 'sent', u, r })
    }
  }

  const request = (c: Client, i: number, uploader: Uploader, link: Link | undefined, asServer: boolean): void => {
    const r: Req = {
      id: reqSeq++, piece: i, source: link ?? 'server', asked: now, client: c, uploader, link, asServer, bytes: lengthOf(i), cancelled: false, settled: false, arrived: Infinity,
    }
    c.inflight.add(r)
    if (link) link.inflight++
    if (asServer) c.slots.inUse++
    push({ t: now + c.latMs + uploader.latMs + wan(c, uploader), k: 'arrive', r })
    // A peer request not answered in PEER_REQUEST_TIMEOUT_MS fails (the session cancels it at the uploader).
    if (link) push({ t: now + PEER_REQUEST_TIMEOUT_MS, k: 'timeout', r })
  }

  /** The manifest's piece hash, modelled: a token per piece. */
  const tokenOf = (i: number): number => (i * 2654435761 + 97) >>> 0
  /** What an uploader sends for piece `i`: the piece, or (a bad peer) garbage of the same length. */
  const payloadOf = (u: Uploader, i: number): number => (u.kind === 'client' && u.bad ? ~tokenOf(i) >>> 0 : tokenOf(i))

  const accept = (c: Client, r: Req): void => {
    const i = r.piece
    // The hash check (multi-source.ts accept): a bad peer's piece has the right length and the
    // wrong contents; its sender is banned (PeerSet.ban closes the connection).
    if (payloadOf(r.uploader, i) !== tokenOf(i)) {
      badPiecesReceived++
      c.badPieces++
      bannedLinks++
      c.banned.add((r.uploader as Client).id)
      disconnect(c, r.uploader as Client)
      return
    }
    if (!c.sched!.markVerified(i)) {
      duplicateBytes += r.bytes
      return
    }
    c.have[i] = 1
    c.holderLists[i] = []
    if (r.uploader.kind === 'server') c.fromServers += r.bytes
    else c.fromPeers += r.bytes
    // Counted apart from the check above: a piece installed from a bad peer.
    if (r.uploader.kind === 'client' && r.uploader.bad) badPiecesAccepted++
    // Announce to every connected peer (have-piece).
    for (const l of c.links.values()) {
      const peer = l.remote
      const back = peer.links.get(c.id)
      if (!back) continue
      back.lastPieceAt = now
      if (!peer.have[i]) {
        peer.holderLists[i]!.push(back)
        wake(peer)
      }
    }
    // The other requests for this piece are aborted, server ranges too: each is withdrawn from its
    // uploader's queue when the cancel arrives, if it is still waiting there.
    for (const f of [...c.inflight]) {
      if (f === r || f.piece !== i) continue
      settle(f)
      withdraw(f)
    }
    if (c.sched!.remaining === 0) {
      c.state = 'done'
      downloading--
      c.finishedAt = now
      if (c.leaveAt === Infinity) {
        finished++
        lastDone = Math.max(lastDone, now)
      }
    }
  }

  const startDownload = (c: Client): void => {
    c.state = 'downloading'
    notStarted--
    downloading++
    c.startedAt = now
    firstStart = Math.min(firstStart, now)
    const linkOf = new Map<string, Link>()
    for (const l of c.links.values()) linkOf.set(l.key, l)
    const linked = { all: () => [...c.links.values()] }
    // The site's size is the tracker's count of its present clients (the daemon's tracker answer says it).
    const site = o.locality && o.sites > 1 ? { selfSite: `s${c.site}`, siteKeys: swarmKeysOf(c.key, linked, `s${c.site}`), siteSize: () => bySite[c.site]!.length } : {}
    c.sched = new PieceScheduler<Link>({
      sha256: BLOB, count: pieces, selfKey: c.key, swarmKeys: swarmKeysOf(c.key, linked), startedAt: now, slots: c.slots, random: rnd, score, ...site,
      // The tracker's count of the swarm: every client present (the daemon's answer counts seeders and leechers).
      ...(o.sizedSeeding ? { swarmSize: () => present.length } : {}),
    }, {
      now: () => now,
      holders: (i) => {
        const list = c.holderLists[i]!
        let open = 0
        for (const l of list) if (!l.closed) open++
        if (open === list.length) return list
        const kept = list.filter((l) => !l.closed)
        c.holderLists[i] = kept
        return kept
      },
      peer: (key) => linkOf.get(key),
      closed: (l) => l.closed,
      inflight: () => c.inflight,
      lateAfterMs: () => c.times.lateAfterMs(),
      serverAvailable: () => true,
      startPeer: (i, l, asServer) => request(c, i, l.remote, l, asServer),
      startServer: (i) => request(c, i, servers[nextServer++ % servers.length]!, undefined, true),
      withdraw: (f) => {
        // The daemon aborts the request; the uploader drops it if it has not started sending it.
        const r = f as Req
        settle(r)
        withdraw(r)
        if (r.uploader.kind === 'server') withdrawn++
        else withdrawnFar++
      },
      beforeServer: (i) => {
        if (c.sched!.mine(i)) serverOwn++
        else serverOther++
      },
    })
    wake(c)
  }

  const handle = (e: Ev): void => {
    switch (e.k) {
      case 'join': {
        const c = e.c
        if (c.state === 'gone') return
        c.state = 'connected'
        connect(c)
        trackerAdd(c)
        if (!c.bad) push({ t: now + o.startDelayMs, k: 'start', c })
        if (!c.bad) push({ t: now + o.announceMs, k: 'announce', c })
        return
      }
      case 'announce': {
        // The periodic announce: a client that lost peers (they left, or were banned) finds others.
        const c = e.c
        if (c.state !== 'connected' && c.state !== 'downloading') return
        if (c.links.size < o.numwant) connect(c)
        push({ t: now + o.announceMs, k: 'announce', c })
        return
      }
      case 'start':
        if (e.c.state === 'connected') startDownload(e.c)
        return
      case 'leave': {
        const c = e.c
        if (c.state === 'downloading') downloading--
        else if (c.state === 'idle' || c.state === 'connected') notStarted--
        c.state = 'gone'
        trackerRemove(c)
        for (const id of [...c.links.keys()]) disconnect(c, clients[id]!)
        for (const r of [...c.inflight]) settle(r)
        return
      }
      case 'plan': {
        const c = e.c
        if (e.t !== c.planAt) return // superseded by an earlier wake
        c.planAt = Infinity
        if (c.state !== 'downloading') return
        c.lastPlan = now
        plans++
        c.sched!.plan()
        if (c.sched!.remaining > 0) wake(c, now + c.sched!.wakeAfterMs())
        return
      }
      case 'arrive': {
        const r = e.r
        const u = r.uploader
        if (r.cancelled || r.settled) return
        if (u.kind === 'client') {
          if (u.state === 'gone' || !r.link || r.link.closed) return failed(r, 'closed')
          const backlogMs = (1000 * u.queuedBytes) / u.up
          if (backlogMs > o.maxUploadBacklogMs) {
            push({ t: now + u.latMs + r.client.latMs + wan(r.client, u), k: 'busy', r })
            return
          }
        }
        r.arrived = now
        u.queue.push(r)
        u.queuedBytes += r.bytes
        startUpload(u)
        return
      }
      case 'sent': {
        const { u, r } = e
        if (u.kind === 'client' && u.state === 'gone') return // left while sending: nothing arrives
        u.active = undefined
        u.queuedBytes -= r.bytes
        u.bytesUp += r.bytes
        if (payloadOf(u, r.piece) !== tokenOf(r.piece)) garbageBytes += r.bytes
        const c = r.client
        if (u.kind === 'client' && u.site !== c.site) crossSiteBytes += r.bytes
        if (r.cancelled || c.state === 'gone') {
          if (!(u.kind === 'client' && u.bad)) duplicateBytes += r.bytes
        } else {
          const arrive = Math.max(now, c.downFreeAt + (1000 * r.bytes) / c.down)
          c.downFreeAt = arrive
          push({ t: arrive + u.latMs + c.latMs + wan(c, u), k: 'deliver', r })
        }
        startUpload(u)
        return
      }
      case 'deliver': {
        const r = e.r
        const c = r.client
        if (c.state === 'gone') {
          duplicateBytes += r.bytes
          return
        }
        if (r.settled) {
          // Aborted while on the wire: the bytes arrived for nothing.
          duplicateBytes += r.bytes
          return
        }
        if (r.asServer || r.uploader.kind === 'server') c.slots.served(now - r.asked)
        else c.times.served(now - r.asked)
        settle(r)
        if (c.state === 'downloading') accept(c, r)
        else duplicateBytes += r.bytes
        wake(c)
        return
      }
      case 'busy':
        return failed(e.r, 'busy')
      case 'timeout': {
        const r = e.r
        if (r.settled) return
        withdraw(r)
        timeouts++
        return failed(r, 'timeout')
      }
      case 'cancel': {
        const r = e.r
        const u = r.uploader
        const at = u.queue.indexOf(r)
        if (at >= 0) {
          u.queue.splice(at, 1)
          u.queuedBytes -= r.bytes
        }
        return
      }
    }
  }

  let truncated = false
  let nextReport = onProgress ? onProgress.everyMs : Infinity
  for (;;) {
    const e = heap.pop()
    if (!e) break
    if (e.t > o.maxVirtualMs) {
      truncated = true
      break
    }
    if (e.t >= nextReport) {
      nextReport += onProgress!.everyMs
      onProgress!.report({
        virtualMs: e.t, finished, downloading, events,
        originBytes: servers.reduce((a, v) => a + v.bytesUp, 0), originQueuedBytes: servers.reduce((a, v) => a + v.queuedBytes, 0),
      })
    }
    now = e.t
    events++
    handle(e)
    if (downloading === 0 && notStarted === 0) break
  }

  const finishers = clients.filter((c) => !c.bad && c.leaveAt === Infinity)
  const finishMs = finishers.filter((c) => c.state === 'done').map((c) => c.finishedAt - c.startedAt).sort((a, b) => a - b)
  const originBytes = servers.reduce((s, v) => s + v.bytesUp, 0)
  const done = finishers.filter((c) => c.state === 'done')
  const last = done.reduce<Client | undefined>((a, c) => (!a || c.finishedAt - c.startedAt > a.finishedAt - a.startedAt ? c : a), undefined)
  const joinerSet = new Set(joiners)
  const originQueuedBytes = servers.reduce((s, v) => s + v.queuedBytes, 0)
  const wallMs = performance.now() - wall0
  return {
    n: o.n,
    pieceSize,
    seed: o.seed,
    finishers: finishers.length,
    finished: finishMs.length,
    departed: leavers.length,
    lateJoiners: joiners.length,
    natClients: clients.filter((c) => c.nat).length,
    badClients: badOnes.length,
    finishMs,
    p50Ms: percentile(finishMs, 50),
    p99Ms: percentile(finishMs, 99),
    maxMs: finishMs[finishMs.length - 1] ?? NaN,
    allDoneMs: lastDone - firstStart,
    boundMs,
    originBytes,
    originQueuedBytes,
    duplicateBytes,
    garbageBytes,
    badPiecesReceived,
    badPiecesAccepted,
    bannedLinks,
    peerBytes: clients.reduce((s, c) => s + c.fromPeers, 0),
    serverBytes: clients.reduce((s, c) => s + c.fromServers, 0),
    busyAnswers,
    crossSiteBytes,
    sites: o.sites,
    serverRequests: { ownStripe: serverOwn, otherStripes: serverOther, withdrawn },
    farWithdrawn: withdrawnFar,
    timeouts,
    closedFailures,
    events,
    plans,
    virtualMs: now,
    wallMs,
    eventsPerSecond: events / (wallMs / 1000),
    slowest: last && {
      ms: last.finishedAt - last.startedAt, startedAtMs: last.startedAt, nat: last.nat, lateJoiner: joinerSet.has(last),
      links: last.links.size, piecesFromServers: Math.round(last.fromServers / pieceSize),
    },
    truncated,
  }
}
