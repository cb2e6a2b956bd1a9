// Streaming file hashing: SHA-1 (R-VERIFY, the patent's hash), SHA-256 (the security hash), and
// SHA-256 per fixed-size piece for files larger than one piece. Never loads a whole file.
import { nodeCrypto } from '../node-crypto.ts'
import { open } from 'node:fs/promises'
import { BufferPool } from '../buffer-pool.ts'

/** Piece size of the manifest's per-piece hashes and of the P2P piece protocol. */
export const PIECE_SIZE = 1024 * 1024

export interface FileHashes {
  size: number
  sha1: string
  sha256: string
  /** SHA-256 of each PIECE_SIZE piece; absent when the file fits in one piece. */
  pieces?: string[]
}

/**
 * The hashes of a file fed in order, buffer by buffer: SHA-1 and SHA-256 of the whole and SHA-256
 * of each `pieceSize` piece. One read pass can feed it and other hashers (format 2's chunks) alike.
 */
export class FileHasher {
  private readonly sha1 = nodeCrypto().createHash('sha1')
  private readonly sha256 = nodeCrypto().createHash('sha256')
  private readonly pieces: string[] = []
  private piece = nodeCrypto().createHash('sha256')
  private inPiece = 0
  size = 0

  constructor(private readonly pieceSize = PIECE_SIZE) {}

  update(buf: Buffer): void {
    this.sha1.update(buf)
    this.sha256.update(buf)
    this.size += buf.length
    let off = 0
    while (off < buf.length) {
      const take = Math.min(this.pieceSize - this.inPiece, buf.length - off)
      this.piece.update(buf.subarray(off, off + take))
      this.inPiece += take
      off += take
      if (this.inPiece === this.pieceSize) {
        this.pieces.push(this.piece.digest('hex'))
        this.piece = nodeCrypto().createHash('sha256')
        this.inPiece = 0
      }
    }
  }

  digest(): FileHashes {
    if (this.inPiece > 0) this.pieces.push(this.piece.digest('hex'))
    const out: FileHashes = { size: this.size, sha1: this.sha1.digest('hex'), sha256: this.sha256.digest('hex') }
    if (this.pieces.length > 1) out.pieces = this.pieces
    return out
  }
}

/**
 * Read buffers kept from file to file: memory fresh for each 1 MiB read (a read stream's way)
 * costs page faults and the collector's time — hashing a 6 MB file took 2–3 × as long here
 * (docs/decisions.md, "Reused buffers").
 */
const readBuffers = new BufferPool(PIECE_SIZE, 4)

export async function hashFile(path: string, pieceSize = PIECE_SIZE): Promise<FileHashes> {
  const hasher = new FileHasher(pieceSize)
  const fh = await open(path, 'r')
  const buf = readBuffers.take()
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null)
      if (bytesRead === 0) break
      hasher.update(buf.subarray(0, bytesRead))
    }
  } finally {
    readBuffers.give(buf)
    await fh.close()
  }
  return hasher.digest()
}

// One-shot (no Hash object): a first install verifies 100 000 small files with them.
export function sha256Hex(data: Uint8Array | string): string {
  return nodeCrypto().hash('sha256', data, 'hex')
}

export function sha1Hex(data: Uint8Array | string): string {
  return nodeCrypto().hash('sha1', data, 'hex')
}

/** Number of pieces of a file of `size` bytes. */
export function pieceCount(size: number, pieceSize = PIECE_SIZE): number {
  return Math.max(1, Math.ceil(size / pieceSize))
}
