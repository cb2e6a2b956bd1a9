// The working copy's binary stat index (ARCHITECTURE §4, issue 13 item 2): git's index for
// upswarm. One entry per path on disk or in the installed or target revision, sorted by path:
// its lstat data (kind, mode, size, mtime and ctime in s + ns, inode), the content hashes of a
// file when they were computed, and what the status needs besides the disk (ignored, a key of
// the base and of the target entry, the status found). The header names the context the
// statuses hold for (the two revisions, their manifest files, the ignore rules, the root
// directory), and a checksum of everything before it ends the file, as git's index has (format 1: SHA-1; format 2: CRC-32).
//
// Decoding builds no object per entry: parallel typed arrays and the path strings, so that a
// million entries fit in memory and a status of an unchanged tree touches nothing else.
import { nodeCrypto } from '../../node-crypto.ts'
import { builtin } from '../../lazy-builtin.ts'
import type { BigIntStats, Stats } from 'node:fs'
import type { MonitorToken } from './tree-watch.ts'

const MAGIC = Buffer.from('UPSWIDX\0', 'latin1')
/** Format 2 adds the file monitor's token to format 1's header; both are read. */
export const INDEX_FORMAT = 2
/** Format 1 ends with a SHA-1 of what comes before; format 2 with a CRC-32 (little-endian). */
const CHECKSUM_1 = 20
const CHECKSUM_2 = 4
const STAT_ID = 40
const HEADER_1 = 8 + 4 + 4 + 4 + 4 + 4 + 4 + STAT_ID * 3 + 32
/** The monitor's id (12 bytes), 4 reserved, the token's event number (a double). */
const TOKEN = 24
const HEADER = HEADER_1 + TOKEN
/** Header flags (the word at offset 12). */
const HAS_STATUSES = 1
const HAS_TOKEN = 2
const FIXED = 56
const NO_PARENT = 0xffffffff
export const KEY = 32
export const SHA1 = 20
export const SHA256 = 32

/** `addLinked`/`copyRun` parents: the root, or no directory in the index. */
export const PARENT_ROOT = -2
export const PARENT_NONE = -1
const encodeParent = (p: number): number => (p === PARENT_ROOT ? 0 : p === PARENT_NONE ? NO_PARENT : p + 1)

/** Entry kinds; ABSENT: versioned, not on disk. */
export const KIND = { absent: 0, file: 1, dir: 2, symlink: 3, other: 4 } as const

/** Entry flags. */
export const FLAG = {
  /** The entry carries the SHA-1 and SHA-256 of the file's contents at this stat data. */
  hashes: 1,
  ignored: 2,
  /** The installed revision has the path (its key follows). */
  base: 4,
  /** The target revision has the path (its key follows). */
  target: 8,
  /** The installed revision's entry is a file (a status compares the contents with it). */
  baseFile: 16,
  /** The target revision's entry is a file. */
  targetFile: 32,
  /** The revision's entry is a directory (the ignore rules' `name/` patterns, when the disk has nothing). */
  entryIsDir: 64,
  /** Format 2: the target's key is the base's (not stored twice: the usual case, 32 bytes an entry). */
  targetIsBase: 128,
} as const

/** Identity of a file by its stat data: a rewrite changes the ctime, a replacement the inode. */
export interface StatId {
  size: number
  mtimeSec: number
  mtimeNsec: number
  ctimeSec: number
  ctimeNsec: number
  ino: number
}

export const NO_STAT: StatId = { size: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0, ino: 0 }

/** What the statuses in the index were computed against. */
export interface IndexContext {
  /** Whether the entries' statuses and keys hold (false: a stat cache only, as an update leaves it). */
  statuses: boolean
  baseRev: number
  targetRev: number
  root: StatId
  baseManifest: StatId
  targetManifest: StatId
  /** SHA-256 of the ignore file's contents; zeros without one. */
  ignoreDigest: Buffer
}

const NS = 1_000_000_000n

