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

/**
 * A blob's SHA-256 and (when asked) SHA-1 from its pieces as a download accepts them, in any
 * order (issue 14 item 1): a piece that arrives next in order is hashed from memory, where it
 * was already; those after a gap are read back once, at the end, from the file they were written
 * to. A blob of one piece never reads back, and a swarm's out-of-order pieces cost one read, not
 * the read stream of the whole file that the commit would otherwise make.
 */
export class InOrderDigests {
  private sha256: ReturnType<ReturnType<typeof nodeCrypto>['createHash']> | undefined
  private sha1: ReturnType<ReturnType<typeof nodeCrypto>['createHash']> | undefined
  private single: { sha256: string; sha1?: string } | undefined
  private next = 0
  /** Bytes hashed so far (pieces may differ in length: a format-2 file's chunk runs). */
  private hashed = 0

  constructor(private readonly size: number, private readonly withSha1: boolean, private readonly pieceSize = PIECE_SIZE) {}

  /** Piece `i` was verified and written; `sha256` is its own digest, already taken. */
  accepted(i: number, data: Uint8Array, sha256: string): void {
    if (i !== this.next) return
    this.next++
    if (this.size <= this.pieceSize) {
      // The piece is the whole blob: its digest is the blob's (one-shot hashes, no Hash objects).
      this.single = { sha256, ...(this.withSha1 ? { sha1: sha1Hex(data) } : {}) }
      return
    }
    this.sha256 ??= nodeCrypto().createHash('sha256')
    if (this.withSha1) this.sha1 ??= nodeCrypto().createHash('sha1')
    this.sha256.update(data)
    this.sha1?.update(data)
    this.hashed += data.length
  }

  /** The digests of the whole blob, reading from `fh` the pieces not hashed on arrival. */
  async digests(fh: { read(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesRead: number }> }): Promise<{ sha256: string; sha1?: string; size: number }> {
    if (this.single) return { ...this.single, size: this.size }
    this.sha256 ??= nodeCrypto().createHash('sha256')
    if (this.withSha1) this.sha1 ??= nodeCrypto().createHash('sha1')
    let size = Math.min(this.size, this.hashed)
    if (size < this.size) {
      const buf = readBuffers.take()
      try {
        while (size < this.size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, this.size - size), size)
          if (bytesRead === 0) break
          this.sha256.update(buf.subarray(0, bytesRead))
          this.sha1?.update(buf.subarray(0, bytesRead))
          size += bytesRead
        }
      } finally {
        readBuffers.give(buf)
      }
    }
    return { sha256: this.sha256.digest('hex'), ...(this.sha1 ? { sha1: this.sha1.digest('hex') } : {}), size }
  }
}
