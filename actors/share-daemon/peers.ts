// The daemon's connected peers: one PieceSession each, what they hold, whether they are
// repository servers seeding the swarm, and who is banned for sending bad data.
import { EventEmitter } from 'node:events'
import type { PieceSession } from '../../infra/swarm/piece-protocol.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import { PieceTimes } from './piece-scheduler.ts'

export { movingAverage } from './piece-scheduler.ts'

export interface PeerEntry {
  key: string
  session: PieceSession
  /** A repository server seeding the swarm: its bytes count as server bytes. */
  server: boolean
  inflight: number
  bytesDown: number
  /** The peer said it is busy (its upload is saturated): ask it again only after this time (ms epoch). */
  busyUntil: number
  /** Resolves at the peer's first `have` (or when it closes). */
  announced: Promise<void>
  /** When the peer last announced a newly verified piece (ms epoch; 0: never): it is downloading. */
  lastPieceAt: number
  /** The locality label it told on the site channel (issue 14 item 4); undefined: none. */
  site?: string | undefined
}

interface Waiter {
  resolve: () => void
  sha256: string | undefined
  timer: NodeJS.Timeout
}

/** The peer announced the blob, or `range` of it, or every fixed piece `first` … `last` of `pieceSize`. */
function holds(s: PieceSession, sha256: string, pieceSize: number, first: number, last: number, range?: { offset: number; length: number }): boolean {
  if (s.peerHas(sha256) || (range && s.peerHasRange(sha256, range.offset, range.length))) return true
  for (let k = first; k <= last; k++) if (!s.peerHasPiece(sha256, pieceSize, k)) return false
  return true
}

export class PeerSet extends EventEmitter<{ changed: [] }> {
  constructor() {
    super()
    // Every blob being downloaded waits on changes: one listener each.
    this.setMaxListeners(0)
  }

  /** How long a peer takes to deliver a piece: what "late" means in the end-game (see PieceTimes). */
  private readonly pieceTimes = new PieceTimes()

  /** Records one peer piece's time from request to data. */
  pieceServed(ms: number): void {
    this.pieceTimes.served(ms)
  }

  /** A piece request to a peer older than this is late (PieceTimes.lateAfterMs). */
  lateAfterMs(): number {
    return this.pieceTimes.lateAfterMs()
  }

  private readonly peers = new Map<string, PeerEntry>()
  private readonly banned = new Map<string, string>()
  private readonly serverKeys = new Set<string>()

  add(key: string, session: PieceSession): void {
    // A ban holds for the peer's key, not for one connection: a banned peer that dials again
    // is not taken back (issue 11 fault suite S2 found it asked again after a reconnect).
    if (this.banned.has(key)) {
      session.close()
      return
    }
    const announced = new Promise<void>((resolve) => {
      session.once('have', () => resolve())
      session.once('close', () => resolve())
    })
    const entry: PeerEntry = { key, session, server: this.serverKeys.has(key), inflight: 0, bytesDown: 0, busyUntil: 0, announced, lastPieceAt: 0, site: this.sites.get(key) }
    const pieceAnnounced = (): void => {
      entry.lastPieceAt = Date.now()
    }
    session.on('have-piece', pieceAnnounced)
    session.on('have-range', pieceAnnounced)
    // A repository server seeding the swarm announces blobs of every product (no product of its own).
    session.on('have', (have) => {
      if (have.product === '') entry.server = true
    })
    this.peers.set(key, entry)
    const changed = (): void => this.changed()
    session.on('have', changed)
    // A newly verified piece matters to the download of its blob only (and to waitFor's predicates).
    session.on('have-piece', (piece) => this.announcedPiece(piece.sha256))
    session.on('have-range', (range) => this.announcedPiece(range.sha256))
    session.on('unchoke', changed)
    session.once('close', () => {
      if (this.peers.get(key) === entry) this.peers.delete(key)
      changed()
    })
    changed()
  }

  /**
   * Downloads waiting for a change. A blob's download wakes at an announcement of one of its pieces
   * and at every other change; those changes (a slot freed, a peer joined, left, announced its
   * blobs, unchoked) wake every waiter once per turn of the event loop, however many came in it.
   * Issue 14 item 1: with 16 blobs in flight, waking each at every peer's every piece made the
   * daemons plan about 16 times per piece announced; most of those plans found nothing new.
   */
  private readonly waiters = new Set<Waiter>()
  private readonly blobWaiters = new Map<string, Set<Waiter>>()
  private wakeQueued = false

  /** Something that may let any waiting download go on: every waiter wakes, once, later in this turn. */
  changed(): void {
    this.emit('changed')
    if (this.wakeQueued || this.waiters.size === 0) return
    this.wakeQueued = true
    setImmediate(() => {
      this.wakeQueued = false
      for (const w of [...this.waiters]) this.wake(w)
    })
  }

  private announcedPiece(sha256: string): void {
    if (this.listenerCount('changed') > 0) this.emit('changed')
    const ws = this.blobWaiters.get(sha256)
    if (ws) for (const w of [...ws]) this.wake(w)
  }

  private wake(w: Waiter): void {
    clearTimeout(w.timer)
    this.forget(w)
    w.resolve()
  }

