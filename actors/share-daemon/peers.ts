// The daemon's connected peers: one PieceSession each, what they hold, whether they are
// repository servers seeding the swarm, and who is banned for sending bad data.
import { EventEmitter } from 'node:events'
import type { PieceSession } from '../../infra/swarm/piece-protocol.ts'
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
    session.on('have-piece', () => {
      entry.lastPieceAt = Date.now()
    })
    // A repository server seeding the swarm announces blobs of every product (no product of its own).
    session.on('have', (have) => {
      if (have.product === '') entry.server = true
    })
    this.peers.set(key, entry)
    const changed = (): void => {
      this.emit('changed')
    }
    session.on('have', changed)
    session.on('have-piece', changed)
    session.on('unchoke', changed)
    session.once('close', () => {
      if (this.peers.get(key) === entry) this.peers.delete(key)
      changed()
    })
    changed()
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
    this.emit('changed')
  }

  /** The peer answered 'busy': leave it alone for `ms`, then tell the waiting downloads. */
  backOff(peer: PeerEntry, ms: number): void {
    peer.busyUntil = Date.now() + ms
    setTimeout(() => this.emit('changed'), ms).unref()
  }

  /** Locality labels peers told (issue 14 item 4), by key: kept across reconnects. */
  private readonly sites = new Map<string, string | undefined>()

  /** A peer told its site (undefined: none): the downloads' schedulers prefer peers of their own. */
  setSite(key: string, site: string | undefined): void {
    this.sites.set(key, site)
    const p = this.peers.get(key)
    if (p && p.site !== site) {
      p.site = site
      this.emit('changed')
    }
  }

  ban(key: string, reason: string): void {
    this.banned.set(key, reason)
    this.peers.get(key)?.session.close()
    this.peers.delete(key)
    this.emit('changed')
  }

  isBanned(key: string): boolean {
    return this.banned.has(key)
  }

  bannedPeers(): Array<{ key: string; reason: string }> {
    return [...this.banned.entries()].map(([key, reason]) => ({ key, reason }))
  }

  /** Open, unchoked, unbanned peers holding the blob (or this piece of it). */
  holders(sha256: string, pieceSize: number, index: number): PeerEntry[] {
    const out: PeerEntry[] = []
    for (const p of this.peers.values()) {
      const s = p.session
      if (s.closed || s.choked) continue
      if (s.peerHas(sha256) || s.peerHasPiece(sha256, pieceSize, index)) out.push(p)
    }
    return out
  }

  all(): PeerEntry[] {
    return [...this.peers.values()]
  }

  get size(): number {
    return this.peers.size
  }

  /** Resolves once every connected peer has told what it holds, or after `ms`. */
  async announced(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(this.all().map((p) => p.announced)),
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

  /** Resolves at the next change (a peer joined, left, announced, unchoked) or after `ms`. */
  nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.off('changed', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.on('changed', done)
    })
  }
}
