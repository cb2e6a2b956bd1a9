// lastAtOrBefore (infra/sorted.ts): the binary search a format-2 file's runs and a peer's
// announced spans are looked up with.
import { describe, expect, it } from 'vitest'
import { lastAtOrBefore } from '../../infra/sorted.ts'

describe('sorted', () => {
  it('lastAtOrBefore — the last index whose value is at most x, -1 before the first; `end` leaves a sentinel out', () => {
    const starts = [0, 10, 20, 30, 100]
    expect(lastAtOrBefore([], 5)).toBe(-1)
    expect(lastAtOrBefore([7], 6)).toBe(-1)
    expect(lastAtOrBefore([7], 7)).toBe(0)
    expect([0, 9, 10, 19, 29, 30, 99, 100, 1000].map((x) => lastAtOrBefore(starts, x))).toEqual([0, 0, 1, 1, 2, 3, 3, 4, 4])
    expect(lastAtOrBefore(starts, 1000, 4)).toBe(3)
    // Against a linear scan, over random sorted arrays.
    for (let n = 0; n < 200; n++) {
      const a = Array.from({ length: n % 17 }, () => Math.floor(Math.random() * 50)).sort((x, y) => x - y)
      const x = Math.floor(Math.random() * 60) - 5
      let want = -1
      for (let i = 0; i < a.length; i++) if (a[i]! <= x) want = i
      expect(lastAtOrBefore(a, x)).toBe(want)
    }
  })
})
