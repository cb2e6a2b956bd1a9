// A binary min-heap of timed events for the swarm simulator: O(log n) push and pop, ties broken
// by insertion order so that a run is deterministic for a given seed.

export interface Timed {
  /** Virtual time, ms. */
  t: number
  /** Insertion number (set by push). */
  seq: number
}

export class EventHeap<E extends Timed> {
  private readonly items: E[] = []
  private nextSeq = 0

  get size(): number {
    return this.items.length
  }

  push(e: E): void {
    e.seq = this.nextSeq++
    const a = this.items
    a.push(e)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(e, a[p]!)) break
      a[i] = a[p]!
      i = p
    }
    a[i] = e
  }

  pop(): E | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (top === undefined || last === undefined || a.length === 0) return top
    let i = 0
    const n = a.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && before(a[r]!, a[l]!) ? r : l
      if (!before(a[c]!, last)) break
      a[i] = a[c]!
      i = c
    }
    a[i] = last
    return top
  }
}

function before(a: Timed, b: Timed): boolean {
  return a.t < b.t || (a.t === b.t && a.seq < b.seq)
}
