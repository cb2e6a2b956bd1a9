// R-ACCEL-2 / R-ACCEL-3 / R-VERIFY: the multi-source download of one blob. Its pieces are
// fetched at once from the peers that hold them (rarest first, a few requests per peer) and,
// for pieces no peer has, from the server the proxy assigns. Every piece is checked as it arrives
// against the signed metadata (format 1's piece hashes, or a format-2 file's chunk hashes:
// piece-layout.ts); a peer that sends a bad piece is banned for the run, a stalled one abandoned;
// servers are the fallback. Verified pieces are announced to every peer at once and can be served
// from the partial file before the blob is complete.
import { open, rm, type FileHandle } from 'node:fs/promises'
import { UpswarmError, isUpswarmError } from '../../infra/errors.ts'
import type { RangeReader } from '../../infra/repo-client.ts'
import { InOrderDigests } from '../../infra/release/hash.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'
import type { ChunkRef } from '../../infra/formats/tree-node.ts'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import { pieceFailure } from '../../infra/swarm/piece-protocol.ts'
import type { PeerEntry, PeerSet } from './peers.ts'
import { chunkLayout, covered, fixedLayout, newlyAnnounceable, type PieceLayout } from './piece-layout.ts'
import { BUSY_BACKOFF_MS, failureAction, NO_SOURCE_TIMEOUT_MS, PEER_REQUEST_TIMEOUT_MS, PieceScheduler, swarmKeysOf, type ServerSlots } from './piece-scheduler.ts'

// The decisions live in piece-scheduler.ts (no I/O), shared with the swarm simulator.
export { PATIENCE_MS, PEER_SLOTS, ServerSlots, stripeOwner, stripeRank, swarmKeysOf } from './piece-scheduler.ts'

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
  size: number
  file: string
  /** The download's own handle on `file` (read and write): serving a piece opens nothing. */
  fh: FileHandle
  /** Whether bytes `offset` … `offset + length` are all in verified pieces. */
  covers(offset: number, length: number): boolean
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
  /** A verified run of a format-2 file's chunks: tell every peer its byte range (piece-layout.ts). */
  announceRange?: (sha256: string, offset: number, length: number) => void
  /**
   * false: the committed blob is not fsynced — a working copy's history store, where a later run
   * hashes a blob again before it uses it and this run makes its copy in the tree durable
   * (BlobStore.commitFile; the CLI's server downloads skip it too). Default true.
   */
  sync?: boolean
  /** This client's locality label (issue 14 item 4): peers of the same site are preferred. */
  site?: string | undefined
  /** Its site's size in the swarm, as the tracker last counted it (PieceSchedulerOptions.siteSize). */
  siteSize?: () => number | undefined
  /** The swarm's size, as the tracker last counted it (PieceSchedulerOptions.swarmSize). */
  swarmSize?: () => number | undefined
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

/**
 * How `entry` is cut into pieces: format 1's fixed pieces when the manifest lists them or the blob
 * is one piece; a format-2 file's chunks grouped into runs of at most `runMax` when `chunks` is
 * given; undefined when neither (a larger format-2 file whose chunk list is unknown: no piece of it
 * can be checked alone).
 */
export function layoutOf(entry: FileEntry, pieceSize: number, chunks?: readonly ChunkRef[], runMax = pieceSize): PieceLayout | undefined {
  if (entry.pieces || entry.size <= pieceSize) return fixedLayout(entry, pieceSize)
  return chunks ? chunkLayout(entry, chunks, runMax) : undefined
}

