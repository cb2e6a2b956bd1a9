// docs/formats.md §1.7 (issues 13 and 15): content-defined chunks. The cut points of fastcdc-2020
// are a fixed definition (golden vector), do not depend on how the bytes are fed, respect min and
// max, and survive an insertion: every chunk away from the edit keeps its hash.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { chunkFile } from '../../infra/formats/fastcdc.ts'
import { DEFAULT_CHUNKER } from '../../infra/formats/release.ts'
import { bytesOf, cuts } from '../helpers/format2-samples.ts'

const GOLDEN = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'vectors', 'formats-2', 'fastcdc.json'), 'utf8')) as { seed: string; length: number; chunks: number[] }

describe('fastcdc-2020', () => {
  it('chunks — 4 MiB of counter-mode bytes cut exactly as the golden vector, however the bytes are fed', () => {
    const data = bytesOf(GOLDEN.seed, GOLDEN.length)
    expect(cuts(data, data.length)).toEqual(GOLDEN.chunks)
    expect(cuts(data, 65_537)).toEqual(GOLDEN.chunks)
    expect(cuts(data.subarray(0, 300_000), 1)).toEqual(cuts(data.subarray(0, 300_000), 300_000))
    const all = GOLDEN.chunks
    expect(all.reduce((a, b) => a + b, 0)).toBe(GOLDEN.length)
    for (const n of all.slice(0, -1)) {
      expect(n).toBeGreaterThan(DEFAULT_CHUNKER.min)
      expect(n).toBeLessThanOrEqual(DEFAULT_CHUNKER.max)
    }
  })

  it('chunks — bytes inserted near the start change only the chunks around them; chunkFile gives the whole-file hashes, the pieces and the chunk hashes in one pass', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'upswarm-cdc-'))
    try {
      const data = bytesOf('insert', 8 << 20)
      const edited = Buffer.concat([data.subarray(0, 100_000), Buffer.from('a few new bytes'), data.subarray(100_000)])
      await writeFile(join(dir, 'a'), data)
      await writeFile(join(dir, 'b'), edited)
      const [a, b] = [await chunkFile(join(dir, 'a'), DEFAULT_CHUNKER), await chunkFile(join(dir, 'b'), DEFAULT_CHUNKER)]
      expect(a.sha256).toBe(createHash('sha256').update(data).digest('hex'))
      expect(a.sha1).toBe(createHash('sha1').update(data).digest('hex'))
      expect(a.pieces).toHaveLength(8)
      expect(a.chunks!.reduce((n, c) => n + c.length, 0)).toBe(data.length)
      let off = 0
      for (const c of a.chunks!.slice(0, 5)) {
        expect(c.sha256).toBe(createHash('sha256').update(data.subarray(off, off + c.length)).digest('hex'))
        off += c.length
      }
      const held = new Set(a.chunks!.map((c) => c.sha256))
      const fresh = b.chunks!.filter((c) => !held.has(c.sha256))
      expect(fresh.length).toBeLessThanOrEqual(2)
      expect(fresh.reduce((n, c) => n + c.length, 0)).toBeLessThan(2 * DEFAULT_CHUNKER.max)
      // A file no larger than `whole` is one unit: no chunk list.
      await writeFile(join(dir, 'small'), data.subarray(0, DEFAULT_CHUNKER.whole))
      expect((await chunkFile(join(dir, 'small'), DEFAULT_CHUNKER)).chunks).toBeUndefined()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
