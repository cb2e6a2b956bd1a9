// Codec 3 of the delta index (docs/formats.md §1.6 "delta codecs"; issue 15 items 1, 3, 5): a
// target file as copies from a base file and inserted bytes, the whole compressed with brotli
// (node:zlib, no dependency), made at publish time when both revisions are at hand. A delta whose
// base is the zero hash is the target alone, compressed: what a client that holds no base fetches.
//
// Raw layout, before brotli: `varint targetLength`, `varint baseLength`, `varint instructionBytes`,
// the instructions, then the inserted bytes of every insert, in order (kept apart so that brotli
// sees literal data in one run). An instruction is `varint (length << 1 | copy)`, and a copy is
// followed by `zigzag varint` of its base offset minus the end of the previous copy (small numbers
// for edits in place). Every byte a delta produces is checked by the caller against the signed
// SHA-1 and SHA-256 (R-VERIFY); the decoder itself refuses anything out of bounds.
import { open } from 'node:fs/promises'
import { builtin } from '../lazy-builtin.ts'
import { UpswarmError } from '../errors.ts'

/** The codec number in a delta-index entry (§1.6; 1 and 2 are named there, unknown ones skipped). */
export const UPSWARM_DELTA_CODEC = 3
/** A delta-index `base` of all zeros: the target alone, compressed (no base needed). */
export const NO_BASE = '0'.repeat(64)
/** Bases and targets larger than this are not delta-encoded (they are read whole into memory). */
export const DELTA_MAX_BYTES = 16 * 1024 * 1024
/** Brotli quality at publish (0…11): 9 is ~10× faster than 11 and within a few % of its size. */
const QUALITY = 9
/** Shortest copy worth an instruction. */
const MIN_MATCH = 24

export class DeltaError extends UpswarmError {
  constructor(message: string) {
    super('UPSWARM_E_MANIFEST', message)
  }
}

class Writer {
  buf = Buffer.allocUnsafe(256)
  n = 0
  private room(k: number): void {
    if (this.n + k <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k))
    this.buf.copy(next, 0, 0, this.n)
    this.buf = next
  }
  varint(v: number): void {
    this.room(10)
    while (v >= 0x80) {
      this.buf[this.n++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    this.buf[this.n++] = v
  }
  zigzag(v: number): void {
    this.varint(v < 0 ? -2 * v - 1 : 2 * v)
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.n)
  }
}

class Reader {
  pos = 0
  constructor(private readonly buf: Uint8Array, private readonly end: number, private readonly what: string) {}
  varint(): number {
    let v = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new DeltaError(`${this.what}: truncated`)
      const b = this.buf[this.pos++]!
      v += (b & 0x7f) * mul
      if (b < 0x80) return v
      mul *= 0x80
    }
    throw new DeltaError(`${this.what}: a number is too long`)
  }
  zigzag(): number {
    const z = this.varint()
    return z % 2 === 1 ? -(z + 1) / 2 : z / 2
  }
  get done(): boolean {
    return this.pos >= this.end
  }
}

const MULT = 0x01000193

