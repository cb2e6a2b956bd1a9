// A content-addressed store of blobs named by SHA-256: the repository servers' local store,
// the working copy's history store and the download staging area all use it. A blob is
// written to a temporary file, verified, fsynced, then renamed into place: a reader never
// sees a partial or unverified blob.
import { nodeCrypto } from '../node-crypto.ts'
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { open, rename, rm, stat, copyFile, link, type FileHandle } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import { UpswarmError } from '../errors.ts'
import { tempName } from './temp-files.ts'
import type { PackStore } from './pack-store.ts'

/** A blob's name, and the name of a fan-out directory (the first two hex digits of the blobs under it). */
export const HEX64 = /^[0-9a-f]{64}$/
export const FANOUT_DIR = /^[0-9a-f]{2}$/
/** In a store's root: its loose blobs are one fan-out level down (BlobStore.levels). */
export const FANOUT_MARKER = 'FANOUT-1'

/** A store's fan-out levels: 1 with the marker, 2 where fan-out directories are without it, 1 for a new store. */
function fanoutLevels(root: string): 1 | 2 {
  if (existsSync(join(root, FANOUT_MARKER))) return 1
  let names: string[]
  try {
    names = readdirSync(root)
  } catch {
    return 1
  }
  return names.some((n) => FANOUT_DIR.test(n)) ? 2 : 1
}
/** Read handles kept open for blobs being served piece by piece. */
const OPEN_HANDLES = 32

interface CachedHandle {
  fh: FileHandle
  users: number
  /** Out of the cache (blob removed, store closing): closed once its last reader is done. */
  dropped: boolean
  /** The blob's size, once asked (a blob never changes): a server's ranges cost no `stat` each. */
  size?: number
}

/**
 * Throws UPSWARM_E_HASH_MISMATCH, naming the blob and where it came from, unless what was read
 * has the expected SHA-256 and, when given, size and SHA-1.
 */
function checkDigests(sha256: string, where: string, got: { sha256: string; size: number; sha1?: string }, size?: number, sha1?: string): void {
  if (got.sha256 === sha256 && (size === undefined || got.size === size) && got.sha1 === sha1) return
  const expected = [...(size !== undefined ? [String(size)] : []), ...(sha1 !== undefined ? [`SHA-1 ${sha1}`] : [])]
  throw new UpswarmError('UPSWARM_E_HASH_MISMATCH',
    `blob ${sha256} from ${where} does not verify: got SHA-256 ${got.sha256}${got.sha1 === undefined ? '' : `, SHA-1 ${got.sha1}`} over ${got.size} bytes` +
    (expected.length > 0 ? ` (expected ${expected.join(', ')})` : ''))
}

export class BlobStore {
  readonly root: string
  /** Open read handles by blob, least recently used first (a blob is immutable once stored). */
  private readonly handles = new Map<string, CachedHandle>()
  /**
   * Set by closeHandles: later reads close their handle when done instead of caching it. A read
   * under way then (a peer's piece served from a daemon's view the update just replaced, a range
   * that got its turn as the server closed) would otherwise cache a handle nobody closes again,
   * left to the garbage collector (which closes it with a warning, whenever it runs).
   */
  private handlesClosed = false

  /** Issue 13 item 4: a repository server's packs; a unit in one of them is held like a loose blob. */
  packs: PackStore | undefined

  /**
   * Fan-out levels above a loose blob: 1 (`ab/<sha256>`, as git and OSTree lay out objects) in a
   * store this release made, 2 (`ab/cd/<sha256>`) in one an earlier release made, which keeps its
   * layout. With two levels nearly every new blob of a store under 65 536 blobs made a directory
   * of its own, and making a directory was 5 % of a sharing daemon's CPU in a swarm update
   * (issue 14 item 1); with one, a store makes 256 at most, and its garbage collection reads 257
   * directories instead of up to 65 793. Told by a marker file (FANOUT_MARKER) that a one-level
   * store writes with its first directory; a store with fan-out directories and no marker is an
   * earlier release's. Looked at on first use: a command that never touches the store (`status`)
   * does not pay for it.
   */
  get levels(): 1 | 2 {
    return (this.fanout ??= fanoutLevels(this.root))
  }

  private fanout: 1 | 2 | undefined

  constructor(root: string, packs?: PackStore) {
    this.root = root
    this.packs = packs
  }

