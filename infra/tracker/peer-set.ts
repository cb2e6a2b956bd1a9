// The peers of one swarm (one info hash): O(1) insert, update and removal, counters kept up to
// date for announce responses and scrape, and a random sample for each answer so that every
// peer is handed out, not only the oldest. Beside the entries it keeps each peer's BEP 23 compact
// address (6 bytes) and expiry in flat arrays, so the UDP door's answer is copied from contiguous
// memory instead of chasing a pointer per peer.
import { ipv4Number } from './compact.ts'
import type { PeerEntry, SwarmStats } from './types.ts'

let stamps = new Uint32Array(256)
let stamp = 0

export class PeerSet {
  readonly #items: { key: string; entry: PeerEntry }[] = []
  readonly #index = new Map<string, number>()
  /** Per index: the compact IPv4 address and port, whether there is one (not IPv6), the expiry. */
  #compact = Buffer.allocUnsafe(6 * 16)
  #hasV4 = new Uint8Array(16)
  #expires = new Float64Array(16)
  #seeders = 0
  #completed = 0
  /** Issue 14 item 4: the peers that told a site, per site (a set of their own, for sampleSite). */
  readonly #sites = new Map<string, PeerSet>()

  /**
   * `bySite`: a swarm's own set, which keeps the per-site sets and the flat arrays of the UDP
   * door's answers (writeCompact); false for the per-site sets themselves, which are only sampled.
   */
  constructor(private readonly bySite = true) {}

  get size(): number {
    return this.#items.length
  }

