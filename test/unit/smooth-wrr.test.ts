import { describe, expect, it } from 'vitest'
import { SmoothWeightedRoundRobin } from '../../actors/proxy/smooth-wrr.ts'

describe('proxy weighted round-robin', () => {
  const members = [{ id: 'a', weight: 5 }, { id: 'b', weight: 1 }, { id: 'c', weight: 1 }]

  it('proxy — weights 5,1,1 give the nginx sequence a a b a c a a', () => {
    const wrr = new SmoothWeightedRoundRobin()
    expect(Array.from({ length: 7 }, () => wrr.pick(members))).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a'])
  })

  it('proxy — 700 assignments with weights 5,1,1 are exactly 500/100/100', () => {
    const wrr = new SmoothWeightedRoundRobin()
    const counts: Record<string, number> = {}
    for (let i = 0; i < 700; i++) {
      const id = wrr.pick(members)!
      counts[id] = (counts[id] ?? 0) + 1
    }
    expect(counts).toEqual({ a: 500, b: 100, c: 100 })
  })

  it('proxy — an ineligible member is skipped and the rest keep their proportions', () => {
    const wrr = new SmoothWeightedRoundRobin()
    const picks = Array.from({ length: 6 }, () => wrr.pick([{ id: 'a', weight: 2 }, { id: 'c', weight: 1 }]))
    expect(picks.filter((p) => p === 'a')).toHaveLength(4)
    expect(wrr.pick([])).toBeUndefined()
  })
})
