// Content-defined chunking (docs/formats.md §1.7; issues 13 and 15): FastCDC with normalised
// chunking (level 2 of the paper: a stricter mask before the average size, a looser one after) over
// a 32-bit gear hash. Cut points depend only on the bytes around them, so an insertion moves the
// cuts near it and every other chunk keeps its hash: a client finds the chunks it already holds in
// any local file (old revision, other file, history) by cutting it the same way.
//
// "fastcdc-2020" in a release's `chunker` means exactly this definition:
// - GEAR[i] = the first 4 bytes (big-endian) of SHA-256("upswarm-fastcdc-gear" ‖ byte i), i = 0…255;
// - a chunk's first `min` bytes are not hashed; from there h = (h << 1) + GEAR[byte] (mod 2^32), h = 0
//   at the chunk's start;
// - with b = log2(avg): before `avg` bytes the chunk ends after a byte where the top b + 2 bits of h
//   are 0, from `avg` on where the top b − 2 bits are; at `max` bytes it ends regardless;
// - the file's last chunk is what remains (it may be shorter than `min`).
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { FileHasher, PIECE_SIZE, type FileHashes } from '../release/hash.ts'
import type { ChunkRef } from './tree-node.ts'

export interface ChunkerParams { id: string; min: number; avg: number; max: number; whole: number }

const GEAR = new Int32Array(256)
for (let i = 0; i < 256; i++) GEAR[i] = createHash('sha256').update('upswarm-fastcdc-gear').update(Buffer.of(i)).digest().readInt32BE(0)

const topBits = (bits: number): number => (bits <= 0 ? 0 : bits >= 32 ? -1 : (~0 << (32 - bits)) | 0)

/** Streaming cut-point finder: push bytes, learn where chunks end. */
export class FastCdc {
  private len = 0
  private h = 0
  private readonly maskS: number
  private readonly maskL: number

  constructor(readonly params: ChunkerParams) {
    if (params.id !== 'fastcdc-2020') throw new Error(`chunker ${JSON.stringify(params.id)} is unknown to this upswarm (it knows fastcdc-2020)`)
    const bits = Math.round(Math.log2(params.avg))
    this.maskS = topBits(bits + 2)
    this.maskL = topBits(bits - 2)
  }

  /** Feeds `buf`; calls `onCut(end)` with the offset in `buf` just past each chunk that ends in it. */
  push(buf: Uint8Array, onCut: (end: number) => void): void {
    const { min, avg, max } = this.params
    const { maskS, maskL } = this
    const n = buf.length
    let i = 0
    let len = this.len
    let h = this.h
    while (i < n) {
      if (len < min) {
        const skip = Math.min(min - len, n - i)
        len += skip
        i += skip
        continue
      }
      // Hashing phase: this chunk is at least `min` long. Two loops with precomputed bounds (the
      // strict mask up to `avg`, the loose one up to `max`) keep the per-byte work to a lookup, a
      // shift-add and a test.
      let cut = false
      if (len < avg) {
        const stop = Math.min(n, i + (avg - len))
        const from = i
        for (; i < stop; i++) {
          h = ((h << 1) + GEAR[buf[i]!]!) | 0
          if ((h & maskS) === 0) {
            cut = true
            i++
            break
          }
        }
        len += i - from
      }
      if (!cut && len >= avg) {
        const stop = Math.min(n, i + (max - len))
        const from = i
        for (; i < stop; i++) {
          h = ((h << 1) + GEAR[buf[i]!]!) | 0
          if ((h & maskL) === 0) {
            cut = true
            i++
            break
          }
        }
        len += i - from
        if (len >= max) cut = true
      }
      if (cut) {
        onCut(i)
        len = 0
        h = 0
      }
    }
    this.len = len
    this.h = h
  }

  /** Bytes of the chunk in progress (the file's last chunk when the input ends). */
  get pending(): number {
    return this.len
  }
}

export interface FileChunks extends FileHashes {
  /** The chunks in file order, when the file is larger than `whole` (otherwise the file is one unit). */
  chunks?: ChunkRef[]
}

/**
 * One read pass over a file: SHA-1 and SHA-256 of the whole (R-VERIFY), format 1's piece hashes
 * (FileHasher, as hashFile), and format 2's content-defined chunks with their SHA-256. Never
 * holds more than one read buffer.
 */
export async function chunkFile(path: string, params: ChunkerParams, pieceSize = PIECE_SIZE): Promise<FileChunks> {
  const c = new ChunkingHasher(params, pieceSize)
  for await (const data of createReadStream(path, { highWaterMark: pieceSize })) c.update(data as Buffer)
  return c.digest()
}

/** chunkFile over bytes already in memory (a small file read whole). */
export function chunkBuffer(buf: Buffer, params: ChunkerParams, pieceSize = PIECE_SIZE): FileChunks {
  const c = new ChunkingHasher(params, pieceSize)
  c.update(buf)
  return c.digest()
}

/** The state of chunkFile's one pass, fed buffer by buffer. */
class ChunkingHasher {
  private readonly hasher: FileHasher
  private readonly cdc: FastCdc
  private readonly chunks: ChunkRef[] = []
  private chunk = createHash('sha256')
  private chunkLen = 0

  constructor(private readonly params: ChunkerParams, pieceSize: number) {
    this.hasher = new FileHasher(pieceSize)
    this.cdc = new FastCdc(params)
  }

  update(buf: Buffer): void {
    this.hasher.update(buf)
    // A file of at most `whole` bytes is one unit: its chunks are never used.
    if (this.hasher.size > this.params.whole) this.cut(buf)
    else this.pendingSmall.push(buf)
  }

  /** Buffers of a file that may still turn out to be one unit (cut only once it passes `whole`). */
  private pendingSmall: Buffer[] = []

  private cut(buf: Buffer): void {
    if (this.pendingSmall.length) {
      const before = this.pendingSmall
      this.pendingSmall = []
      for (const b of before) this.cutOne(b)
    }
    this.cutOne(buf)
  }

  private cutOne(buf: Buffer): void {
    let start = 0
    this.cdc.push(buf, (end) => {
      this.chunk.update(buf.subarray(start, end))
      this.chunks.push({ length: this.chunkLen + end - start, sha256: this.chunk.digest('hex'), zlen: 0 })
      this.chunk = createHash('sha256')
      this.chunkLen = 0
      start = end
    })
    this.chunk.update(buf.subarray(start))
    this.chunkLen += buf.length - start
  }

  digest(): FileChunks {
    const out: FileChunks = this.hasher.digest()
    if (out.size > this.params.whole) {
      if (this.chunkLen > 0) this.chunks.push({ length: this.chunkLen, sha256: this.chunk.digest('hex'), zlen: 0 })
      out.chunks = this.chunks
    }
    return out
  }
}
