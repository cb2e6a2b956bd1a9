// Codec 3 of the delta index (infra/formats/delta.ts; issue 15 items 1, 3, 5): a target rebuilt
// from its base and a delta byte for byte, deltas small for small edits, text compressed, and
// every inconsistent delta refused with a message rather than half a file.
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { DeltaError, applyDeltaToBuffer, encodeDelta } from '../../infra/formats/delta.ts'

const seeded = (n: number, seed: number): Buffer => {
  const out = Buffer.allocUnsafe(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

describe('delta codec 3', () => {
  it('rebuilds a target with an overwritten block from a small delta', async () => {
    const base = seeded(32 * 1024, 1)
    const target = Buffer.from(base)
    seeded(4096, 2).copy(target, 10_000)
    const d = encodeDelta(base, target)
    expect(await applyDeltaToBuffer(d, base, target.length)).toEqual(target)
    expect(d.length).toBeLessThan(4096 + 200)
  })

  it('rebuilds targets with insertions, deletions and moved blocks', async () => {
    const base = seeded(200_000, 3)
    const target = Buffer.concat([base.subarray(150_000), seeded(777, 4), base.subarray(0, 50_000), base.subarray(60_000, 140_000)])
    const d = encodeDelta(base, target)
    expect(await applyDeltaToBuffer(d, base, target.length)).toEqual(target)
    expect(d.length).toBeLessThan(2000)
  })

  it('compresses a target alone when there is no base, and text compresses', async () => {
    const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `export const value${i} = compute(${i}, "upswarm");\n`).join(''))
    const d = encodeDelta(undefined, text)
    expect(await applyDeltaToBuffer(d, undefined, text.length)).toEqual(text)
    expect(d.length).toBeLessThan(text.length / 5)
    const random = randomBytes(50_000)
    expect(await applyDeltaToBuffer(encodeDelta(undefined, random), undefined, random.length)).toEqual(random)
  })

  it('handles empty and tiny files', async () => {
    for (const [b, t] of [[Buffer.alloc(0), Buffer.alloc(0)], [Buffer.from('a'), Buffer.from('ab')], [seeded(100, 5), Buffer.alloc(0)]] as const) {
      expect(await applyDeltaToBuffer(encodeDelta(b, t), b, t.length)).toEqual(t)
    }
  })

  it('refuses a delta for another size, another base, garbage and truncation', async () => {
    const base = seeded(40_000, 6)
    const target = Buffer.concat([base.subarray(0, 20_000), seeded(1000, 7), base.subarray(20_000)])
    const d = encodeDelta(base, target)
    await expect(applyDeltaToBuffer(d, base, target.length + 1)).rejects.toThrow(/signed size/)
    await expect(applyDeltaToBuffer(d, base.subarray(0, 30_000), target.length)).rejects.toThrow(/base of 40000 bytes/)
    await expect(applyDeltaToBuffer(d, undefined, target.length)).rejects.toThrow(DeltaError)
    await expect(applyDeltaToBuffer(randomBytes(300), base, target.length)).rejects.toThrow(DeltaError)
    await expect(applyDeltaToBuffer(d.subarray(0, d.length - 5), base, target.length)).rejects.toThrow(DeltaError)
  })
})
