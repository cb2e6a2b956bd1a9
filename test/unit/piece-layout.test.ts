// A format-2 file's pieces for the swarm (actors/share-daemon/piece-layout.ts; R-VERIFY,
// R-ACCEL-3): runs of its content-defined chunks, every chunk checked by its own hash, announced
// in format 1's fixed pieces so that clients planning either way read each other.
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { chunkLayout, covered, fixedLayout, newlyAnnounceable } from '../../actors/share-daemon/piece-layout.ts'
import { chunkBuffer } from '../../infra/formats/fastcdc.ts'
import { DEFAULT_CHUNKER } from '../../infra/formats/release.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import { LARGE_SWARM_RUN, runLength, SIZED_MIN_SWARM, SIZED_VIEWS } from '../../actors/share-daemon/piece-scheduler.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'

function file(bytes: Buffer): { entry: FileEntry; chunks: NonNullable<ReturnType<typeof chunkBuffer>['chunks']> } {
  const h = chunkBuffer(bytes, DEFAULT_CHUNKER)
  // A format-2 entry: no piece hashes.
  const entry: FileEntry = { path: 'big.bin', kind: 'file', mode: 0o644, size: h.size, sha1: h.sha1, sha256: h.sha256 }
  return { entry, chunks: h.chunks! }
}

describe('piece layout', () => {
  const bytes = randomBytes(3 * PIECE_SIZE + 12_345)
  const { entry, chunks } = file(bytes)
  const layout = chunkLayout(entry, chunks)

  it('groups consecutive chunks into pieces of at most one piece size that cover the file exactly, in order', () => {
    expect(chunks.length).toBeGreaterThan(16)
    let at = 0
    for (let i = 0; i < layout.count; i++) {
      expect(layout.offset(i)).toBe(at)
      expect(layout.length(i)).toBeGreaterThan(0)
      expect(layout.length(i)).toBeLessThanOrEqual(PIECE_SIZE)
      at += layout.length(i)
    }
    expect(at).toBe(bytes.length)
    // Each piece but the last is as full as the next chunk allows: no more pieces than needed.
    expect(layout.count).toBeLessThanOrEqual(Math.ceil(bytes.length / (PIECE_SIZE - DEFAULT_CHUNKER.max)))
    expect(layout.hash).toBeUndefined()
  })

  it('accepts each true piece and refuses one with any single byte changed, a short one, or another piece', () => {
    for (let i = 0; i < layout.count; i++) {
      const piece = bytes.subarray(layout.offset(i), layout.offset(i) + layout.length(i))
      expect(layout.check(i, piece)).toBe(true)
      for (const at of [0, Math.floor(piece.length / 2), piece.length - 1]) {
        const bad = Buffer.from(piece)
        bad[at] = bad[at]! ^ 1
        expect(layout.check(i, bad)).toBe(false)
      }
      expect(layout.check(i, piece.subarray(1))).toBe(false)
    }
    expect(layout.check(0, bytes.subarray(layout.offset(1), layout.offset(1) + layout.length(0)))).toBe(false)
  })

  it('finds the pieces a byte range needs, and announces a fixed piece only once every byte of it is verified', () => {
    const verified = new Uint8Array(layout.count)
    expect(layout.covering(0, 1)).toEqual([0, 0])
    expect(layout.covering(bytes.length - 1, 10)).toEqual([layout.count - 1, layout.count - 1])
    const announced = new Set<number>()
    // Verify the pieces back to front: fixed piece k is announced when its last covering piece lands.
    for (let i = layout.count - 1; i >= 0; i--) {
      verified[i] = 1
      for (const k of newlyAnnounceable(layout, verified, i)) {
        expect(announced.has(k)).toBe(false)
        announced.add(k)
        const from = k * PIECE_SIZE
        expect(covered(layout, verified, from, Math.min(PIECE_SIZE, bytes.length - from))).toBe(true)
      }
      // Nothing announced covers an unverified byte.
      for (const k of announced) {
        const [first, last] = layout.covering(k * PIECE_SIZE, PIECE_SIZE)
        for (let j = first; j <= last; j++) expect(verified[j]).toBe(1)
      }
    }
    expect([...announced].sort((a, b) => a - b)).toEqual([0, 1, 2, 3])
    // A fixed piece's holder holds each chunk piece inside it: the pieces a chunk piece overlaps.
    for (let i = 0; i < layout.count; i++) {
      const [a, b] = layout.announced(i)
      expect(a).toBe(Math.floor(layout.offset(i) / PIECE_SIZE))
      expect(b).toBe(Math.floor((layout.offset(i) + layout.length(i) - 1) / PIECE_SIZE))
    }
  })

  it('in a large swarm, cuts runs of at most LARGE_SWARM_RUN, each checked as before and announced in the same fixed pieces; in a swarm the view sees whole, runs of a piece', () => {
    const view = 51
    expect(runLength(undefined, view, PIECE_SIZE)).toBe(PIECE_SIZE)
    expect(runLength(SIZED_MIN_SWARM, 2, PIECE_SIZE)).toBe(PIECE_SIZE)
    expect(runLength(SIZED_VIEWS * view, view, PIECE_SIZE)).toBe(PIECE_SIZE)
    expect(runLength(SIZED_VIEWS * view + 1, view, PIECE_SIZE)).toBe(LARGE_SWARM_RUN)
    const short = chunkLayout(entry, chunks, LARGE_SWARM_RUN)
    expect(short.count).toBeGreaterThan(2 * layout.count)
    let at = 0
    for (let i = 0; i < short.count; i++) {
      expect(short.offset(i)).toBe(at)
      expect(short.length(i)).toBeLessThanOrEqual(LARGE_SWARM_RUN)
      expect(short.check(i, bytes.subarray(at, at + short.length(i)))).toBe(true)
      expect(short.announced(i)[0]).toBe(Math.floor(at / PIECE_SIZE))
      at += short.length(i)
    }
    expect(at).toBe(bytes.length)
    // (A short run may straddle two long ones: a peer holds it when its announced ranges cover it
    // together, swarm-pieces.test.ts.)
    // A chunk longer than the run's limit is a run of its own.
    const big = chunkLayout(entry, chunks, 1)
    expect(big.count).toBe(chunks.length)
  })

  it('refuses chunks that do not add up to the file, or a chunk larger than a piece', () => {
    expect(() => chunkLayout(entry, chunks.slice(1))).toThrow(/add up to/)
    expect(() => chunkLayout({ ...entry, size: entry.size + 1 }, chunks)).toThrow(/add up to/)
    expect(() => chunkLayout(entry, [{ length: entry.size, sha256: entry.sha256, zlen: 0 }])).toThrow(/1 … 1048576/)
  })

  it('keeps format 1: fixed pieces checked by the manifest, announced as themselves', () => {
    const small = randomBytes(1000)
    const f = file(small).entry
    const fixed = fixedLayout(f)
    expect(fixed.count).toBe(1)
    expect(fixed.hash?.(0)).toBe(f.sha256)
    expect(fixed.check(0, small)).toBe(true)
    expect(fixed.check(0, Buffer.concat([small.subarray(1), Buffer.from([0])]))).toBe(false)
    const v = new Uint8Array(1)
    v[0] = 1
    expect(newlyAnnounceable(fixed, v, 0)).toEqual([0])
  })
})
