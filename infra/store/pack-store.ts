// A repository server's packs on disk (docs/formats.md §1.9; issue 13 item 4): each pack is kept
// whole as `<id>.pack`, as received, once its header hashed to its id and every unit to its name;
// the units are then served from it by offset, as git serves objects from its packs. Writing one
// file per pack (one fsync) instead of one per unit is what lets a server take a release of 100 000
// small files at disk speed. The index (unit → pack, offset, length) is in memory, rebuilt from the
// packs' headers when the server starts.
import { createReadStream, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { UpswarmError } from '../errors.ts'
import { tempName } from './temp-files.ts'
import { PackReader, packHeader } from '../formats/pack.ts'
import { PackedUnitTable, type PackedAt } from './digest-table.ts'
import { eachLimited } from '../parallel.ts'

const HEX64 = /^[0-9a-f]{64}$/
/** The bytes before a pack's header body (format, type, body length), and the longest body read. */
const PACK_PREFIX = 6
const HEADER_MAX = 4 * 1024 * 1024

/** Pack headers read at once when the packs are opened. */
const PACK_READS = 8
/** Units at most this far apart in a pack are read together (the gap is read and dropped). */
const RUN_GAP = 16 * 1024
/** The most one read of a run takes. */
const RUN_MAX = 8 * 1024 * 1024

export type PackedUnit = PackedAt

export class PackStore {
  /** Unit → pack, offset, length: a compact table (a million units in 99 MiB of RSS, not a Map's 191). */
  private readonly units = new PackedUnitTable()
  /** Units per pack still listed: a pack whose last unit is forgotten (prune) is deleted. */
  private readonly live = new Map<string, number>()
  private readonly handles = new Map<string, Promise<FileHandle>>()
  /** Set by close: a read after it (one under way as the store closed) closes its own handle, as BlobStore does. */
  private closed = false

  /** `tmp`: where packs are written before they are renamed in (same file system; default `dir/tmp`). */
  constructor(readonly dir: string, private readonly tmpDir = join(dir, 'tmp')) {}

  private file(pack: string): string {
    return join(this.dir, `${pack}.pack`)
  }

  private opened: Promise<void> | undefined

  /**
   * Reads every stored pack's header (checked against the pack's id) into the index, once: later
   * calls wait for the same reading (a working copy's history opens its packs on first use only).
   */
  open(): Promise<void> {
    this.opened ??= this.load().catch((err: unknown) => {
      this.opened = undefined // a later call tries again
      throw err
    })
    return this.opened
  }

  private async load(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true })
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] // no pack written yet
      throw err
    })
    // Headers read PACK_READS at a time (issue 15 item 4: one after the other, the few packs of a
    // working copy's history cost a small update 8 ms here), each indexed as it is read.
    const ids = names.map((name) => (name.endsWith('.pack') ? name.slice(0, -5) : '')).filter((id) => HEX64.test(id))
    await eachLimited(ids, PACK_READS, async (id) => {
      const header = await this.readHeader(id)
      // A pack this process wrote meanwhile (addVerifiedSync) is indexed already.
      if (header && !this.live.has(id)) this.index(id, header)
    })
  }

  /** A stored pack's header, checked against its id and its file's size; undefined (and the file removed) when it does not hold. */
  private async readHeader(id: string): Promise<PackReader | undefined> {
    const reader = new PackReader(id, this.file(id))
    try {
      // The header only (checked against the id): the units are checked where they are used
      // (a client re-hashes a blob before staging it; a peer or client checks what it is sent),
      // so one rotten unit costs that unit, not every unit of its pack.
      const fh = await open(this.file(id), 'r')
      try {
        const prefix = Buffer.alloc(PACK_PREFIX)
        await fh.read(prefix, 0, PACK_PREFIX, 0)
        const header = Buffer.alloc(PACK_PREFIX + Math.min(prefix.readUInt32LE(2), HEADER_MAX))
        const { bytesRead } = await fh.read(header, 0, header.length, 0)
        await reader.push(header.subarray(0, bytesRead))
        if (!reader.headerDone) throw new Error('no whole header')
        // A pack cut short (a disk that lost its tail) would serve short units: not kept.
        const last = reader.units!.at(-1)!
        if ((await fh.stat()).size !== last.offset + last.length) throw new Error('not the size its header says')
      } finally {
        await fh.close()
      }
    } catch {
      await rm(this.file(id), { force: true }) // unreadable: fetched again by the next sync
      return undefined
    }
    return reader
  }

  private index(id: string, reader: Pick<PackReader, 'units'>): void {
    let n = 0
    for (const u of reader.units!) {
      // A unit another pack holds already stays there: each unit counts toward one pack's life.
      if (this.units.addIfAbsent(u.sha256, { pack: id, offset: u.offset, length: u.length })) n++
    }
    this.live.set(id, (this.live.get(id) ?? 0) + n)
  }

  /**
   * A working copy's history (issue 13 item 4): units already verified by the caller against the
   * signed metadata (R-VERIFY), written as one pack (the same format a server keeps) instead of a
   * file each, and indexed. Synchronous: a batch of small files is a few MiB. Not fsynced here: the
   * caller makes it durable with the rest of its writes (one syncfs); a pack cut short by a crash
   * is dropped when the packs are next opened, and its units fetched again.
   */
  addVerifiedSync(units: ReadonlyMap<string, Uint8Array>): { id: string; file: string } {
    const pack = this.prepareVerified(units)
    if (pack.write) {
      try {
        writeFileSync(pack.write.tmp, pack.write.bytes, { flag: 'wx' })
        renameSync(pack.write.tmp, pack.file)
      } catch (err) {
        rmSync(pack.write.tmp, { force: true })
        throw new UpswarmError('UPSWARM_E_IO', `cannot store a pack of ${units.size} blobs in ${this.dir}: ${(err as Error).message}`, { cause: err })
      }
    }
    pack.adopt()
    return { id: pack.id, file: pack.file }
  }

  /**
   * The pack of these verified units for the caller to write (`write`: its bytes to a new file
   * `tmp`, then renamed to `file`; absent when the store holds that pack already), and `adopt` to
   * index it once it is written: a first install writes its packs on its file-writer thread.
   */
  prepareVerified(units: ReadonlyMap<string, Uint8Array>): { id: string; file: string; write?: { tmp: string; bytes: Buffer }; adopt(): void } {
    const header = packHeader([...units].map(([sha256, b]) => ({ sha256, length: b.length })))
    const file = this.file(header.id)
    const adopt = (): void => {
      if (this.live.has(header.id)) return
      let at = header.bytes.length
      this.index(header.id, { units: header.units.map((u) => { const o = { ...u, offset: at }; at += u.length; return o }) })
    }
    if (this.live.has(header.id)) return { id: header.id, file, adopt }
    const parts: Uint8Array[] = [header.bytes]
    for (const u of header.units) parts.push(units.get(u.sha256)!)
    try {
      mkdirSync(this.tmpDir, { recursive: true })
      mkdirSync(this.dir, { recursive: true })
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_IO', `cannot store a pack of ${units.size} blobs in ${this.dir}: ${(err as Error).message}`, { cause: err })
    }
    const tmp = tempName(this.tmpDir)
    return { id: header.id, file, write: { tmp, bytes: Buffer.concat(parts, header.bytesTotal) }, adopt }
  }

  /** The units the packs hold. */
  unitHashes(): IterableIterator<string> {
    return this.units.keysHex()
  }

  hasPack(id: string): boolean {
    return this.live.has(id)
  }

  /** Whether a pack holds this unit (no object made: asked once per file of a tree). */
  holds(sha256: string): boolean {
    return this.units.has(sha256)
  }

  locate(sha256: string): PackedUnit | undefined {
    return this.units.get(sha256)
  }

  /**
   * Streams a pack into the store, verifying it as it comes (PackReader); on any failure nothing is
   * kept and the error names the pack and `where`.
   */
  async add(id: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, where: string): Promise<{ units: number; bytes: number }> {
    if (!HEX64.test(id)) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `not a pack id: ${JSON.stringify(id.slice(0, 80))}`)
    if (this.hasPack(id)) return { units: 0, bytes: 0 }
    const tmp = tempName(this.tmpDir)
    const reader = new PackReader(id, where)
    let bytes = 0
    const fh = await open(tmp, 'wx')
    try {
      try {
        for await (const chunk of source) {
          await reader.push(chunk)
          await fh.write(chunk)
          bytes += chunk.byteLength
        }
        await reader.end()
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, this.file(id))
    } catch (err) {
      await rm(tmp, { force: true })
      if (err instanceof UpswarmError) throw err
      throw new UpswarmError('UPSWARM_E_IO', `cannot store pack ${id} from ${where} in ${this.dir}: ${(err as Error).message}`, { cause: err })
    }
    this.index(id, reader)
    return { units: reader.units!.length, bytes }
  }

  private handle(pack: string): Promise<FileHandle> {
    let h = this.handles.get(pack)
    if (!h) {
      h = open(this.file(pack), 'r')
      h.catch(() => this.handles.delete(pack))
      this.handles.set(pack, h)
    }
    return h
  }

  /** `length` bytes at `offset` of a packed unit (clamped to the unit), or null when no pack holds it. */
  async read(sha256: string, offset: number, length: number): Promise<Buffer | null> {
    const u = this.units.get(sha256)
    if (!u) return null
    return this.readAt(u.pack, u.offset + offset, Math.max(0, Math.min(length, u.length - offset)))
  }

  /** `length` bytes of a pack at `position`; fewer when the file ends first. */
  private async readAt(pack: string, position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length)
    const own = this.closed
    const fh = await (own ? open(this.file(pack), 'r') : this.handle(pack))
    let got = 0
    try {
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, position + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
    } finally {
      if (own) await fh.close()
    }
    return got === length ? buf : buf.subarray(0, got)
  }

  /**
   * Whole units, read a run at a time: units lying next to each other in a pack (or at most
   * RUN_GAP bytes apart) come from one read, sliced. A batch asked in hash order is mostly one run,
   * since a publisher cuts its packs from units sorted by hash. Units no pack holds are left out.
   */
  async readWhole(hashes: readonly string[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>()
    const located = hashes.flatMap((sha) => {
      const u = this.units.get(sha)
      return u ? [{ sha, ...u }] : []
    }).sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.offset - b.offset))
    for (let i = 0; i < located.length;) {
      const first = located[i]!
      let end = first.offset + first.length
      let j = i + 1
      while (j < located.length && located[j]!.pack === first.pack && located[j]!.offset - end <= RUN_GAP && located[j]!.offset + located[j]!.length - first.offset <= RUN_MAX) {
        end = Math.max(end, located[j]!.offset + located[j]!.length)
        j++
      }
      const run = await this.readAt(first.pack, first.offset, end - first.offset)
      for (const u of located.slice(i, j)) {
        const at = u.offset - first.offset
        if (at + u.length <= run.length) out.set(u.sha, run.subarray(at, at + u.length))
      }
      i = j
    }
    return out
  }

  createReadStream(sha256: string, start = 0, end?: number): NodeJS.ReadableStream | null {
    const u = this.units.get(sha256)
    if (!u) return null
    return createReadStream(this.file(u.pack), { start: u.offset + start, end: u.offset + Math.min(end ?? u.length - 1, u.length - 1), highWaterMark: 1024 * 1024 })
  }

  /** A unit no release needs any more (prune); its pack goes once none of its units is needed. */
  async forget(sha256: string): Promise<void> {
    const u = this.units.get(sha256)
    if (!u) return
    this.units.delete(sha256)
    const left = (this.live.get(u.pack) ?? 1) - 1
    if (left > 0) {
      this.live.set(u.pack, left)
      return
    }
    this.live.delete(u.pack)
    const h = this.handles.get(u.pack)
    this.handles.delete(u.pack)
    if (h) void h.then((fh) => fh.close()).catch(() => {})
    this.units.deletePack(u.pack)
    await rm(this.file(u.pack), { force: true })
  }

  close(): void {
    this.closed = true
    for (const h of this.handles.values()) void h.then((fh) => fh.close()).catch(() => {})
    this.handles.clear()
  }
}