  private forget(w: Waiter): void {
    this.waiters.delete(w)
    if (w.sha256 === undefined) return
    const ws = this.blobWaiters.get(w.sha256)
    ws?.delete(w)
    if (ws?.size === 0) this.blobWaiters.delete(w.sha256)
  }

  /** Whether `key` is a repository server's (its heartbeats named it). */
  isServer(key: string): boolean {
    return this.serverKeys.has(key)
  }

  /** Marks keys of repository servers (from their heartbeats). */
  markServers(keys: Iterable<string>): void {
    for (const k of keys) {
      this.serverKeys.add(k)
      const p = this.peers.get(k)
      if (p) p.server = true
    }
  }

  /** A request slot on `peer` is taken / given back; a freed slot may let a waiting download go on. */
  take(peer: PeerEntry): void {
    peer.inflight++
  }

  release(peer: PeerEntry): void {
    peer.inflight--
    this.changed()
  }

  /** The peer answered 'busy': leave it alone for `ms`, then tell the waiting downloads. */
  backOff(peer: PeerEntry, ms: number): void {
    peer.busyUntil = Date.now() + ms
    setTimeout(() => this.changed(), ms).unref()
  }

  /** Locality labels peers told (issue 14 item 4), by key: kept across reconnects. */
  private readonly sites = new Map<string, string | undefined>()

  /** A peer told its site (undefined: none): the downloads' schedulers prefer peers of their own. */
  setSite(key: string, site: string | undefined): void {
    this.sites.set(key, site)
    const p = this.peers.get(key)
    if (p && p.site !== site) {
      p.site = site
      this.changed()
    }
  }

  ban(key: string, reason: string): void {
    this.banned.set(key, reason)
    this.peers.get(key)?.session.close()
    this.peers.delete(key)
    this.changed()
  }

  isBanned(key: string): boolean {
    return this.banned.has(key)
  }

  bannedPeers(): Array<{ key: string; reason: string }> {
    return [...this.banned.entries()].map(([key, reason]) => ({ key, reason }))
  }

  /**
   * Open, unchoked, unbanned peers holding the blob, or `range` of it (announced with `have-range`),
   * or its announced pieces `first` … `last` (of `pieceSize`).
   */
  holders(sha256: string, pieceSize: number, first: number, last = first, range?: { offset: number; length: number }): PeerEntry[] {
    const out: PeerEntry[] = []
    for (const p of this.peers.values()) {
      if (!p.session.closed && !p.session.choked && holds(p.session, sha256, pieceSize, first, last, range)) out.push(p)
    }
    return out
  }

  /**
   * How many open peers hold bytes `offset` … `offset + length` of the blob (the whole blob, that
   * range, or every fixed piece of PIECE_SIZE it overlaps): the rank of an upload waiting for its
   * turn, so that the piece fewest peers hold is sent first (issue 14).
   */
  holderCount(sha256: string, offset: number, length: number): number {
    const first = Math.floor(offset / PIECE_SIZE)
    const last = Math.floor((offset + Math.max(1, length) - 1) / PIECE_SIZE)
    let n = 0
    for (const p of this.peers.values()) if (!p.session.closed && holds(p.session, sha256, PIECE_SIZE, first, last, { offset, length })) n++
    return n
  }

  all(): PeerEntry[] {
    return [...this.peers.values()]
  }

  get(key: string): PeerEntry | undefined {
    return this.peers.get(key)
  }

  get size(): number {
    return this.peers.size
  }

  /** Resolves once every connected peer (or only peer `key`) has told what it holds, or after `ms`. */
  async announced(ms: number, key?: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all((key === undefined ? this.all() : [this.peers.get(key)].filter((p) => p !== undefined)).map((p) => p.announced)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms)
      }),
    ])
    clearTimeout(timer)
  }

  /** Resolves `true` as soon as `predicate` holds (checked now and at every change), `false` after `ms`. */
  waitFor(predicate: (peers: PeerEntry[]) => boolean, ms: number): Promise<boolean> {
    if (predicate(this.all())) return Promise.resolve(true)
    return new Promise((resolve) => {
      const finish = (ok: boolean): void => {
        clearTimeout(timer)
        this.off('changed', check)
        resolve(ok)
      }
      const check = (): void => {
        if (predicate(this.all())) finish(true)
      }
      const timer = setTimeout(() => finish(false), ms)
      this.on('changed', check)
    })
  }

  /**
   * Resolves at the next change (a peer joined, left, announced, unchoked, a slot freed; with
   * `sha256`, also a piece of that blob announced) or after `ms`. `cancel()` forgets a wait that
   * something else ended first.
   */
  nextChange(ms: number, sha256?: string): Promise<void> & { cancel(): void } {
    let w!: Waiter
    const p = new Promise<void>((resolve) => {
      w = { resolve, sha256, timer: setTimeout(() => this.wake(w), ms) }
    })
    this.waiters.add(w)
    if (sha256 !== undefined) {
      const ws = this.blobWaiters.get(sha256)
      if (ws) ws.add(w)
      else this.blobWaiters.set(sha256, new Set([w]))
    }
    return Object.assign(p, { cancel: () => { clearTimeout(w.timer); this.forget(w) } })
  }

}