  stats(): SwarmStats {
    return { seeders: this.#seeders, leechers: this.#items.length - this.#seeders, completed: this.#completed }
  }

  get(key: string): PeerEntry | undefined {
    const i = this.#index.get(key)
    return i === undefined ? undefined : this.#items[i]!.entry
  }

  set(key: string, entry: PeerEntry): void {
    let i = this.#index.get(key)
    if (i === undefined) {
      i = this.#items.length
      this.#index.set(key, i)
      this.#items.push({ key, entry })
      if (this.bySite && i >= this.#expires.length) this.#grow(i + 1)
    } else {
      const old = this.#items[i]!.entry
      this.#count(old, -1)
      if (old.site !== undefined && old.site !== entry.site) this.#leaveSite(old.site, key)
      this.#items[i]!.entry = entry
    }
    this.#count(entry, 1)
    if (entry.site !== undefined && this.bySite) {
      let site = this.#sites.get(entry.site)
      if (!site) this.#sites.set(entry.site, (site = new PeerSet(false)))
      site.set(key, entry)
    }
    if (!this.bySite) return
    const v4 = ipv4Number(entry.ip)
    this.#hasV4[i] = v4 < 0 ? 0 : 1
    if (v4 >= 0) {
      this.#compact.writeUInt32BE(v4, i * 6)
      this.#compact.writeUInt16BE(entry.port, i * 6 + 4)
    }
    this.#expires[i] = entry.expires
  }

  #grow(min: number): void {
    const cap = Math.max(min, this.#expires.length * 2)
    const compact = Buffer.allocUnsafe(cap * 6)
    this.#compact.copy(compact)
    this.#compact = compact
    const hasV4 = new Uint8Array(cap)
    hasV4.set(this.#hasV4)
    this.#hasV4 = hasV4
    const expires = new Float64Array(cap)
    expires.set(this.#expires)
    this.#expires = expires
  }

  delete(key: string): boolean {
    const i = this.#index.get(key)
    if (i === undefined) return false
    const removed = this.#items[i]!
    const last = this.#items.pop()!
    if (last !== removed) {
      const from = this.#items.length
      this.#items[i] = last
      this.#index.set(last.key, i)
      if (this.bySite) {
        this.#compact.copy(this.#compact, i * 6, from * 6, from * 6 + 6)
        this.#hasV4[i] = this.#hasV4[from]!
        this.#expires[i] = this.#expires[from]!
      }
    }
    this.#index.delete(key)
    this.#count(removed.entry, -1)
    if (removed.entry.site !== undefined) this.#leaveSite(removed.entry.site, key)
    return true
  }

  #leaveSite(site: string, key: string): void {
    const set = this.#sites.get(site)
    set?.delete(key)
    if (set?.size === 0) this.#sites.delete(site)
  }

  /** How many peers told `site` (live or not yet swept). */
  siteSize(site: string): number {
    return this.#sites.get(site)?.size ?? 0
  }

  /** As sample(), among the peers that told `site` (issue 14 item 4). */
  sampleSite(site: string, max: number, exceptPeerId: string | undefined, now: number): PeerEntry[] {
    return this.#sites.get(site)?.sample(max, exceptPeerId, now) ?? []
  }

  /**
   * Up to `max` live peers other than `exceptPeerId`, in random order. (A peer id is listed once:
   * the registry never keeps one peer under two keys of the same swarm.)
   */
  sample(max: number, exceptPeerId: string | undefined, now: number): PeerEntry[] {
    const n = this.#items.length
    const items = this.#items
    const out: PeerEntry[] = []
    if (max <= 0 || n === 0) return out
    if (n <= max * 2) {
      // Small swarm: the peers from a random place on, wrapping around (opentracker hands out
      // consecutive peers from a random offset too): one random number, and every peer is as
      // likely as any other to be in an answer.
      const start = Math.floor(Math.random() * n)
      for (let k = 0, i = start; k < n && out.length < max; k++, i = i + 1 === n ? 0 : i + 1) {
        const entry = items[i]!.entry
        if (entry.expires > now && entry.peerId !== exceptPeerId) out.push(entry)
      }
      return out
    }
    // Large swarm: random probes; the bound keeps a swarm of mostly expired peers cheap. A probe
    // already taken is recognised by the stamp it left (no set per answer).
    if (stamps.length < n) stamps = new Uint32Array(Math.max(n, stamps.length * 2))
    if (++stamp === 0xffffffff) {
      stamps.fill(0)
      stamp = 1
    }
    for (let probes = 0; probes < max * 4 && out.length < max; probes++) {
      const i = Math.floor(Math.random() * n)
      if (stamps[i] === stamp) continue
      stamps[i] = stamp
      const entry = items[i]!.entry
      if (entry.expires > now && entry.peerId !== exceptPeerId) out.push(entry)
    }
    return out
  }

  /**
   * The UDP door's answer: up to `max` live IPv4 peers other than the one under `exceptKey`,
   * consecutive from a random place (wrapping; at most 4 × `max` looked at), written as BEP 23
   * compact addresses into `out` from `offset`, which must have room for `max` of them. Returns
   * how many were written.
   */
  writeCompact(out: Buffer, offset: number, max: number, exceptKey: string | undefined, now: number): number {
    if (!this.bySite) throw new Error('writeCompact: a per-site set keeps no compact addresses')
    const n = this.#items.length
    if (max <= 0 || n === 0) return 0
    const except = exceptKey === undefined ? -1 : (this.#index.get(exceptKey) ?? -1)
    const compact = this.#compact
    const hasV4 = this.#hasV4
    const expires = this.#expires
    const look = Math.min(n, max * 4)
    let count = 0
    for (let k = 0, i = Math.floor(Math.random() * n); k < look && count < max; k++, i = i + 1 === n ? 0 : i + 1) {
      if (i === except || hasV4[i] === 0 || expires[i]! <= now) continue
      const o = offset + count * 6
      const j = i * 6
      out[o] = compact[j]!
      out[o + 1] = compact[j + 1]!
      out[o + 2] = compact[j + 2]!
      out[o + 3] = compact[j + 3]!
      out[o + 4] = compact[j + 4]!
      out[o + 5] = compact[j + 5]!
      count++
    }
    return count
  }

  /** Every entry, for queries of a whole product and for sweeping. */
  entries(): IterableIterator<{ key: string; entry: PeerEntry }> {
    return this.#items.values()
  }

  #count(entry: PeerEntry, sign: 1 | -1): void {
    if (entry.left === 0) this.#seeders += sign
    if (entry.completed) this.#completed += sign
  }
}