/** Seconds (floored) and nanoseconds of a bigint ns time, as the kernel's timespec has them. */
function splitNs(ns: bigint): [number, number] {
  let sec = ns / NS
  let nsec = ns % NS
  if (nsec < 0n) {
    sec -= 1n
    nsec += NS
  }
  return [Number(sec), Number(nsec)]
}

/** The fields of a bigint lstat that identify a file's version (node's BigIntStats, or what a walk keeps of it). */
export type StatFields = Pick<BigIntStats, 'size' | 'ino' | 'mtimeNs' | 'ctimeNs'>

export function statIdOf(st: StatFields): StatId {
  const [mtimeSec, mtimeNsec] = splitNs(st.mtimeNs)
  const [ctimeSec, ctimeNsec] = splitNs(st.ctimeNs)
  return { size: Number(st.size), mtimeSec, mtimeNsec, ctimeSec, ctimeNsec, ino: Number(st.ino) }
}

/** Node's own conversion of a timespec to Stats' `mtimeMs` (lib/internal/fs/utils.js), bit for bit. */
export const msOf = (sec: number, nsec: number): number => sec * 1e3 + nsec / 1e6

/** Whether statuses computed in context `a` hold in `b` (the root directory aside: a walk or the monitor checks it). */
export function sameIndexContext(a: IndexContext, b: IndexContext): boolean {
  return a.statuses && b.statuses && a.baseRev === b.baseRev && a.targetRev === b.targetRev &&
    sameStatId(a.baseManifest, b.baseManifest) && sameStatId(a.targetManifest, b.targetManifest) && a.ignoreDigest.equals(b.ignoreDigest)
}

export function sameStatId(a: StatId, b: StatId): boolean {
  return a.size === b.size && a.mtimeSec === b.mtimeSec && a.mtimeNsec === b.mtimeNsec && a.ctimeSec === b.ctimeSec && a.ctimeNsec === b.ctimeNsec && a.ino === b.ino
}

/** Whether a (number) lstat result still has the stat data of `id`. */
export function statMatches(st: Stats, id: StatId): boolean {
  return st.size === id.size && st.ino === id.ino && st.mtimeMs === msOf(id.mtimeSec, id.mtimeNsec) && st.ctimeMs === msOf(id.ctimeSec, id.ctimeNsec)
}

/** One entry to write; hashes and keys are raw bytes. */
export interface IndexRecord {
  path: string
  kind: number
  flags: number
  status: number
  mode: number
  stat: StatId
  sha1?: Uint8Array
  sha256?: Uint8Array
  baseKey?: Uint8Array
  targetKey?: Uint8Array
}

/** Builds an index file in one growing buffer; entries must be added in path order. */
export class IndexWriter {
  private buf: Buffer
  private at = HEADER
  private count = 0
  /** Entries that can hold others (directories on disk or in a revision), by path: the parents' numbers. */
  private readonly dirs = new Map<string, number>()

  /** `sizeHint`: the bytes expected (a rewrite: the old index's), so the buffer does not grow by copies. */
  constructor(sizeHint = 0) {
    this.buf = Buffer.allocUnsafe(Math.max(1 << 16, sizeHint))
  }

