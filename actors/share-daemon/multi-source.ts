// R-ACCEL-2 / R-ACCEL-3 / R-VERIFY: the multi-source download of one blob. Its pieces are
// fetched at once from the peers that hold them (rarest first, a few requests per peer) and,
// for pieces no peer has, from the server the proxy assigns. Every piece is checked against the
// signed manifest's piece hash as it arrives; a peer that sends a bad piece is banned for the
// run, a stalled one abandoned; servers are the fallback. Verified pieces are announced to every
// peer at once and can be served from the partial file before the blob is complete.
import { open, rm, type FileHandle } from 'node:fs/promises'
import { UpswarmError, isUpswarmError } from '../../infra/errors.ts'
import type { RangeReader } from '../../infra/repo-client.ts'
import { pieceHashOf } from '../../infra/repo-client.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import { pieceFailure } from '../../infra/swarm/piece-protocol.ts'
import { movingAverage, type PeerEntry, type PeerSet } from './peers.ts'

export const PEER_SLOTS = 4
/**
 * How long (at least) a piece outside this client's stripe waits for a peer before the servers
 * are asked, counted from the later of the update's start and the last time this client still
 * wanted a server for a piece of its own stripe: while a client works through its stripe, the
 * others are working through theirs. See ServerSlots.patienceMs.
 */
export const PATIENCE_MS = 500
const PEER_REQUEST_TIMEOUT_MS = 8_000
/** Turns of patience the backups of a late piece take before the rest may ask the servers too. */
const MAX_BACKUP_TURNS = 4
/** A peer that answered 'busy' (upload saturated) is asked again after this long. */
const BUSY_BACKOFF_MS = 250
/** How long to wait for a peer to announce a piece that no server can send. */
const NO_SOURCE_TIMEOUT_MS = 60_000

export type ServerReason = 'no-peer-had-piece' | 'peer-failed' | 'bad-piece-from-peer'

export interface BlobFetchStats {
  bytesFromServers: number
  bytesFromPeers: number
  piecesFromServers: number
  piecesFromPeers: number
  badPieces: number
  /** Why server pieces were taken (R-ACCEL-2: the download never falls back silently). */
  serverReasons: Record<ServerReason, number>
}

export function emptyStats(): BlobFetchStats {
  return {
    bytesFromServers: 0, bytesFromPeers: 0, piecesFromServers: 0, piecesFromPeers: 0, badPieces: 0,
    serverReasons: { 'no-peer-had-piece': 0, 'peer-failed': 0, 'bad-piece-from-peer': 0 },
  }
}

export function addStats(into: BlobFetchStats, s: BlobFetchStats): void {
  into.bytesFromServers += s.bytesFromServers
  into.bytesFromPeers += s.bytesFromPeers
  into.piecesFromServers += s.piecesFromServers
  into.piecesFromPeers += s.piecesFromPeers
  into.badPieces += s.badPieces
  for (const k of Object.keys(s.serverReasons) as ServerReason[]) into.serverReasons[k] += s.serverReasons[k]
}