/** The instructions and literals that make `target` from `base` (Rabin-Karp over blocks of the base). */
function diffBytes(base: Uint8Array, target: Uint8Array): Buffer {
  const instr = new Writer()
  const literals: Buffer[] = []
  const tl = target.length
  const bl = base.length
  // One index entry per block of the base; blocks grow with the base so the index stays ≤ 2^20.
  const block = Math.max(16, Math.ceil(bl / (1 << 20)))
  const blocks = Math.floor(bl / block)
  let size = 1
  while (size < blocks * 2) size <<= 1
  const mask = size - 1
  const table = new Int32Array(size).fill(-1)
  let pow = 1 // MULT^(block-1), to take the oldest byte out of the rolling hash
  for (let i = 1; i < block; i++) pow = Math.imul(pow, MULT)
  const hashAt = (buf: Uint8Array, at: number): number => {
    let h = 0
    for (let i = 0; i < block; i++) h = (Math.imul(h, MULT) + buf[at + i]!) | 0
    return h
  }
  for (let b = blocks - 1; b >= 0; b--) table[hashAt(base, b * block) & mask] = b * block // first occurrence wins
  let lit = 0
  let lastCopyEnd = 0
  const emitInsert = (end: number): void => {
    if (end <= lit) return
    instr.varint((end - lit) * 2)
    literals.push(Buffer.from(target.buffer, target.byteOffset + lit, end - lit))
  }
  let i = 0
  let h = blocks > 0 && tl >= block ? hashAt(target, 0) : 0
  while (blocks > 0 && i + block <= tl) {
    const cand = table[h & mask]!
    let matched = 0
    let back = 0
    if (cand >= 0) {
      let len = 0
      while (cand + len < bl && i + len < tl && base[cand + len] === target[i + len]) len++
      if (len >= block) {
        while (i - back > lit && cand - back > 0 && base[cand - back - 1] === target[i - back - 1]) back++
        if (len + back >= MIN_MATCH) matched = len
      }
    }
    if (matched > 0) {
      emitInsert(i - back)
      const from = cand - back
      instr.varint((matched + back) * 2 + 1)
      instr.zigzag(from - lastCopyEnd)
      lastCopyEnd = from + matched + back
      i += matched
      lit = i
      if (i + block <= tl) h = hashAt(target, i)
      continue
    }
    if (i + block < tl) h = (Math.imul(h - Math.imul(target[i]!, pow), MULT) + target[i + block]!) | 0
    i++
  }
  emitInsert(tl)
  const head = new Writer()
  head.varint(tl)
  head.varint(bl)
  const ins = instr.bytes()
  head.varint(ins.length)
  return Buffer.concat([head.bytes(), ins, ...literals])
}

const compress = (raw: Buffer): Buffer => {
  const zlib = builtin('node:zlib')
  const zc = zlib.constants
  return zlib.brotliCompressSync(raw, {
    params: { [zc.BROTLI_PARAM_QUALITY]: QUALITY, [zc.BROTLI_PARAM_SIZE_HINT]: raw.length, [zc.BROTLI_PARAM_LGWIN]: 24 },
  })
}

/** The delta (codec 3) that makes `target` from `base`; no base: `target` compressed alone. */
export function encodeDelta(base: Uint8Array | undefined, target: Uint8Array): Buffer {
  if (target.length > DELTA_MAX_BYTES || (base && base.length > DELTA_MAX_BYTES)) {
    throw new UpswarmError('UPSWARM_E_PUBLISH', `delta encoding is for files of at most ${DELTA_MAX_BYTES} bytes`)
  }
  return compress(diffBytes(base ?? new Uint8Array(0), target))
}

/** Reads ranges of the base (a file on disk, or bytes). */
export interface DeltaBase {
  size: number
  /** `length` bytes at `offset`; they stay valid until the next read (applyDelta writes them out first). */
  read(offset: number, length: number): Promise<Uint8Array>
}

/** A base held in memory (a small blob read from a pack). */
export function bytesBase(bytes: Uint8Array): DeltaBase & { close(): Promise<void> } {
  return {
    size: bytes.length,
    async read(offset, length) {
      if (offset + length > bytes.length) throw new DeltaError(`the delta base ends at ${bytes.length}, before ${offset + length}`)
      return bytes.subarray(offset, offset + length)
    },
    close: async () => {},
  }
}