  /** Stores the entry's parent (its number + 1; 0: the root; NO_PARENT: none in the index) and notes a directory. */
  private link(o: number, path: string, kind: number, flags: number): void {
    const cut = path.lastIndexOf('/')
    const parent = cut < 0 ? 0 : (this.dirs.get(path.slice(0, cut)) ?? NO_PARENT - 1) + 1
    this.buf.writeUInt32LE(parent, o + 20)
    if (kind === KIND.dir || flags & FLAG.entryIsDir) this.dirs.set(path, this.count)
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.at + n) size *= 2
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, 0, this.at)
    this.buf = next
  }

  add(r: IndexRecord): void {
    const pathLen = Buffer.byteLength(r.path)
    const hashes = r.sha1 && r.sha256
    const sameKey = !!r.baseKey && !!r.targetKey && Buffer.compare(r.baseKey, r.targetKey) === 0
    const flags = (r.flags & ~(FLAG.hashes | FLAG.base | FLAG.target | FLAG.targetIsBase)) | (hashes ? FLAG.hashes : 0) | (r.baseKey ? FLAG.base : 0) | (r.targetKey ? FLAG.target : 0) | (sameKey ? FLAG.targetIsBase : 0)
    this.room(FIXED + pathLen + SHA1 + SHA256 + 2 * KEY)
    const b = this.buf
    let o = this.at
    b.writeUInt16LE(pathLen, o)
    b[o + 2] = r.kind
    b[o + 3] = flags
    b[o + 4] = r.status
    b.fill(0, o + 5, o + 8)
    b.writeUInt32LE(r.mode >>> 0, o + 8)
    b.writeUInt32LE(r.stat.mtimeNsec, o + 12)
    b.writeUInt32LE(r.stat.ctimeNsec, o + 16)
    this.link(o, r.path, r.kind, flags)
    b.writeDoubleLE(r.stat.size, o + 24)
    b.writeDoubleLE(r.stat.mtimeSec, o + 32)
    b.writeDoubleLE(r.stat.ctimeSec, o + 40)
    b.writeDoubleLE(r.stat.ino, o + 48)
    o += FIXED
    o += b.write(r.path, o)
    if (hashes) {
      b.set(r.sha1!, o)
      b.set(r.sha256!, o + SHA1)
      o += SHA1 + SHA256
    }
    if (r.baseKey) {
      b.set(r.baseKey, o)
      o += KEY
    }
    if (r.targetKey && !sameKey) {
      b.set(r.targetKey, o)
      o += KEY
    }
    this.at = o
    this.count++
  }

  /**
   * Adds an entry whose parent's number in this index is known: PARENT_ROOT, PARENT_NONE or the
   * number (what `copyRun` needs around it: it keeps no directory table).
   */
  addLinked(r: IndexRecord, parent: number): void {
    const at = this.at
    this.add(r)
    this.buf.writeUInt32LE(encodeParent(parent), at + 20)
  }

  /**
   * Copies entries [start, end) of a decoded index as bytes (unchanged paths), with the parent
   * numbers `parentOf` gives for this index (no path decoded: a status that changed a few paths
   * among 100 000 rewrites the index without building a string per entry).
   */
  copyRun(from: DecodedIndex, start: number, end: number, parentOf: (i: number) => number): void {
    if (end <= start) return
    const first = from.offset[start]!
    const bytes = from.offset[end]! - first
    this.room(bytes)
    from.buf.copy(this.buf, this.at, first, first + bytes)
    for (let k = start; k < end; k++) this.buf.writeUInt32LE(encodeParent(parentOf(k)), this.at + (from.offset[k]! - first) + 20)
    this.at += bytes
    this.count += end - start
  }

  /** Copies entry `i` of a decoded index as it is (an unchanged path). */
  copy(from: DecodedIndex, i: number): void {
    const start = from.offset[i]!
    const end = from.offset[i + 1]!
    this.room(end - start)
    from.buf.copy(this.buf, this.at, start, end)
    this.link(this.at, from.paths[i]!, from.kind[i]!, from.flags[i]!)
    this.at += end - start
    this.count++
  }

  /**
   * The file's bytes: header, entries, checksum. `monitor`: the file monitor's token taken before
   * the disk was read, so the next status asks it what changed since (issue 13 item 2).
   */
  finish(ctx: IndexContext, monitor: MonitorToken | null = null): Buffer {
    this.room(CHECKSUM_2)
    return sealIndex(this.buf, this.at, this.count, ctx, monitor)
  }

  /** One entry's bytes as `add` writes them (its parent field as `add` links it in an empty writer). */
  static encode(r: IndexRecord): Buffer {
    const w = new IndexWriter(HEADER + FIXED + Buffer.byteLength(r.path) + SHA1 + SHA256 + 2 * KEY)
    w.add(r)
    return w.buf.subarray(HEADER, w.at)
  }
}

