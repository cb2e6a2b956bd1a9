// Issue 13 item 6: the compact digest tables that hold a history's packed units and an update's
// kept set (infra/store/digest-table.ts) behave as the Map and Set they replace.
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { DigestSet, PackedUnitTable, type PackedAt } from '../../infra/store/digest-table.ts'

const digest = (i: number): string => createHash('sha256').update(`unit ${i}`).digest('hex')

/** A small deterministic generator (the same sequence every run). */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

describe('digest tables', () => {
  it('DigestSet — answers as a Set of hex digests through adds, deletes, re-adds and growth (R-ROLLBACK: the kept set)', () => {
    const rnd = lcg(7)
    const set = new DigestSet()
    const model = new Set<string>()
    for (let step = 0; step < 20_000; step++) {
      const d = digest(Math.floor(rnd() * 3_000))
      const op = rnd()
      if (op < 0.6) {
        set.add(d)
        model.add(d)
      } else if (op < 0.8) {
        expect(set.delete(d)).toBe(model.delete(d))
      } else {
        expect(set.has(d)).toBe(model.has(d))
      }
      expect(set.size).toBe(model.size)
    }
    expect([...set].sort()).toEqual([...model].sort())
    for (let i = 0; i < 3_000; i++) expect(set.has(digest(i))).toBe(model.has(digest(i)))
  })

  it('DigestSet — anything but 64 hex digits is never a member, and cannot be added; a digest is the same in either case', () => {
    const set = new DigestSet().add(digest(1))
    const d = digest(1)
    for (const bad of ['', d.slice(0, 63), `${d}0`, `${d.slice(0, 62)}zz`, 'x'.repeat(64)]) expect(set.has(bad)).toBe(false)
    expect(set.has(d.toUpperCase())).toBe(true)
    expect([...set.add(d.toUpperCase())]).toEqual([d])
    expect(() => set.add('not a digest')).toThrow(/not a SHA-256 digest/)
    expect(set.size).toBe(1)
    // U+0161 is 0x61, 'a', in its low byte: the hex decoder alone would take it for one.
    const a = `a${d.slice(1)}`
    expect(new DigestSet().add(a).has(`\u0161${d.slice(1)}`)).toBe(false)
    expect(() => new DigestSet().add(`\u0161${d.slice(1)}`)).toThrow(/not a SHA-256 digest/)
  })

  it('PackedUnitTable — keeps where each unit lies; a unit already held stays in its first pack; a pack is dropped whole', () => {
    const table = new PackedUnitTable()
    const model = new Map<string, PackedAt>()
    const packs = ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)]
    for (let i = 0; i < 5_000; i++) {
      const at: PackedAt = { pack: packs[i % 3]!, offset: i * 4096 + 2 ** 33, length: 100 + (i % 7) }
      expect(table.addIfAbsent(digest(i), at)).toBe(true)
      model.set(digest(i), at)
    }
    expect(table.addIfAbsent(digest(4), { pack: packs[2]!, offset: 1, length: 1 })).toBe(false)
    for (let i = 0; i < 5_000; i += 97) expect(table.get(digest(i))).toEqual(model.get(digest(i)))
    expect(table.delete(digest(10))).toBe(true)
    expect(table.get(digest(10))).toBeUndefined()
    table.deletePack(packs[1]!)
    const left = [...model].filter(([d, at]) => at.pack !== packs[1] && d !== digest(10))
    expect(table.size).toBe(left.length)
    expect([...table.keysHex()].sort()).toEqual(left.map(([d]) => d).sort())
    // Growth after deletions packs the entries: the columns still follow their digests.
    for (let i = 5_000; i < 12_000; i++) table.addIfAbsent(digest(i), { pack: packs[0]!, offset: i, length: 1 })
    for (const [d, at] of left) expect(table.get(d)).toEqual(at)
    expect(table.get(digest(11_999))).toEqual({ pack: packs[0], offset: 11_999, length: 1 })
  })
})
