// The peers of one swarm (one info hash): O(1) insert, update and removal, counters kept up to
// date for announce responses and scrape, and a random sample for each answer so that every
// peer is handed out, not only the oldest.
import type { PeerEntry, SwarmStats } from './types.ts'

let stamps = new Uint32Array(256)
let stamp = 0

export class PeerSet {
  readonly #items: { key: string; entry: PeerEntry }[] = []
  readonly #index = new Map<string, number>()
  #seeders = 0
  #completed = 0

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
    const i = this.#index.get(key)
    if (i === undefined) {
      this.#index.set(key, this.#items.length)
      this.#items.push({ key, entry })
    } else {
      this.#count(this.#items[i]!.entry, -1)
      this.#items[i]!.entry = entry
    }
    this.#count(entry, 1)
  }

  delete(key: string): boolean {
    const i = this.#index.get(key)
    if (i === undefined) return false
    const removed = this.#items[i]!
    const last = this.#items.pop()!
    if (last !== removed) {
      this.#items[i] = last
      this.#index.set(last.key, i)
    }
    this.#index.delete(key)
    this.#count(removed.entry, -1)
    return true
  }

  /**
   * Up to `max` live peers other than `exceptPeerId`, in random order. (A peer id is listed once:
   * the registry never keeps one peer under two keys of the same swarm.)
   */
  sample(max: number, exceptPeerId: string | undefined, now: number): PeerEntry[] {
    const out: PeerEntry[] = []
    out.length = this.sampleInto(out, max, exceptPeerId, now)
    return out
  }

  /**
   * As sample(), written into `out` from index 0 (a reused array: the UDP door's answers allocate
   * no list); returns how many were written. Entries of `out` past that count are left as they were.
   */
  sampleInto(out: PeerEntry[], max: number, exceptPeerId: string | undefined, now: number): number {
    const n = this.#items.length
    const items = this.#items
    let count = 0
    if (max <= 0 || n === 0) return 0
    if (n <= max * 2) {
      // Small swarm: the peers from a random place on, wrapping around (opentracker hands out
      // consecutive peers from a random offset too): one random number, and every peer is as
      // likely as any other to be in an answer.
      const start = Math.floor(Math.random() * n)
      for (let k = 0, i = start; k < n && count < max; k++, i = i + 1 === n ? 0 : i + 1) {
        const entry = items[i]!.entry
        if (entry.expires > now && entry.peerId !== exceptPeerId) out[count++] = entry
      }
      return count
    }
    // Large swarm: random probes; the bound keeps a swarm of mostly expired peers cheap. A probe
    // already taken is recognised by the stamp it left (no set per answer).
    if (stamps.length < n) stamps = new Uint32Array(Math.max(n, stamps.length * 2))
    if (++stamp === 0xffffffff) {
      stamps.fill(0)
      stamp = 1
    }
    for (let probes = 0; probes < max * 4 && count < max; probes++) {
      const i = Math.floor(Math.random() * n)
      if (stamps[i] === stamp) continue
      stamps[i] = stamp
      const entry = items[i]!.entry
      if (entry.expires > now && entry.peerId !== exceptPeerId) out[count++] = entry
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