/** Writes the header of an index whose entries end at `end` and its checksum after them; the file's bytes. */
function sealIndex(b: Buffer, end: number, count: number, ctx: IndexContext, monitor: MonitorToken | null): Buffer {
  MAGIC.copy(b, 0)
  b.writeUInt32LE(INDEX_FORMAT, 8)
  b.writeUInt32LE((ctx.statuses ? HAS_STATUSES : 0) | (monitor ? HAS_TOKEN : 0), 12)
  b.fill(0, HEADER_1, HEADER)
  if (monitor) {
    b.write(monitor.id, HEADER_1, 12, 'hex')
    b.writeDoubleLE(monitor.seq, HEADER_1 + 16)
  }
  b.writeUInt32LE(count, 16)
  b.writeUInt32LE(ctx.baseRev, 20)
  b.writeUInt32LE(ctx.targetRev, 24)
  b.writeUInt32LE(0, 28)
  writeStatId(b, 32, ctx.root)
  writeStatId(b, 32 + STAT_ID, ctx.baseManifest)
  writeStatId(b, 32 + 2 * STAT_ID, ctx.targetManifest)
  ctx.ignoreDigest.copy(b, 32 + 3 * STAT_ID, 0, 32)
  b.writeUInt32LE(crc32(b.subarray(0, end)), end)
  return b.subarray(0, end + CHECKSUM_2)
}

/**
 * CRC-32 (zlib's): node's own since 20.15 (4 GB/s here), else a table in JavaScript. The index is a
 * cache whose file is replaced whole by a rename: its checksum catches a torn or damaged file,
 * which a CRC-32 does as well as the SHA-1 of format 1, at a third of the cost on 19 MB (issue 13).
 */
let zlibCrc32: ((b: Uint8Array) => number) | null | undefined
function crc32(b: Uint8Array): number {
  // zlib is loaded on first use (2 ms of a status that the monitor answers from its summary, which reads no index).
  if (zlibCrc32 === undefined) {
    const z = builtin('node:zlib') as { crc32?: (b: Uint8Array) => number }
    zlibCrc32 = typeof z.crc32 === 'function' ? z.crc32 : null
  }
  return zlibCrc32 ? zlibCrc32(b) : tableCrc32(b)
}

/** CRC-32 in JavaScript, for a node without zlib.crc32 (before 20.15); exported for its test. */
export const tableCrc32 = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return (b: Uint8Array): number => {
    let c = 0xffffffff
    for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]!) & 0xff]! ^ (c >>> 8)
    return (c ^ 0xffffffff) >>> 0
  }
})()

/**
 * The index `d` (format 2, as read) with some entries replaced in place: possible when no entry
 * comes or goes and each new entry has its old one's length (an edited file: same path, same
 * fields). Parents stay. Returns undefined when it is not possible; `d.buf` is then untouched.
 * The usual rewrite of a status that found a few edited files, without copying the index.
 */
export function patchIndex(d: DecodedIndex, records: Map<number, IndexRecord>, ctx: IndexContext, monitor: MonitorToken | null): Buffer | undefined {
  if (d.buf.readUInt32LE(8) !== INDEX_FORMAT) return undefined
  const encoded: [number, Buffer][] = []
  for (const [i, r] of records) {
    const e = IndexWriter.encode(r)
    if (e.length !== d.offset[i + 1]! - d.offset[i]!) return undefined
    encoded.push([i, e])
  }
  for (const [i, e] of encoded) {
    const at = d.offset[i]!
    const parent = d.buf.readUInt32LE(at + 20)
    e.copy(d.buf, at)
    d.buf.writeUInt32LE(parent, at + 20)
  }
  const end = d.buf.length - CHECKSUM_2
  return sealIndex(d.buf, end, d.count, ctx, monitor)
}

