// Binary search over a sorted array of numbers (offsets of pieces, runs, spans).

/**
 * The last index `i < end` with `sorted[i] ≤ x`, or -1 when there is none (`sorted` ascending).
 * `end` bounds the search when the array carries a sentinel after its last real entry.
 */
export function lastAtOrBefore(sorted: readonly number[], x: number, end = sorted.length): number {
  let lo = -1
  let hi = end - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (sorted[mid]! <= x) lo = mid
    else hi = mid - 1
  }
  return lo
}
