// Smooth weighted round-robin (the nginx algorithm, R-PROXY): on each pick every eligible
// member's current weight grows by its weight, the largest wins and is lowered by the total.
// Weights 5,1,1 give a a b a c a a — spread out, and exact over every 7 picks.

export class SmoothWeightedRoundRobin {
  private readonly current = new Map<string, number>()

  /** Picks one of `members` (id → weight > 0); undefined when none is eligible. */
  pick(members: ReadonlyArray<{ id: string; weight: number }>): string | undefined {
    let total = 0
    let best: string | undefined
    let bestWeight = -Infinity
    for (const m of members) {
      if (m.weight <= 0) continue
      const cw = (this.current.get(m.id) ?? 0) + m.weight
      this.current.set(m.id, cw)
      total += m.weight
      // Ties go to the member first in ring order (members are passed sorted by id).
      if (cw > bestWeight) {
        bestWeight = cw
        best = m.id
      }
    }
    if (best !== undefined) this.current.set(best, bestWeight - total)
    return best
  }

  forget(id: string): void {
    this.current.delete(id)
  }
}
