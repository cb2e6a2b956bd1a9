import { describe, expect, it } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { isUpswarmError } from '../../infra/errors.ts'
import { unitsCovering, verifiedRange, type UnitChunk } from '../../infra/release/verified-range.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const PIECE = 64 * 1024

function entryOf(bytes: Buffer, withPieces: boolean): FileEntry {
  const pieces = Array.from({ length: Math.ceil(bytes.length / PIECE) }, (_, i) => sha(bytes.subarray(i * PIECE, (i + 1) * PIECE)))
  return { path: 'f.bin', kind: 'file', mode: 0o644, size: bytes.length, sha1: '0'.repeat(40), sha256: sha(bytes), ...(withPieces ? { pieces } : {}) }
}

/** The covering units' bytes as served (from `served`), in chunks of `chunk`. */
async function* chunksFrom(entry: FileEntry, served: Buffer, first: number, last: number, chunk: number): AsyncGenerator<UnitChunk> {
  for (const unit of unitsCovering(entry, PIECE, first, last)) {
    for (let offset = unit.start; offset < unit.end; offset += chunk) {
      const end = Math.min(unit.end, offset + chunk)
      yield { unit, offset, bytes: served.subarray(offset, end), source: 's1', last: end === unit.end }
    }
  }
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; error?: unknown }> {
  const parts: Uint8Array[] = []
  try {
    for await (const p of gen) parts.push(p)
    return { bytes: Buffer.concat(parts) }
  } catch (error) {
    return { bytes: Buffer.concat(parts), error }
  }
}

describe('verified range', () => {
  const file = randomBytes(5 * PIECE + 123)
  const entry = entryOf(file, true)

  it('proxy — a range across pieces comes out exact, from the pieces that cover it only', async () => {
    expect(unitsCovering(entry, PIECE, PIECE + 10, 3 * PIECE).map((u) => u.name)).toEqual(['piece 1', 'piece 2', 'piece 3'])
    const { bytes, error } = await collect(verifiedRange(chunksFrom(entry, file, PIECE + 10, 3 * PIECE, 10_000), PIECE + 10, 3 * PIECE, 'f.bin'))
    expect(error).toBeUndefined()
    expect(bytes.equals(file.subarray(PIECE + 10, 3 * PIECE + 1))).toBe(true)
  })

  it('proxy — a bad piece is never sent: the pieces before it are, then the error names the piece and its source', async () => {
    const served = Buffer.from(file)
    served[2 * PIECE + 5]! ^= 1
    const { bytes, error } = await collect(verifiedRange(chunksFrom(entry, served, 0, file.length - 1, 10_000), 0, file.length - 1, 'f.bin'))
    expect(bytes.equals(file.subarray(0, 2 * PIECE))).toBe(true)
    expect(isUpswarmError(error, 'UPSWARM_E_HASH_MISMATCH')).toBe(true)
    expect((error as Error).message).toMatch(/f\.bin: bytes 131072-196607 \(piece 2\) from s1 have SHA-256/)
    expect((error as { details: unknown }).details).toEqual({ sources: ['s1'] })
  })

  it('proxy — a large file without pieces streams, but its last chunk waits for the file hash', async () => {
    const large = randomBytes(20 * 1024 * 1024)
    const plain = entryOf(large, false)
    const served = Buffer.from(large)
    served[7]! ^= 1
    const { bytes, error } = await collect(verifiedRange(chunksFrom(plain, served, 0, large.length - 1, 1024 * 1024), 0, large.length - 1, 'f.bin'))
    expect(isUpswarmError(error, 'UPSWARM_E_HASH_MISMATCH')).toBe(true)
    expect(bytes.length).toBeGreaterThan(0)
    expect(bytes.length).toBeLessThanOrEqual(large.length - 1024 * 1024)
    const good = await collect(verifiedRange(chunksFrom(plain, large, 0, large.length - 1, 1024 * 1024), 0, large.length - 1, 'f.bin'))
    expect(good.bytes.equals(large)).toBe(true)
  })
})