function writeStatId(b: Buffer, o: number, s: StatId): void {
  b.writeDoubleLE(s.size, o)
  b.writeDoubleLE(s.mtimeSec, o + 8)
  b.writeUInt32LE(s.mtimeNsec, o + 16)
  b.writeDoubleLE(s.ctimeSec, o + 20)
  b.writeUInt32LE(s.ctimeNsec, o + 28)
  b.writeDoubleLE(s.ino, o + 32)
}

function readStatId(b: Buffer, o: number): StatId {
  return { size: b.readDoubleLE(o), mtimeSec: b.readDoubleLE(o + 8), mtimeNsec: b.readUInt32LE(o + 16), ctimeSec: b.readDoubleLE(o + 20), ctimeNsec: b.readUInt32LE(o + 28), ino: b.readDoubleLE(o + 32) }
}

/** An index read back: entry i is paths[i] with the typed arrays' i-th values. */
export interface DecodedIndex {
  context: IndexContext
  /** The file monitor's token the index was written with (format 2), or null. */
  monitor: MonitorToken | null
  count: number
  buf: Buffer
  /** Every path, decoded on first use (entries out of order throw IndexFormatError then). */
  paths: string[]
  /** Entry i's path alone, without decoding the others. */
  pathAt(i: number): string
  /** Entry i's stat data alone (as the arrays below have it), without decoding the others'. */
  statsAt(i: number): { mode: number; size: number; mtimeMs: number; ctimeMs: number; ino: number }
  kind: Uint8Array
  flags: Uint8Array
  status: Uint8Array
  mode: Uint32Array
  size: Float64Array
  /** mtime and ctime as node's Stats give them (ms), for comparing with `lstatSync` at once. */
  mtimeMs: Float64Array
  ctimeMs: Float64Array
  ino: Float64Array
  /** Number of the entry's directory in the index: `count` for the root, -1 when the index has none. */
  parent: Int32Array
  /** Byte offset of each entry; offset[count] is the end of the entries. */
  offset: Uint32Array
  /** Where the entry's hashes, base key and target key start in buf; -1 when absent. */
  hashAt: Int32Array
  baseKeyAt: Int32Array
  targetKeyAt: Int32Array
}

/** Why an index file could not be used; the caller falls back to hashing what it needs. */
export class IndexFormatError extends Error {
  override name = 'IndexFormatError'
}

