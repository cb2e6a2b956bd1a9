// The stat cache (ARCHITECTURE §4): path → (size, mtime ns, ctime ns, inode) → (SHA-1, SHA-256),
// so that a status check of an unchanged tree reads no file contents. It is the hashes part of
// the binary stat index (stat-index.ts), which `status` also reads directly. Git's racy-timestamp
// rule: an entry whose mtime is not older than the index file's own mtime (the time it was
// written) may have been modified in the same clock tick after it was hashed, so it is not
// trusted and the file is hashed again.
import { readFile, stat } from 'node:fs/promises'
import { readFileSync, statSync, type BigIntStats } from 'node:fs'
import { writeFileAtomic } from './atomic.ts'
import { decodeIndex, entryOf, entryStatId, IndexWriter, KIND, NO_STAT, SHA1, SHA256, statIdOf, type DecodedIndex, type StatFields, type StatId } from './stat-index.ts'

export interface ContentHashes {
  sha1: string
  sha256: string
}

interface CacheEntry extends ContentHashes {
  size: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  ino: bigint
}

const ZERO_DIGEST = Buffer.alloc(32)

export class StatCache {
  private readonly entries: Map<string, CacheEntry>
  /** mtime of the index file when loaded; entries at or after it are racy. */
  private readonly writtenAtNs: bigint
  private dirty = false

  private constructor(entries: Map<string, CacheEntry>, writtenAtNs: bigint) {
    this.entries = entries
    this.writtenAtNs = writtenAtNs
  }

  static empty(): StatCache {
    return new StatCache(new Map(), 0n)
  }

  /** Loads the cache; a missing, unreadable or corrupt index is an empty one (it is only a cache). */
  static async load(file: string): Promise<StatCache> {
    let writtenAtNs: bigint
    let index: DecodedIndex
    try {
      writtenAtNs = (await stat(file, { bigint: true })).mtimeNs
      index = decodeIndex(await readFile(file), file)
    } catch {
      return StatCache.empty()
    }
    return StatCache.fromIndex(index, writtenAtNs)
  }

  /** The hashes part of a decoded index written at `writtenAtNs`. */
  static fromIndex(index: DecodedIndex, writtenAtNs: bigint): StatCache {
    const entries = new Map<string, CacheEntry>()
    for (let i = 0; i < index.count; i++) {
      const e = cacheEntryAt(index, i)
      if (e) entries.set(index.paths[i]!, e)
    }
    return new StatCache(entries, writtenAtNs)
  }

  /**
   * The entries of `paths` only (issue 13 item 3: an update of 1% of 1 000 000 files must not
   * hold a million entries), found by binary search in the index; empty when it is unreadable.
   * Only `set`/`recorded`/`lookup` serve such a cache: `save` would write these paths alone.
   */
  static forPaths(file: string, paths: Iterable<string>): StatCache {
    const entries = new Map<string, CacheEntry>()
    let writtenAtNs = 0n
    try {
      writtenAtNs = statSync(file, { bigint: true }).mtimeNs
      const index = decodeIndex(readFileSync(file), file)
      for (const path of paths) {
        const i = entryOf(index, path)
        const e = i >= 0 ? cacheEntryAt(index, i) : undefined
        if (e) entries.set(path, e)
      }
    } catch {
      return StatCache.empty()
    }
    return new StatCache(entries, writtenAtNs)
  }

  get size(): number {
    return this.entries.size
  }

  /** The cached hashes of `path` if its stat data still matches and the entry is not racy. */
  lookup(path: string, st: StatFields): ContentHashes | undefined {
    const e = this.entries.get(path)
    if (!e) return undefined
    if (e.size !== st.size || e.mtimeNs !== st.mtimeNs || e.ctimeNs !== st.ctimeNs || e.ino !== st.ino) return undefined
    if (e.mtimeNs >= this.writtenAtNs) return undefined
    return { sha1: e.sha1, sha256: e.sha256 }
  }

  /** The hashes recorded for `path` at exactly the stat data `st` (racy or not: they were computed from it). */
  recorded(path: string, st: StatFields): ContentHashes | undefined {
    const e = this.entries.get(path)
    if (!e || e.size !== st.size || e.mtimeNs !== st.mtimeNs || e.ctimeNs !== st.ctimeNs || e.ino !== st.ino) return undefined
    return { sha1: e.sha1, sha256: e.sha256 }
  }

  /** Whether `path` has an entry (at any stat data). */
  has(path: string): boolean {
    return this.entries.has(path)
  }

  /** Records hashes computed from the file whose lstat (taken before reading it) is `st`. */
  set(path: string, st: StatFields, hashes: ContentHashes): void {
    this.entries.set(path, { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, sha1: hashes.sha1, sha256: hashes.sha256 })
    this.dirty = true
  }

  delete(path: string): void {
    if (this.entries.delete(path)) this.dirty = true
  }

  /** Drops every entry whose path is not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const path of this.entries.keys()) {
      if (!keep.has(path)) {
        this.entries.delete(path)
        this.dirty = true
      }
    }
  }

  /** Writes the cache as an index without statuses (the next status classifies the tree again, reading no unchanged file). */
  async save(file: string, tmpDir: string): Promise<void> {
    if (!this.dirty) return
    const w = new IndexWriter()
    for (const path of [...this.entries.keys()].sort()) {
      const e = this.entries.get(path)!
      w.add({ path, kind: KIND.file, flags: 0, status: 0, mode: 0, stat: cacheStatId(e), sha1: Buffer.from(e.sha1, 'hex'), sha256: Buffer.from(e.sha256, 'hex') })
    }
    // Not fsynced, as status writes it: a torn index fails its checksum and is only a cache.
    await writeFileAtomic(file, w.finish({ statuses: false, baseRev: 0, targetRev: 0, root: NO_STAT, baseManifest: NO_STAT, targetManifest: NO_STAT, ignoreDigest: ZERO_DIGEST }), tmpDir, 0o644, false)
    this.dirty = false
  }
}

/** Entry `i` of an index as a cache entry, when it is a file with hashes. */
function cacheEntryAt(index: DecodedIndex, i: number): CacheEntry | undefined {
  const at = index.hashAt[i]!
  if (at < 0 || index.kind[i] !== KIND.file) return undefined
  const s = entryStatId(index, i)
  return {
    size: BigInt(s.size),
    mtimeNs: BigInt(s.mtimeSec) * 1_000_000_000n + BigInt(s.mtimeNsec),
    ctimeNs: BigInt(s.ctimeSec) * 1_000_000_000n + BigInt(s.ctimeNsec),
    ino: BigInt(s.ino),
    sha1: index.buf.toString('hex', at, at + SHA1),
    sha256: index.buf.toString('hex', at + SHA1, at + SHA1 + SHA256),
  }
}

function cacheStatId(e: CacheEntry): StatId {
  return statIdOf({ size: e.size, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, ino: e.ino } as BigIntStats)
}