/** A blob being downloaded: verified pieces can already be served to others (R-ACCEL-3). */
export interface PartialBlob {
  sha256: string
  pieceSize: number
  size: number
  file: string
  verified: Uint8Array
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
function stripeScore(key: string, sha256: string, index: number): number {
  return parseInt(sha256Hex(`${key}:${sha256}:${index}`).slice(0, 12), 16)
}

const outranks = (a: { key: string; score: number }, b: { key: string; score: number }): boolean =>
  a.score > b.score || (a.score === b.score && a.key > b.key)

/**
 * Coordination-free striping: the client, among `keys` (this client and the client peers it is
 * connected to), whose stripe piece `index` of blob `sha256` is in. Rendezvous hashing (the key
 * with the highest hash of key and piece wins), so that two clients that see different peers
 * still agree on every piece whose owner both see (a modulo over the key list would reassign
 * almost every piece when one view lacks one peer).
 */
export function stripeOwner(sha256: string, index: number, keys: readonly string[]): string | undefined {
  let best: { key: string; score: number } | undefined
  for (const key of keys) {
    const c = { key, score: stripeScore(key, sha256, index) }
    if (!best || outranks(c, best)) best = c
  }
  return best?.key
}

/**
 * Where `self` stands for piece `index` of blob `sha256` among `keys`: 0 for the owner, 1 for the
 * first backup, and so on (the rendezvous order). A piece whose owner is late goes to the
 * servers through its backups one at a time, not through every waiting client at once.
 */
export function stripeRank(sha256: string, index: number, keys: readonly string[], self: string): number {
  const mine = { key: self, score: stripeScore(self, sha256, index) }
  let rank = 0
  for (const key of keys) if (key !== self && outranks({ key, score: stripeScore(key, sha256, index) }, mine)) rank++
  return rank
}

/** The sorted keys of this client and the client peers it is connected to (servers are not in a stripe). */
export function swarmKeysOf(selfKey: string, peers: PeerSet): string[] {
  return [selfKey, ...peers.all().filter((p) => !p.server).map((p) => p.key)].sort()
}

export interface MultiSourceDeps {
  peers: PeerSet
  /** Server ranges through the proxy; undefined when no NATS connection is available. */
  server: RangeReader | undefined
  serverSlots: ServerSlots
  /** This client's key: with the peers' keys it decides which pieces this client takes from the servers first. */
  selfKey: string
  /** When the whole update started: the patience for other stripes counts from here, not per blob. */
  startedAt: number
  pieceSize: number
  /** Registry of partial blobs that the serve function reads verified pieces from. */
  partials: Map<string, PartialBlob>
  /** A piece was verified: tell every peer. */
  announcePiece: (sha256: string, pieceSize: number, index: number) => void
  log?: (msg: string) => void
}

interface Inflight {
  piece: number
  source: PeerEntry | 'server'
  controller: AbortController
  promise: Promise<void>
  /** When it was asked (ms epoch). */
  asked: number
}

export async function fetchBlobMultiSource(entry: FileEntry, into: BlobStore, deps: MultiSourceDeps, signal?: AbortSignal): Promise<BlobFetchStats> {
  const stats = emptyStats()
  if (await into.has(entry.sha256)) return stats
  const { pieceSize, peers } = deps
  const count = Math.max(1, Math.ceil(entry.size / pieceSize))
  const verified = new Uint8Array(count)
  let remaining = count
  const tmp = await into.stagingPath()
  const fh: FileHandle = await open(tmp, 'w+')
  const partial: PartialBlob = { sha256: entry.sha256, pieceSize, size: entry.size, file: tmp, verified }
  deps.partials.set(entry.sha256, partial)
  const inflight = new Set<Inflight>()
  const pendingServerReason = new Map<number, ServerReason>()
  const swarmKeys = swarmKeysOf(deps.selfKey, peers)
  const ranks = new Map<number, number>()
  const rankOf = (i: number): number => {
    let r = ranks.get(i)
    if (r === undefined) ranks.set(i, (r = stripeRank(entry.sha256, i, swarmKeys, deps.selfKey)))
    return r
  }
  const mine = (i: number): boolean => rankOf(i) === 0
  const owners = new Map<number, PeerEntry | undefined>()
  /** The connected client peer whose stripe piece `i` is in (undefined: this client, or not connected). */
  const ownerOf = (i: number): PeerEntry | undefined => {
    if (!owners.has(i)) {
      const key = stripeOwner(entry.sha256, i, swarmKeys)
      owners.set(i, key === deps.selfKey ? undefined : peers.all().find((p) => p.key === key))
    }
    return owners.get(i)
  }
  /**
   * The owner of piece `i` is still working through its stripe: it announced a new piece within
   * one patience. Its pieces will come; asking the servers for them now only duplicates.
   */
  const ownerBusy = (i: number, now: number): boolean => {
    const owner = ownerOf(i)
    return owner !== undefined && !owner.session.closed && now - owner.lastPieceAt < slots.patienceMs()
  }
  const lengthOf = (i: number): number => Math.min(pieceSize, entry.size - i * pieceSize)
  // Each client walks the pieces in its own random order, so concurrent clients fetch different
  // pieces from the servers and then trade them.
  const order = Array.from({ length: count }, (_, i) => i).sort(() => Math.random() - 0.5)
  const slots = deps.serverSlots
  /**
   * When this client may ask the servers for piece `i` of another stripe: the piece's backups
   * take turns, one patience each, up to MAX_BACKUP_TURNS (peers that are not updating are in
   * the stripes too, and must not delay a piece for long).
   */
  const patienceEnds = (i?: number): number =>
    Math.max(deps.startedAt, slots.stripeWantedAt) + slots.patienceMs() * (i === undefined ? 1 : Math.min(MAX_BACKUP_TURNS, Math.max(1, rankOf(i))))
  /** A peer that may take one more request now: a free request slot, and not backing off after 'busy'. */
  const readyAt = (p: PeerEntry, now: number): boolean => p.inflight < PEER_SLOTS && p.busyUntil <= now
  // Peers that failed a request for this blob are not asked for it again in this run.
  const shunned = new Set<string>()
  const usable = (i: number): PeerEntry[] => peers.holders(entry.sha256, pieceSize, i).filter((p) => !shunned.has(p.key))
  let waitingSince = Date.now()

  const accept = async (i: number, data: Buffer, source: PeerEntry | 'server'): Promise<boolean> => {
    if (verified[i]) return true
    if (data.length !== lengthOf(i) || sha256Hex(data) !== pieceHashOf(entry, i)) return false
    await fh.write(data, 0, data.length, i * pieceSize)
    verified[i] = 1
    remaining--
    if (source === 'server' || source.server) {
      stats.bytesFromServers += data.length
      stats.piecesFromServers++
      stats.serverReasons[pendingServerReason.get(i) ?? 'no-peer-had-piece']++
    } else {
      stats.bytesFromPeers += data.length
      stats.piecesFromPeers++
      source.bytesDown += data.length
    }
    deps.announcePiece(entry.sha256, pieceSize, i)
    for (const f of inflight) if (f.piece === i) f.controller.abort()
    return true
  }

  /** A request to a peer; a server's seed (`asServer`) holds one of this client's server slots. */
  const startPeer = (i: number, peer: PeerEntry, asServer = false): void => {
    const controller = new AbortController()
    peers.take(peer)
    if (asServer) slots.inUse++
    const asked = Date.now()
    const f: Inflight = {
      piece: i, source: peer, controller, asked,
      promise: peer.session.request(entry.sha256, i * pieceSize, lengthOf(i), { signal: controller.signal, timeoutMs: PEER_REQUEST_TIMEOUT_MS })
        .then(async (data) => {
          if (asServer) slots.served(Date.now() - asked)
          else peers.pieceServed(Date.now() - asked)
          if (!(await accept(i, data, peer))) {
            stats.badPieces++
            pendingServerReason.set(i, 'bad-piece-from-peer')
            deps.log?.(`peer ${peer.key.slice(0, 12)} sent a bad piece ${i} of ${entry.path}: banned for this run`)
            peers.ban(peer.key, `bad piece ${i} of blob ${entry.sha256}`)
          }
        }, (err) => {
          const why = pieceFailure(err)
          if (why === 'aborted') return
          // Busy is no fault: the piece goes back to the pool, the peer is asked again shortly.
          if (why === 'busy') return peers.backOff(peer, BUSY_BACKOFF_MS)
          shunned.add(peer.key)
          if (!verified[i]) pendingServerReason.set(i, 'peer-failed')
          if (why === 'stalled' || why === 'timeout') deps.log?.(`peer ${peer.key.slice(0, 12)} ${why} on ${entry.path}; trying elsewhere`)
        })
        .finally(() => {
          if (asServer) slots.inUse--
          inflight.delete(f)
          peers.release(peer)
        }),
    }
    inflight.add(f)
  }

  const startServer = (i: number): void => {
    const controller = new AbortController()
    slots.inUse++
    const asked = Date.now()
    const f: Inflight = {
      piece: i, source: 'server', controller, asked,
      promise: deps.server!.readPiece(entry.sha256, i * pieceSize, lengthOf(i), pieceHashOf(entry, i))
        .then(async (data) => {
          slots.served(Date.now() - asked)
          await accept(i, data, 'server')
        }, (err) => {
          deps.log?.(`servers could not send piece ${i} of ${entry.path}: ${(err as Error).message}`)
          serverFailed = err
        })
        .finally(() => {
          slots.inUse--
          inflight.delete(f)
          peers.emit('changed')
        }),
    }
    inflight.add(f)
  }
  let serverFailed: unknown

  try {
    while (remaining > 0) {
      signal?.throwIfAborted()
      const busy = new Set([...inflight].map((f) => f.piece))
      // Rarest first among the pieces peers hold; the rest go to the server.
      const candidates = order
        .filter((i) => !verified[i] && !busy.has(i))
        .map((i) => ({ i, holders: usable(i) }))
        .sort((a, b) => (a.holders.length || Infinity) - (b.holders.length || Infinity))
      for (const { i, holders } of candidates) {
        const now = Date.now()
        const ready = (p: PeerEntry): boolean => readyAt(p, now)
        // Client peers first. The servers' seeds hold every piece, but they are servers: they
        // are asked only under the server rules below, like the server the proxy assigns.
        const clientHolders = holders.filter((p) => !p.server)
        const free = clientHolders.filter(ready).sort((a, b) => a.inflight - b.inflight)
        if (free.length > 0) {
          startPeer(i, free[0]!)
          continue
        }
        if (clientHolders.length > 0) continue // held by busy peers: wait for a slot rather than load the servers
        // Coordination-free striping: of the pieces no client peer holds yet, each client takes
        // from the servers first those of its own stripe among the connected peers, and waits
        // for the others to appear on peers; only once its own stripe has wanted no server for
        // a while (ServerSlots.patienceMs) does it ask the servers for those too.
        const own = mine(i)
        if (own) slots.stripeWantedAt = now
        if (!slots.free || !(own || (now > patienceEnds(i) && !ownerBusy(i, now)))) continue
        const seed = holders.filter(ready).sort((a, b) => a.inflight - b.inflight)[0]
        if (process.env.UPSWARM_DEBUG) deps.log?.(`server piece ${i} of ${entry.path}: ${peers.size} peers (${peers.all().map((p) => `${p.key.slice(0, 6)}${p.server ? 's' : ''}:${p.session.remote.blobs.size}`).join(' ')})`)
        // The proxy-assigned server (weighted round-robin), else a server's seed on the swarm.
        if (deps.server && serverFailed === undefined) startServer(i)
        else if (seed) startPeer(i, seed, true)
      }
      // End-game: every missing piece is requested; a request that is late (several typical
      // piece times) gets a duplicate from an idle holder. Duplicating every request at once
      // made each small file (one or two pieces) cost its uploaders about twice its size.
      const lateBefore = Date.now() - peers.lateAfterMs()
      if (candidates.length === 0 && inflight.size > 0) {
        for (const f of [...inflight]) {
          if (f.asked > lateBefore) continue
          if ([...inflight].some((g) => g !== f && g.piece === f.piece)) continue // one duplicate at a time
          const dup = usable(f.piece).find((p) => !p.server && readyAt(p, Date.now()) && p !== f.source &&
            ![...inflight].some((g) => g.piece === f.piece && g.source === p))
          if (dup) startPeer(f.piece, dup)
        }
      }
      if (remaining === 0) break
      if (inflight.size > 0) {
        waitingSince = Date.now()
        // Wake for a finished request, a change, or the next request to become late.
        const nextLate = Math.min(...[...inflight].map((f) => f.asked)) + peers.lateAfterMs() - Date.now()
        await Promise.race([...inflight].map((f) => f.promise).concat(peers.nextChange(Math.max(20, Math.min(1000, nextLate + 5)))))
        continue
      }
      // Nothing of this blob in flight: its holders are busy with other blobs, or no source has
      // the missing pieces right now. Wait for a change (a slot freed, a piece announced).
      if (Date.now() - waitingSince > NO_SOURCE_TIMEOUT_MS) {
        throw new UpswarmError('UPSWARM_E_PEER',
          `no peer or server could send ${remaining} piece(s) of ${entry.path} (blob ${entry.sha256}) within ${NO_SOURCE_TIMEOUT_MS / 1000} s` +
          (serverFailed ? `; servers: ${(serverFailed as Error).message}` : deps.server ? '' : '; no server connection'), { cause: serverFailed })
      }
      await peers.nextChange(Math.max(50, Math.min(1000, patienceEnds() - Date.now() + 10)))
    }
    await Promise.allSettled([...inflight].map((f) => f.promise))
    await fh.close()
    await into.commitFile(entry.sha256, tmp, 'peers and servers', entry.size, entry.sha1)
    return stats
  } catch (err) {
    for (const f of inflight) f.controller.abort()
    await fh.close().catch(() => {})
    await rm(tmp, { force: true })
    throw isUpswarmError(err) ? err : new UpswarmError('UPSWARM_E_PEER', `download of ${entry.path} failed: ${(err as Error).message}`, { cause: err })
  } finally {
    deps.partials.delete(entry.sha256)
  }
}
