// Streaming file hashing: SHA-1 (R-VERIFY, the patent's hash), SHA-256 (the security hash), and
// SHA-256 per fixed-size piece for files larger than one piece. Never loads a whole file.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'

/** Piece size of the manifest's per-piece hashes and of the P2P piece protocol. */
export const PIECE_SIZE = 1024 * 1024

export interface FileHashes {
  size: number
  sha1: string
  sha256: string
  /** SHA-256 of each PIECE_SIZE piece; absent when the file fits in one piece. */
  pieces?: string[]
}

export async function hashFile(path: string, pieceSize = PIECE_SIZE): Promise<FileHashes> {
  const sha1 = createHash('sha1')
  const sha256 = createHash('sha256')
  const pieces: string[] = []
  let piece = createHash('sha256')
  let inPiece = 0
  let size = 0
  for await (const chunk of createReadStream(path, { highWaterMark: pieceSize })) {
    const buf = chunk as Buffer
    sha1.update(buf)
    sha256.update(buf)
    size += buf.length
    let off = 0
    while (off < buf.length) {
      const take = Math.min(pieceSize - inPiece, buf.length - off)
      piece.update(buf.subarray(off, off + take))
      inPiece += take
      off += take
      if (inPiece === pieceSize) {
        pieces.push(piece.digest('hex'))
        piece = createHash('sha256')
        inPiece = 0
      }
    }
  }
  if (inPiece > 0) pieces.push(piece.digest('hex'))
  const out: FileHashes = { size, sha1: sha1.digest('hex'), sha256: sha256.digest('hex') }
  if (pieces.length > 1) out.pieces = pieces
  return out
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

export function sha1Hex(data: Uint8Array | string): string {
  return createHash('sha1').update(data).digest('hex')
}

/** Number of pieces of a file of `size` bytes. */
export function pieceCount(size: number, pieceSize = PIECE_SIZE): number {
  return Math.max(1, Math.ceil(size / pieceSize))
}
