// How a blob downloaded from peers is cut into pieces, and what checks each (R-VERIFY, R-ACCEL-3):
// - fixed: format 1's pieces of `pieceSize` bytes, each checked against the signed manifest's piece
//   hash (a blob of one piece: against the blob's own SHA-256);
// - chunks: a format-2 file larger than one piece (docs/formats.md §1.7) has no piece hashes, but
//   its signed tree lists its content-defined chunks. A piece is a run of consecutive chunks of at
//   most 1 MiB in all (chunks are ≤ 256 KiB: about four to a piece), or 256 KiB in a large swarm
//   (piece-scheduler.ts runLength), and each chunk in it is checked against its own SHA-256. Every
//   client of the same release and swarm size groups the same chunks the same way.
// A client planning by chunks announces each run it verified as a byte range (`have-range`, which
// peers of earlier releases ignore), and also fixed piece k of PIECE_SIZE bytes (`have-piece`)
// once every run covering its bytes is verified; it counts a peer as holding run i when it
// announced that range, or every fixed piece the run overlaps. So clients planning either way, of
// this release or the one before, read each other's announcements correctly. (Fixed pieces alone
// were not enough: a client's runs from the servers are its stripe, every N-th run, and those
// rarely make a whole fixed piece — the others then saw no holder and asked the servers.)
import { UpswarmError } from '../../infra/errors.ts'
import { lastAtOrBefore } from '../../infra/sorted.ts'
import { pieceHashOf } from '../../infra/repo-client.ts'
import { PIECE_SIZE, sha256Hex } from '../../infra/release/hash.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'
import type { ChunkRef } from '../../infra/formats/tree-node.ts'

export interface PieceLayout {
  readonly size: number
  readonly count: number
  /** The announcement unit (`have-piece`'s pieceSize). */
  readonly announceSize: number
  offset(i: number): number
  length(i: number): number
  /** Whether `data` is piece `i`: its length and every hash the signed metadata gives for its bytes. */
  check(i: number, data: Uint8Array): boolean
  /** Piece `i`'s own SHA-256, when the metadata has one (a server's read checks it, and `check` is then the same test). */
  hash?(i: number): string | undefined
  /** Pieces are announced as byte ranges too (`have-range`): they do not follow the fixed grid. */
  readonly ranged: boolean
  /** The pieces holding bytes `offset` … `offset + length` (clamped to the blob), as [first, last]. */
  covering(offset: number, length: number): [number, number]
  /** Fixed pieces (announceSize) that piece `i` overlaps, as [first, last]. */
  announced(i: number): [number, number]
}

/** Format 1 (and any blob of one piece): pieces of `pieceSize`, checked by the manifest's piece hashes. */
export function fixedLayout(entry: FileEntry, pieceSize = PIECE_SIZE): PieceLayout {
  const size = entry.size
  const count = Math.max(1, Math.ceil(size / pieceSize))
  const length = (i: number): number => Math.min(pieceSize, size - i * pieceSize)
  return {
    size, count, announceSize: pieceSize, ranged: false,
    offset: (i) => i * pieceSize,
    length,
    check: (i, data) => data.length === length(i) && sha256Hex(data) === pieceHashOf(entry, i, pieceSize),
    hash: (i) => pieceHashOf(entry, i, pieceSize),
    covering: (offset, len) => [Math.floor(offset / pieceSize), Math.floor((Math.min(offset + len, size) - 1) / pieceSize)],
    announced: (i) => [i, i],
  }
}

/**
 * A format-2 file's pieces: runs of its chunks (in file order) of at most `runMax` bytes (a chunk
 * longer than that is a run of its own), each chunk checked against its SHA-256. Clients of one
 * swarm size cut the same runs; a peer that cut them otherwise is still read, by the ranges it
 * announced (PieceSession.peerHasRange) or its fixed pieces. Throws when a chunk is over
 * PIECE_SIZE or the chunks do not add up to the file's size (the caller then fetches the file
 * from the servers, checked whole).
 */
export function chunkLayout(entry: FileEntry, chunks: readonly ChunkRef[], runMax = PIECE_SIZE): PieceLayout {
  const pieceSize = PIECE_SIZE
  const size = entry.size
  // starts[i]: offset of piece i; firstChunk[i]: its first chunk; both with a sentinel at the end.
  const starts: number[] = []
  const firstChunk: number[] = []
  const chunkStarts: number[] = []
  let at = 0
  let pieceBytes = 0
  for (let c = 0; c < chunks.length; c++) {
    const len = chunks[c]!.length
    if (!(len > 0 && len <= pieceSize)) throw new UpswarmError('UPSWARM_E_MANIFEST', `chunk ${c} of ${entry.path} (blob ${entry.sha256}) is ${len} bytes in its chunk list; a chunk is 1 … ${pieceSize}`)
    if (starts.length === 0 || pieceBytes + len > runMax) {
      starts.push(at)
      firstChunk.push(c)
      pieceBytes = 0
    }
    chunkStarts.push(at)
    pieceBytes += len
    at += len
  }
  if (at !== size || chunks.length === 0) throw new UpswarmError('UPSWARM_E_MANIFEST', `the chunks of ${entry.path} (blob ${entry.sha256}) add up to ${at} bytes in its chunk list; the file is ${size}`)
  starts.push(size)
  firstChunk.push(chunks.length)
  const count = starts.length - 1
  const length = (i: number): number => starts[i + 1]! - starts[i]!
  /** The piece holding byte `offset` (the first piece starts at 0; the sentinel is not searched). */
  const pieceAt = (offset: number): number => Math.max(0, lastAtOrBefore(starts, offset, count))
  return {
    size, count, announceSize: PIECE_SIZE, ranged: true,
    offset: (i) => starts[i]!,
    length,
    check(i, data) {
      if (data.length !== length(i)) return false
      const base = starts[i]!
      for (let c = firstChunk[i]!; c < firstChunk[i + 1]!; c++) {
        const from = chunkStarts[c]! - base
        if (sha256Hex(data.subarray(from, from + chunks[c]!.length)) !== chunks[c]!.sha256) return false
      }
      return true
    },
    covering: (offset, len) => [pieceAt(offset), pieceAt(Math.min(offset + len, size) - 1)],
    announced: (i) => [Math.floor(starts[i]! / PIECE_SIZE), Math.floor((starts[i + 1]! - 1) / PIECE_SIZE)],
  }
}

/** Whether every piece holding bytes `offset` … `offset + length` of a layout is verified. */
export function covered(layout: PieceLayout, verified: Uint8Array, offset: number, length: number): boolean {
  if (offset >= layout.size || length <= 0) return false
  const [first, last] = layout.covering(offset, length)
  for (let i = first; i <= last; i++) if (verified[i] !== 1) return false
  return true
}

/**
 * The fixed pieces (announceSize) that became whole when piece `i` was verified: every byte of
 * each is in a verified piece. For a fixed layout, just `i`.
 */
export function newlyAnnounceable(layout: PieceLayout, verified: Uint8Array, i: number): number[] {
  const [first, last] = layout.announced(i)
  const out: number[] = []
  for (let k = first; k <= last; k++) {
    const from = k * layout.announceSize
    if (covered(layout, verified, from, Math.min(layout.announceSize, layout.size - from))) out.push(k)
  }
  return out
}
