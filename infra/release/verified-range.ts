// R-VERIFY for bytes passed on to someone else (the proxy's HTTP gateway and SFTP door): every
// byte sent is covered by a SHA-256 of the signed manifest — one of the file's piece hashes, or
// the file's hash when it has no piece list — and is checked before it leaves. The check
// streams: a unit (piece) is held until its hash matches, and only a unit larger than MAX_HELD
// (a file without pieces) lets its earlier bytes go first; its last chunk is always held, so a
// response with bad bytes can never look complete.
import { createHash, type Hash } from 'node:crypto'
import { UpswarmError } from '../errors.ts'
import type { FileEntry } from './manifest.ts'

/** Bytes of one unit kept back while it is hashed. */
const MAX_HELD = 8 * 1024 * 1024

/** A stretch of a file [start, end) with the SHA-256 the signed manifest gives it. */
export interface HashUnit {
  start: number
  end: number
  sha256: string
  /** "piece 3" or "the file", for messages. */
  name: string
}

/** The units that cover bytes [first, last] (inclusive) of `entry`, in order. */
export function unitsCovering(entry: FileEntry, pieceSize: number, first: number, last: number): HashUnit[] {
  if (!entry.pieces) return [{ start: 0, end: entry.size, sha256: entry.sha256, name: 'the file' }]
  const units: HashUnit[] = []
  for (let i = Math.floor(first / pieceSize); i * pieceSize <= last; i++) {
    const sha256 = entry.pieces[i]
    if (sha256 === undefined) throw new UpswarmError('UPSWARM_E_MANIFEST', `${entry.path}: the manifest lists no hash for piece ${i}`)
    units.push({ start: i * pieceSize, end: Math.min(entry.size, (i + 1) * pieceSize), sha256, name: `piece ${i}` })
  }
  return units
}

/** Bytes of one unit from one source, in file order; `last` marks the unit's final chunk. */
export interface UnitChunk {
  unit: HashUnit
  offset: number
  bytes: Uint8Array
  source: string
  last: boolean
}

/**
 * The bytes [first, last] of a file out of `chunks` (every byte of the covering units, in
 * order), each released only once it is verified as above. A unit whose hash does not match
 * throws UPSWARM_E_HASH_MISMATCH with `details.sources`: the sources that sent its bytes.
 */
export async function* verifiedRange(chunks: AsyncIterable<UnitChunk>, first: number, last: number, what: string): AsyncGenerator<Uint8Array> {
  let unit: HashUnit | undefined
  let hash: Hash = createHash('sha256')
  let held: UnitChunk[] = []
  let heldBytes = 0
  const sources = new Set<string>()
  const inRange = (c: UnitChunk): Uint8Array | undefined => {
    const from = Math.max(first, c.offset)
    const to = Math.min(last + 1, c.offset + c.bytes.length)
    return from < to ? c.bytes.subarray(from - c.offset, to - c.offset) : undefined
  }
  for await (const chunk of chunks) {
    if (chunk.unit !== unit) {
      unit = chunk.unit
      hash = createHash('sha256')
      sources.clear()
    }
    hash.update(chunk.bytes)
    sources.add(chunk.source)
    if (heldBytes + chunk.bytes.length > MAX_HELD && !chunk.last) {
      for (const c of held) {
        const part = inRange(c)
        if (part) yield part
      }
      held = []
      heldBytes = 0
    }
    held.push(chunk)
    heldBytes += chunk.bytes.length
    if (!chunk.last) continue
    const got = hash.digest('hex')
    if (got !== unit.sha256) {
      const from = [...sources].join(', ')
      throw new UpswarmError('UPSWARM_E_HASH_MISMATCH',
        `${what}: bytes ${unit.start}-${unit.end - 1} (${unit.name}) from ${from} have SHA-256 ${got}, but the signed manifest says ${unit.sha256}; not sending them`,
        { details: { sources: [...sources] } })
    }
    for (const c of held) {
      const part = inRange(c)
      if (part) yield part
    }
    held = []
    heldBytes = 0
  }
  if (held.length > 0) throw new UpswarmError('UPSWARM_E_IO', `${what}: the bytes of ${unit?.name} ended before the piece did`)
}