/** Decodes and checks an index file's bytes; throws IndexFormatError naming what is wrong and where. */
export function decodeIndex(buf: Buffer, file: string, opts: { written?: boolean } = {}): DecodedIndex {
  const bad = (what: string): never => {
    throw new IndexFormatError(`stat index ${file}: ${what}`)
  }
  if (buf.length < HEADER_1 + CHECKSUM_2) bad(`truncated (${buf.length} bytes, a header alone is ${HEADER_1 + CHECKSUM_2})`)
  if (!buf.subarray(0, 8).equals(MAGIC)) bad('not an upswarm stat index (bad magic bytes)')
  const format = buf.readUInt32LE(8)
  if (format !== 1 && format !== INDEX_FORMAT) bad(`format ${format}, this version reads formats 1 and ${INDEX_FORMAT}`)
  const header = format === 1 ? HEADER_1 : HEADER
  const sum = format === 1 ? CHECKSUM_1 : CHECKSUM_2
  if (buf.length < header + sum) bad(`truncated (${buf.length} bytes, a header alone is ${header + sum})`)
  const end = buf.length - sum
  // (`written`: bytes this process just made, not read back from disk.)
  const good = opts.written || (format === 1
    ? nodeCrypto().createHash('sha1').update(buf.subarray(0, end)).digest().equals(buf.subarray(end))
    : crc32(buf.subarray(0, end)) === buf.readUInt32LE(end))
  if (!good) bad('checksum mismatch (truncated or corrupt)')
  const count = buf.readUInt32LE(16)
  const headerFlags = buf.readUInt32LE(12)
  const monitor = format > 1 && headerFlags & HAS_TOKEN ? { id: buf.toString('hex', HEADER_1, HEADER_1 + 12), seq: buf.readDoubleLE(HEADER_1 + 16) } : null
  const context: IndexContext = {
    statuses: (headerFlags & HAS_STATUSES) === HAS_STATUSES,
    baseRev: buf.readUInt32LE(20),
    targetRev: buf.readUInt32LE(24),
    root: readStatId(buf, 32),
    baseManifest: readStatId(buf, 32 + STAT_ID),
    targetManifest: readStatId(buf, 32 + 2 * STAT_ID),
    ignoreDigest: Buffer.from(buf.subarray(32 + 3 * STAT_ID, 32 + 3 * STAT_ID + 32)),
  }
  // One pass reads what every use needs: where each entry starts, its kind, flags, status and
  // parent. The paths and the stat data are decoded on first use (issue 13 item 2: a status that
  // the file monitor answers reads neither for an unchanged tree).
  const offset = new Uint32Array(count + 1)
  const kind = new Uint8Array(count)
  const flagsOf = new Uint8Array(count)
  const status = new Uint8Array(count)
  const parentOf = new Int32Array(count)
  const hashAt = new Int32Array(count)
  const baseKeyAt = new Int32Array(count)
  const targetKeyAt = new Int32Array(count)
  let o = header
  // Plain byte reads (no Buffer method per field): this loop is most of a no-op status's decoding.
  const b = buf
  for (let i = 0; i < count; i++) {
    if (o + FIXED > end) bad(`entry ${i} of ${count} runs past the end`)
    offset[i] = o
    const pathLen = b[o]! | (b[o + 1]! << 8)
    const flags = b[o + 3]!
    kind[i] = b[o + 2]!
    flagsOf[i] = flags
    status[i] = b[o + 4]!
    const parent = (b[o + 20]! | (b[o + 21]! << 8) | (b[o + 22]! << 16)) + b[o + 23]! * 0x1000000
    if (parent !== NO_PARENT && parent > i) bad(`entry ${i} names a parent after it`)
    parentOf[i] = parent === 0 ? count : parent === NO_PARENT ? -1 : parent - 1
    o += FIXED + pathLen
    if (flags & FLAG.hashes) {
      hashAt[i] = o
      o += SHA1 + SHA256
    } else hashAt[i] = -1
    if (flags & FLAG.base) {
      baseKeyAt[i] = o
      o += KEY
    } else baseKeyAt[i] = -1
    if (flags & FLAG.targetIsBase) targetKeyAt[i] = baseKeyAt[i]!
    else if (flags & FLAG.target) {
      targetKeyAt[i] = o
      o += KEY
    } else targetKeyAt[i] = -1
    if (o > end) bad(`entry ${i} of ${count} runs past the end`)
  }
  if (o !== end) bad(`${end - o} bytes after the last of ${count} entries`)
  offset[count] = o
  const pathAt = (i: number): string => buf.toString('utf8', offset[i]! + FIXED, offset[i]! + FIXED + buf.readUInt16LE(offset[i]!))
  const statsAt = (i: number): { mode: number; size: number; mtimeMs: number; ctimeMs: number; ino: number } => {
    const at = offset[i]!
    return { mode: buf.readUInt32LE(at + 8), size: buf.readDoubleLE(at + 24), mtimeMs: msOf(buf.readDoubleLE(at + 32), buf.readUInt32LE(at + 12)), ctimeMs: msOf(buf.readDoubleLE(at + 40), buf.readUInt32LE(at + 16)), ino: buf.readDoubleLE(at + 48) }
  }
  const d = {
    context, monitor, count, buf, offset, kind, flags: flagsOf, status, parent: parentOf, hashAt, baseKeyAt, targetKeyAt, pathAt, statsAt,
  } as Partial<DecodedIndex> as DecodedIndex
  const settle = <K extends keyof DecodedIndex>(key: K, value: DecodedIndex[K]): DecodedIndex[K] => {
    Object.defineProperty(d, key, { value, enumerable: true })
    return value
  }
  Object.defineProperty(d, 'paths', {
    configurable: true, enumerable: true,
    get: () => {
      const paths = new Array<string>(count)
      for (let i = 0; i < count; i++) {
        paths[i] = pathAt(i)
        if (i > 0 && !(paths[i - 1]! < paths[i]!)) bad(`entries out of order at ${JSON.stringify(paths[i])}`)
      }
      return settle('paths', paths)
    },
  })
  const stats = (): void => {
    const mode = new Uint32Array(count)
    const size = new Float64Array(count)
    const mtimeMs = new Float64Array(count)
    const ctimeMs = new Float64Array(count)
    const ino = new Float64Array(count)
    for (let i = 0; i < count; i++) {
      const e = statsAt(i)
      mode[i] = e.mode
      size[i] = e.size
      mtimeMs[i] = e.mtimeMs
      ctimeMs[i] = e.ctimeMs
      ino[i] = e.ino
    }
    settle('mode', mode)
    settle('size', size)
    settle('mtimeMs', mtimeMs)
    settle('ctimeMs', ctimeMs)
    settle('ino', ino)
  }
  for (const key of ['mode', 'size', 'mtimeMs', 'ctimeMs', 'ino'] as const) {
    Object.defineProperty(d, key, {
      configurable: true, enumerable: true,
      get: () => {
        stats()
        return d[key]
      },
    })
  }
  return d
}

