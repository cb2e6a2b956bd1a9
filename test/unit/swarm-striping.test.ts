// Striping (R-ACCEL-2): which client asks the servers first for which piece. Two clients that
// see different peers must still agree on the pieces whose owner both see.
import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { stripeOwner, stripeRank } from '../../actors/share-daemon/multi-source.ts'
import { stripeScore } from '../../actors/share-daemon/piece-scheduler.ts'

const keys = Array.from({ length: 16 }, () => randomBytes(32).toString('hex'))
const blobs = Array.from({ length: 50 }, () => randomBytes(32).toString('hex'))
const pieces = blobs.flatMap((sha) => [0, 1, 2].map((i) => ({ sha, i })))

describe('striping', () => {
  it('striping — every piece has one owner, and the stripes are about even', () => {
    const count = new Map<string, number>()
    for (const { sha, i } of pieces) {
      const owner = stripeOwner(sha, i, keys)!
      expect(keys).toContain(owner)
      // The order of the keys does not matter.
      expect(stripeOwner(sha, i, [...keys].reverse())).toBe(owner)
      count.set(owner, (count.get(owner) ?? 0) + 1)
    }
    expect(count.size).toBeGreaterThan(12) // 150 pieces over 16 keys: every stripe but a few is used
    expect(Math.max(...count.values())).toBeLessThan(30)
  })

  it('striping — a view missing one peer reassigns only that peer\'s pieces', () => {
    const missing = keys[5]!
    const partial = keys.filter((k) => k !== missing)
    for (const { sha, i } of pieces) {
      const full = stripeOwner(sha, i, keys)
      if (full !== missing) expect(stripeOwner(sha, i, partial)).toBe(full)
    }
  })

  it('striping — the ranks of a piece are 0 for its owner, then 1, 2 … once each (its backups in turn)', () => {
    for (const { sha, i } of pieces.slice(0, 20)) {
      const ranks = keys.map((k) => stripeRank(sha, i, keys, k))
      expect([...ranks].sort((a, b) => a - b)).toEqual(keys.map((_, n) => n))
      expect(keys[ranks.indexOf(0)]).toBe(stripeOwner(sha, i, keys))
    }
  })

  it('striping — a cache of the scores (the simulator\'s) picks the same owners and ranks as the scores themselves', () => {
    const cache = new Map<string, number>()
    let computed = 0
    const cached = (key: string, sha: string, i: number): number => {
      const k = `${key}:${sha}:${i}`
      if (!cache.has(k)) {
        computed++
        cache.set(k, stripeScore(key, sha, i))
      }
      return cache.get(k)!
    }
    for (const { sha, i } of pieces.slice(0, 30)) {
      expect(stripeOwner(sha, i, keys, cached)).toBe(stripeOwner(sha, i, keys))
      for (const k of keys.slice(0, 4)) expect(stripeRank(sha, i, keys, k, cached)).toBe(stripeRank(sha, i, keys, k))
    }
    expect(computed).toBe(30 * keys.length) // each key scored once per piece
  })
})
