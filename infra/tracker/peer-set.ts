// The peers of one swarm (one info hash): O(1) insert, update and removal, counters kept up to
// date for announce responses and scrape, and a random sample for each answer so that every
// peer is handed out, not only the oldest.
import type { PeerEntry, SwarmStats } from './types.ts'

let scratch = new Int32Array(256)

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
    const n = this.#items.length
    const items = this.#items
    const out: PeerEntry[] = []
    if (max <= 0 || n === 0) return out
    if (n <= max * 2) {
      // Small swarm: a partial Fisher–Yates shuffle over a reused index array.
      if (scratch.length < n) scratch = new Int32Array(Math.max(n, scratch.length * 2))
      for (let i = 0; i < n; i++) scratch[i] = i
      for (let i = 0; i < n && out.length < max; i++) {
        const j = i + Math.floor(Math.random() * (n - i))
        const pick = scratch[j]!
        scratch[j] = scratch[i]!
        const entry = items[pick]!.entry
        if (entry.expires > now && entry.peerId !== exceptPeerId) out.push(entry)
      }
      return out
    }
    // Large swarm: random probes; the bound keeps a swarm of mostly expired peers cheap.
    const picked = new Set<number>()
    for (let probes = 0; probes < max * 4 && out.length < max; probes++) {
      const i = Math.floor(Math.random() * n)
      if (picked.has(i)) continue
      picked.add(i)
      const entry = items[i]!.entry
      if (entry.expires > now && entry.peerId !== exceptPeerId) out.push(entry)
    }
    return out
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