/** The stat data of entry i, as written. */
export function entryStatId(d: DecodedIndex, i: number): StatId {
  const o = d.offset[i]!
  const b = d.buf
  return { size: d.size[i]!, mtimeSec: b.readDoubleLE(o + 32), mtimeNsec: b.readUInt32LE(o + 12), ctimeSec: b.readDoubleLE(o + 40), ctimeNsec: b.readUInt32LE(o + 16), ino: d.ino[i]! }
}

/** Entry i of a decoded index as a record to write (hashes and keys are views of its buffer). */
export function recordOf(d: DecodedIndex, i: number): IndexRecord {
  const at = d.hashAt[i]!
  const base = d.baseKeyAt[i]!
  const target = d.targetKeyAt[i]!
  return {
    path: d.paths[i]!, kind: d.kind[i]!, flags: d.flags[i]!, status: d.status[i]!, mode: d.mode[i]!, stat: entryStatId(d, i),
    ...(at >= 0 ? { sha1: d.buf.subarray(at, at + SHA1), sha256: d.buf.subarray(at + SHA1, at + SHA1 + SHA256) } : {}),
    ...(base >= 0 ? { baseKey: d.buf.subarray(base, base + KEY) } : {}),
    ...(target >= 0 ? { targetKey: d.buf.subarray(target, target + KEY) } : {}),
  }
}

/**
 * The key of a version as `sameEntry` compares it (machines/file-status.facts.ts): files by SHA-1,
 * SHA-256 and permission bits, symlinks by target, directories by kind. Equal keys ⇔ same version.
 */
export function versionKey(e: { kind: 'file'; sha1: string; sha256: string; mode: number } | { kind: 'symlink'; target: string } | { kind: 'dir' }): Buffer {
  const text = e.kind === 'file' ? `f\0${e.sha1}\0${e.sha256}\0${e.mode & 0o7777}` : e.kind === 'symlink' ? `l\0${e.target}` : 'd'
  // One-shot (no Hash object): after a first install of 100 000 files these were 0.4 s of the index's 0.9 s.
  return nodeCrypto().hash('sha256', text, 'buffer') as unknown as Buffer
}

/** The entry of `path` in the index (binary search over its sorted paths), or -1. */
export function entryOf(index: DecodedIndex, path: string): number {
  let lo = 0
  let hi = index.count - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const p = index.pathAt(mid)
    if (p === path) return mid
    if (p < path) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}

/** The first entry whose path is not before `path`. */
export function firstFrom(index: DecodedIndex, path: string): number {
  let lo = 0
  let hi = index.count
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (index.pathAt(mid) < path) lo = mid + 1
    else hi = mid
  }
  return lo
}