export async function fetchBlobMultiSource(entry: FileEntry, into: BlobStore, deps: MultiSourceDeps, signal?: AbortSignal, layout = layoutOf(entry, deps.pieceSize)): Promise<BlobFetchStats> {
  const stats = emptyStats()
  if (await into.has(entry.sha256)) return stats
  if (!layout) throw new UpswarmError('UPSWARM_E_MANIFEST', `${entry.path} (blob ${entry.sha256}) has neither piece hashes nor a chunk list: no piece of it can be checked on its own`)
  const { pieceSize, peers } = deps
  const count = layout.count
  const inflight = new Set<Inflight>()
  const slots = deps.serverSlots
  const sched: PieceScheduler<PeerEntry> = new PieceScheduler<PeerEntry>({
    sha256: entry.sha256, count, selfKey: deps.selfKey, swarmKeys: swarmKeysOf(deps.selfKey, peers), startedAt: deps.startedAt, slots,
    ...(deps.site !== undefined ? { selfSite: deps.site, siteKeys: swarmKeysOf(deps.selfKey, peers, deps.site), ...(deps.siteSize ? { siteSize: deps.siteSize } : {}) } : {}),
    ...(deps.swarmSize ? { swarmSize: deps.swarmSize } : {}),
    ...(layout.ranged ? { stripeOf: (i: number) => layout.announced(i)[0] } : {}),
  }, {
    now: () => Date.now(),
    holders: (i) => peers.holders(entry.sha256, layout.announceSize, ...layout.announced(i), layout.ranged ? { offset: layout.offset(i), length: layout.length(i) } : undefined),
    peer: (key) => peers.get(key),
    closed: (p) => p.session.closed,
    inflight: () => inflight,
    lateAfterMs: () => peers.lateAfterMs(),
    serverAvailable: () => deps.server !== undefined && serverFailed === undefined,
    startPeer: (i, p, asServer) => startPeer(i, p, asServer),
    startServer: (i) => startServer(i),
    // A server drops a withdrawn range it has not started (the range's ticket, the seed's cancel);
    // a peer, one still waiting for its turn of the upload limit.
    withdraw: (f) => (f as Inflight).controller.abort(),
    beforeServer: (i) => {
      if (process.env.UPSWARM_DEBUG) deps.log?.(`server piece ${i} of ${entry.path}: ${peers.size} peers (${peers.all().map((p) => `${p.key.slice(0, 6)}${p.server ? 's' : ''}:${p.session.remote.blobs.size}`).join(' ')})`)
    },
  })
  const verified = sched.verified
  const tmp = await into.stagingPath()
  const fh: FileHandle = await open(tmp, 'w+')
  const partial: PartialBlob = { sha256: entry.sha256, size: entry.size, file: tmp, fh, covers: (offset, length) => covered(layout, verified, offset, length) }
  deps.partials.set(entry.sha256, partial)
  const pendingServerReason = new Map<number, ServerReason>()
  const lengthOf = (i: number): number => layout.length(i)
  let waitingSince = Date.now()

  const whole = new InOrderDigests(entry.size, entry.sha1 !== undefined, pieceSize)

  /** `checked`: a server's read already tested the piece (its own hash, or layout.check). */
  const accept = async (i: number, data: Buffer, source: PeerEntry | 'server', checked = false): Promise<boolean> => {
    if (verified[i]) return true
    if (!checked && !layout.check(i, data)) return false
    await fh.write(data, 0, data.length, layout.offset(i))
    if (verified[i]) return true // another source's copy landed while this one was written
    // A blob of one piece: the piece checked is the blob, so its digest is the blob's.
    whole.accepted(i, data, entry.sha256)
    sched.markVerified(i)
    if (source === 'server' || source.server) {
      stats.bytesFromServers += data.length
      stats.piecesFromServers++
      stats.serverReasons[pendingServerReason.get(i) ?? 'no-peer-had-piece']++
    } else {
      stats.bytesFromPeers += data.length
      stats.piecesFromPeers++
      source.bytesDown += data.length
    }
    if (layout.ranged) deps.announceRange?.(entry.sha256, layout.offset(i), layout.length(i))
    for (const k of newlyAnnounceable(layout, verified, i)) deps.announcePiece(entry.sha256, layout.announceSize, k)
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
      promise: peer.session.request(entry.sha256, layout.offset(i), lengthOf(i), { signal: controller.signal, timeoutMs: PEER_REQUEST_TIMEOUT_MS })
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
          const action = failureAction(why)
          if (action === 'ignore') return
          // Busy is no fault: the piece goes back to the pool, the peer is asked again shortly.
          if (action === 'back-off') return peers.backOff(peer, BUSY_BACKOFF_MS)
          sched.shunned.add(peer.key)
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
    // Checked by the read, which asks another server for a piece that fails (accept need not check again).
    const expected = layout.hash?.(i) ?? ((data: Buffer) => layout.check(i, data))
    slots.inUse++
    const asked = Date.now()
    const f: Inflight = {
      piece: i, source: 'server', controller, asked,
      // Withdrawn (the server drops it unsent if it is still queued) once another source's copy
      // of the piece is verified: accept() aborts every other request for it.
      promise: deps.server!.readPiece(entry.sha256, layout.offset(i), lengthOf(i), expected, controller.signal)
        .then(async (data) => {
          slots.served(Date.now() - asked)
          await accept(i, data, 'server', true)
        }, (err) => {
          if (controller.signal.aborted) return
          deps.log?.(`servers could not send piece ${i} of ${entry.path}: ${(err as Error).message}`)
          serverFailed = err
        })
        .finally(() => {
          slots.inUse--
          inflight.delete(f)
          peers.changed()
        }),
    }
    inflight.add(f)
  }
  let serverFailed: unknown

  try {
    while (sched.remaining > 0) {
      signal?.throwIfAborted()
      sched.plan()
      if (sched.remaining === 0) break
      if (inflight.size > 0) {
        waitingSince = Date.now()
        // Wake for a finished request, a change, or the next request to become late.
        const change = peers.nextChange(sched.wakeAfterMs(), entry.sha256)
        await Promise.race([...inflight].map((f) => f.promise).concat(change))
        change.cancel()
        continue
      }
      // Nothing of this blob in flight: its holders are busy with other blobs, or no source has
      // the missing pieces right now. Wait for a change (a slot freed, a piece announced).
      if (Date.now() - waitingSince > NO_SOURCE_TIMEOUT_MS) {
        throw new UpswarmError('UPSWARM_E_PEER',
          `no peer or server could send ${sched.remaining} piece(s) of ${entry.path} (blob ${entry.sha256}) within ${NO_SOURCE_TIMEOUT_MS / 1000} s` +
          (serverFailed ? `; servers: ${(serverFailed as Error).message}` : deps.server ? '' : '; no server connection'), { cause: serverFailed })
      }
      await peers.nextChange(sched.wakeAfterMs(), entry.sha256)
    }
    await Promise.allSettled([...inflight].map((f) => f.promise))
    await into.commitFile(entry.sha256, tmp, 'peers and servers', entry.size, entry.sha1, await whole.digests(fh), { sync: deps.sync ?? true })
    // Served from the store from now on (until then, through the handle, which the rename into the
    // store does not disturb). A peer answered "not found" in between would shun this one for the
    // blob; a read still running finishes before the handle closes.
    deps.partials.delete(entry.sha256)
    await fh.close()
    return stats
  } catch (err) {
    for (const f of inflight) f.controller.abort()
    deps.partials.delete(entry.sha256)
    await fh.close().catch(() => {})
    await rm(tmp, { force: true })
    throw isUpswarmError(err) ? err : new UpswarmError('UPSWARM_E_PEER', `download of ${entry.path} failed: ${(err as Error).message}`, { cause: err })
  } finally {
    deps.partials.delete(entry.sha256)
  }
}