  path(sha256: string): string {
    if (!HEX64.test(sha256)) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `not a SHA-256 hex digest: ${JSON.stringify(sha256.slice(0, 80))}`)
    return this.levels === 1 ? join(this.root, sha256.slice(0, 2), sha256) : join(this.root, sha256.slice(0, 2), sha256.slice(2, 4), sha256)
  }

  /** Directories this store made (or found) already: one mkdir each per process, not one per blob. */
  private readonly dirsMade = new Set<string>()

  /** One synchronous mkdir per directory and process (no thread-pool round trip). */
  private ensureDir(dir: string): void {
    if (this.dirsMade.has(dir)) return
    if (this.levels === 1 && !this.dirsMade.has(this.root)) {
      // The marker goes first: a store never holds a one-level directory without it.
      mkdirSync(this.root, { recursive: true })
      writeFileSync(join(this.root, FANOUT_MARKER), '')
      this.dirsMade.add(this.root)
    }
    mkdirSync(dir, { recursive: true })
    this.dirsMade.add(dir)
  }

  /** Renames into the store's fan-out directory, made again if something removed it meanwhile. */
  private async moveIn(tmp: string, final: string): Promise<void> {
    const dir = dirname(final)
    this.ensureDir(dir)
    try {
      await rename(tmp, final)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      // The store itself may be gone too: its marker is then written again with the directory.
      this.dirsMade.delete(dir)
      this.dirsMade.delete(this.root)
      this.ensureDir(dir)
      await rename(tmp, final)
    }
  }

  private tmpPath(): string {
    return tempName(join(this.root, 'tmp'))
  }

  /**
   * Waits for the packs' index (read on first use: a command that never touches the store does
   * not read it). Needed before the synchronous `hasSync`; the other methods wait by themselves.
   */
  async ready(): Promise<void> {
    await this.packs?.open()
  }

  /** The bytes of a unit a pack holds, or undefined when none does (a loose blob, or none). */
  async packed(sha256: string): Promise<Buffer | undefined> {
    await this.ready()
    const u = this.packs?.locate(sha256)
    return u ? ((await this.packs!.read(sha256, 0, u.length)) ?? undefined) : undefined
  }

  /**
   * Blobs already verified against signed metadata, kept at once: one pack when the store has
   * packs (a working copy's history: one file for a batch of small files, not a file each), else
   * a file each. Not fsynced: returns the files written, for the caller to make durable.
   */
  putVerifiedManySync(units: ReadonlyMap<string, Uint8Array>): string[] {
    if (units.size === 0) return []
    if (this.packs) return [this.packs.addVerifiedSync(units).file]
    for (const [sha, bytes] of units) this.putVerifiedBytesSync(sha, bytes)
    return [...units.keys()].map((sha) => this.path(sha))
  }

  /**
   * As putVerifiedManySync, for a caller that writes the pack itself (a file-writer thread): the
   * pack to write and `adopt` once it is written; undefined for a store without packs (the caller
   * puts the units with putVerifiedManySync).
   */
  prepareVerifiedPack(units: ReadonlyMap<string, Uint8Array>): ReturnType<PackStore['prepareVerified']> | undefined {
    return units.size > 0 ? this.packs?.prepareVerified(units) : undefined
  }

  async has(sha256: string): Promise<boolean> {
    await this.ready()
    // One synchronous lookup (issue 14 item 1): a promise `stat` costs a thread-pool round trip and,
    // for the usual answer while downloading (not held), an Error with its stack.
    return !!this.packs?.holds(sha256) || existsSync(this.path(sha256))
  }

  async size(sha256: string): Promise<number | undefined> {
    await this.ready()
    const packed = this.packs?.locate(sha256)
    if (packed) return packed.length
    const known = this.handles.get(sha256)?.size
    if (known !== undefined) return known
    try {
      const { size } = await stat(this.path(sha256))
      const open = this.handles.get(sha256)
      if (open) open.size = size
      return size
    } catch {
      return undefined
    }
  }

  /**
   * Streams `source` into the store, verifying SHA-256 (and size when given). On mismatch
   * nothing is stored and UPSWARM_E_HASH_MISMATCH names the blob and `where` it came from.
   */
  async put(sha256: string, source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream, where: string, size?: number): Promise<void> {
    const final = this.path(sha256)
    const tmp = this.tmpPath()
    this.ensureDir(dirname(tmp))
    const hash = nodeCrypto().createHash('sha256')
    let n = 0
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk)
        n += chunk.length
        cb(null, chunk)
      },
    })
    try {
      const out = createWriteStream(tmp, { flags: 'wx' })
      await pipeline(source as AsyncIterable<Uint8Array>, tap, out)
      checkDigests(sha256, where, { sha256: hash.digest('hex'), size: n }, size)
      await fsyncFile(tmp)
      await this.moveIn(tmp, final)
    } catch (err) {
      await rm(tmp, { force: true })
      if (err instanceof UpswarmError) throw err
      throw new UpswarmError('UPSWARM_E_IO', `cannot store blob ${sha256} from ${where} in ${this.root}: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Issue 13 item 4: bytes the caller verified (size, SHA-1, SHA-256) into the store, through a
   * temporary file and a rename (synchronous calls: small files by the batch) but without an fsync of their own: for the working copy's history
   * store, whose blobs a later run hashes again before it uses them (checkLocal), so one that a
   * power loss left short is fetched again rather than used. Never for a server's store.
   */
  putVerifiedBytesSync(sha256: string, bytes: Uint8Array): void {
    const final = this.path(sha256)
    const tmp = this.tmpPath()
    try {
      for (const dir of [dirname(tmp), dirname(final)]) this.ensureDir(dir)
      writeFileSync(tmp, bytes, { flag: 'wx' })
      renameSync(tmp, final)
    } catch (err) {
      rmSync(tmp, { force: true })
      throw new UpswarmError('UPSWARM_E_IO', `cannot store blob ${sha256} in ${this.root}: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * A synchronous `has` for many lookups in a row (issue 13 item 4): a loose blob is looked for
   * only where its first fan-out directory exists (the store's top level, read once), so the
   * 100 000 lookups of a first install into an empty store cost no `stat` each. Call `ready` first.
   */
  heldSync(): (sha256: string) => boolean {
    let top: string[] = []
    try {
      top = readdirSync(this.root)
    } catch {
      // No store yet: nothing loose in it.
    }
    const fanned = new Set(top.filter((n) => FANOUT_DIR.test(n)))
    return (sha256) => !!this.packs?.holds(sha256) || (fanned.has(sha256.slice(0, 2)) && existsSync(this.path(sha256)))
  }

  /** A fresh temporary path inside the store (same file system, so a rename commits it). */
  async stagingPath(): Promise<string> {
    const tmp = this.tmpPath()
    this.ensureDir(dirname(tmp))
    return tmp
  }

  /**
   * Verifies a file written elsewhere (e.g. by concurrent range writers at a stagingPath) and
   * moves it into the store; on mismatch it is deleted and UPSWARM_E_HASH_MISMATCH thrown.
   * With `sha1`, the same read also checks SHA-1: the blob is then verified as R-VERIFY asks
   * (size, SHA-1 and SHA-256) and the caller need not read it again. With `hashed`, the digests
   * the writer took as it wrote the file are checked instead of reading it. `sync: false` skips
   * the fsync, for a working copy's history store only (see putVerifiedBytesSync): a later run
   * hashes a blob there again before it uses it, and this run makes its copy in the tree durable.
   */
  async commitFile(sha256: string, tmp: string, where: string, size?: number, sha1?: string, hashed?: { sha256: string; sha1?: string; size: number }, opts: { sync?: boolean } = {}): Promise<void> {
    try {
      // Digests the writer took of the bytes as it wrote them, in order (issue 14 item 2): no second read.
      checkDigests(sha256, where, hashed ?? await digestsOf(tmp, sha1 !== undefined), size, sha1)
      if (opts.sync !== false) await fsyncFile(tmp)
      await this.moveIn(tmp, this.path(sha256))
    } catch (err) {
      await rm(tmp, { force: true })
      if (err instanceof UpswarmError) throw err
      throw new UpswarmError('UPSWARM_E_IO', `cannot store blob ${sha256} from ${where} in ${this.root}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Adds a file already on disk whose SHA-256 is known and verified (hard link, else copy). */
  async adoptVerifiedFile(sha256: string, file: string): Promise<void> {
    if (await this.has(sha256)) return
    const final = this.path(sha256)
    this.ensureDir(dirname(final))
    const tmp = this.tmpPath()
    this.ensureDir(dirname(tmp))
    try {
      await link(file, tmp).catch(() => copyFile(file, tmp))
      await rename(tmp, final)
    } catch (err) {
      await rm(tmp, { force: true })
      throw new UpswarmError('UPSWARM_E_IO', `cannot add ${file} to the blob store ${this.root}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Whole blobs, in the order asked (each must be held): packed ones a run of a pack at a time. */
  async readWhole(blobs: readonly (readonly [sha256: string, size: number])[]): Promise<(readonly [string, Buffer])[]> {
    await this.ready()
    const packed = this.packs ? await this.packs.readWhole(blobs.map(([sha]) => sha)) : new Map<string, Buffer>()
    return Promise.all(blobs.map(async ([sha, size]) => [sha, packed.get(sha) ?? (await this.readRange(sha, 0, size))] as const))
  }

  /** Reads `length` bytes at `offset` of a stored blob (into `into` when given and it is a loose blob). */
  async readRange(sha256: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const data = await this.readRangeIfPresent(sha256, offset, length, into)
    if (!data) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `blob ${sha256} is not in ${this.root}`)
    return data
  }

  /**
   * Reads `length` bytes at `offset` of a stored blob, or null when the store does not hold it.
   * Serving a blob piece by piece reuses one open handle (no stat, open and close per piece).
   * With `into` (at least `length` bytes), a loose blob's bytes are read into it.
   */
  async readRangeIfPresent(sha256: string, offset: number, length: number, into?: Buffer): Promise<Buffer | null> {
    if (this.packs) await this.ready()
    if (this.packs?.holds(sha256)) return this.packs.read(sha256, offset, length)
    const handle = await this.acquire(sha256)
    if (!handle) return null
    try {
      // A caller's buffer (a server's bulk port reuses its own) when it is long enough.
      const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length)
      let got = 0
      while (got < length) {
        const { bytesRead } = await handle.fh.read(buf, got, length - got, offset + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      return got === length ? buf : buf.subarray(0, got)
    } finally {
      handle.users--
      if (handle.dropped) this.closeIfIdle(handle)
      else this.trimHandles()
    }
  }

  private async acquire(sha256: string): Promise<CachedHandle | null> {
    const path = this.path(sha256)
    let handle = this.handles.get(sha256)
    if (handle) {
      this.handles.delete(sha256) // re-inserted below: most recently used last
    } else {
      let fh: FileHandle
      try {
        fh = await open(path, 'r')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
        throw new UpswarmError('UPSWARM_E_IO', `cannot read blob ${sha256} in ${this.root}: ${(err as Error).message}`, { cause: err })
      }
      // Another reader may have opened it meanwhile: keep one (no await until it is counted as used).
      const raced = this.handles.get(sha256)
      if (raced) {
        void fh.close().catch(() => {})
        handle = raced
        this.handles.delete(sha256)
      } else {
        handle = { fh, users: 0, dropped: false }
      }
    }
    handle.users++
    if (this.handlesClosed) handle.dropped = true
    else this.handles.set(sha256, handle)
    return handle
  }

  private trimHandles(): void {
    for (const [sha, h] of this.handles) {
      if (this.handles.size <= OPEN_HANDLES) break
      if (h.users === 0) this.dropHandle(sha)
    }
  }

  private dropHandle(sha256: string): void {
    const h = this.handles.get(sha256)
    if (!h) return
    this.handles.delete(sha256)
    h.dropped = true
    this.closeIfIdle(h)
  }

  private closeIfIdle(h: CachedHandle): void {
    if (h.users === 0) void h.fh.close().catch(() => {})
  }

  /** Closes the read handles kept open for serving (those in use, after their read); none is kept after. */
  closeHandles(): void {
    this.handlesClosed = true
    this.packs?.close()
    for (const sha of [...this.handles.keys()]) this.dropHandle(sha)
  }

  createReadStream(sha256: string, start?: number, end?: number): NodeJS.ReadableStream {
    const packed = this.packs?.createReadStream(sha256, start, end)
    if (packed) return packed
    return createReadStream(this.path(sha256), { start, end, highWaterMark: 1024 * 1024 })
  }

  async remove(sha256: string): Promise<void> {
    await this.ready()
    await this.packs?.forget(sha256)
    this.dropHandle(sha256)
    await rm(this.path(sha256), { force: true })
  }
}

export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Size, SHA-256 and (with `sha1`) SHA-1 of a file, in one read. */
async function digestsOf(file: string, sha1: boolean): Promise<{ sha256: string; sha1?: string; size: number }> {
  const hash = nodeCrypto().createHash('sha256')
  const hash1 = sha1 ? nodeCrypto().createHash('sha1') : null
  let size = 0
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer)
    hash1?.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return { sha256: hash.digest('hex'), size, ...(hash1 ? { sha1: hash1.digest('hex') } : {}) }
}