export async function fileBase(path: string): Promise<DeltaBase & { close(): Promise<void> }> {
  const fh = await open(path, 'r')
  let size: number
  try {
    ({ size } = await fh.stat())
  } catch (err) {
    await fh.close() // the caller gets no base to close
    throw err
  }
  // One buffer for every read: memory fresh for each 1 MiB read (page faults, the collector's
  // external memory) made a 6 MB rebuild 70 ms here instead of 14 (docs/decisions.md, "Reused buffers").
  let scratch: Buffer | undefined
  return {
    size,
    async read(offset, length) {
      if (!scratch || scratch.length < length) scratch = Buffer.allocUnsafeSlow(Math.max(length, Math.min(size, 1 << 20)))
      const buf = scratch.subarray(0, length)
      const { bytesRead } = await fh.read(buf, 0, length, offset)
      if (bytesRead !== length) throw new DeltaError(`the delta base ${path} ended at ${offset + bytesRead} (it changed while being read?)`)
      return buf
    },
    close: () => fh.close(),
  }
}

/**
 * Rebuilds the target from a delta and its base, handing the bytes to `write` in order; `size` is
 * the target's signed size (the delta must say the same). Anything inconsistent — a copy outside
 * the base, literals that run out or are left over, a wrong length — is refused; the bytes are
 * the caller's to verify against the signed hashes.
 */
export async function applyDelta(delta: Uint8Array, base: DeltaBase | undefined, size: number, write: (bytes: Uint8Array) => Promise<void> | void, what = 'delta'): Promise<void> {
  let raw: Buffer
  try {
    // A target of `size` bytes never needs more than this many raw bytes (instructions ≤ 2 varints per 24 B).
    raw = builtin('node:zlib').brotliDecompressSync(delta, { maxOutputLength: size + Math.ceil(size / 4) + 1024 })
  } catch (err) {
    throw new DeltaError(`${what}: does not decompress (${(err as Error).message})`)
  }
  const head = new Reader(raw, raw.length, what)
  const tl = head.varint()
  const bl = head.varint()
  const il = head.varint()
  if (tl !== size) throw new DeltaError(`${what}: makes ${tl} bytes, the signed size is ${size}`)
  if (bl !== (base?.size ?? 0)) throw new DeltaError(`${what}: was made from a base of ${bl} bytes, this one has ${base?.size ?? 0}`)
  if (head.pos + il > raw.length) throw new DeltaError(`${what}: truncated instructions`)
  const ins = new Reader(raw, head.pos + il, what)
  ins.pos = head.pos
  let litPos = head.pos + il
  let out = 0
  let lastCopyEnd = 0
  while (!ins.done) {
    const op = ins.varint()
    const len = Math.floor(op / 2)
    if (len === 0 || out + len > tl) throw new DeltaError(`${what}: an instruction runs past the target's ${tl} bytes`)
    if (op % 2 === 0) {
      if (litPos + len > raw.length) throw new DeltaError(`${what}: inserted bytes run out`)
      await write(raw.subarray(litPos, litPos + len))
      litPos += len
    } else {
      const from = lastCopyEnd + ins.zigzag()
      if (!base || from < 0 || from + len > base.size) throw new DeltaError(`${what}: copies bytes ${from}…${from + len} of a ${base?.size ?? 0}-byte base`)
      for (let at = 0; at < len; at += 1 << 20) await write(await base.read(from + at, Math.min(1 << 20, len - at)))
      lastCopyEnd = from + len
    }
    out += len
  }
  if (out !== tl) throw new DeltaError(`${what}: makes ${out} of ${tl} bytes`)
  if (litPos !== raw.length) throw new DeltaError(`${what}: ${raw.length - litPos} inserted bytes are left over`)
}

/** Applies a delta to bytes in memory (tests, the publisher's self-check). */
export async function applyDeltaToBuffer(delta: Uint8Array, base: Uint8Array | undefined, size: number): Promise<Buffer> {
  const parts: Uint8Array[] = []
  const b = base && { size: base.length, read: async (o: number, l: number) => base.subarray(o, o + l) }
  await applyDelta(delta, b, size, (bytes) => {
    parts.push(Buffer.from(bytes))
  })
  return Buffer.concat(parts)
}
