// The stat cache (ARCHITECTURE §4): path → (size, mtime ns, ctime ns, inode) → (SHA-1, SHA-256),
// so that a status check of an unchanged tree reads no file contents. Git's racy-timestamp
// rule: an entry whose mtime is not older than the cache file's own mtime (the time the cache
// was written) may have been modified in the same clock tick after it was hashed, so it is
// not trusted and the file is hashed again.
import { readFile, stat } from 'node:fs/promises'
import type { BigIntStats } from 'node:fs'
import { writeFileAtomic } from './atomic.ts'

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

const HEADER = JSON.stringify({ format: 1, kind: 'upswarm-stat-cache' })

export class StatCache {
  private readonly entries: Map<string, CacheEntry>
  /** mtime of the cache file when loaded; entries at or after it are racy. */
  private readonly writtenAtNs: bigint
  private dirty = false

  private constructor(entries: Map<string, CacheEntry>, writtenAtNs: bigint) {
    this.entries = entries
    this.writtenAtNs = writtenAtNs
  }

  static empty(): StatCache {
    return new StatCache(new Map(), 0n)
  }

  /** Loads the cache; a missing or unreadable cache is an empty one (it is only a cache). */
  static async load(file: string): Promise<StatCache> {
    let raw: string
    let writtenAtNs: bigint
    try {
      writtenAtNs = (await stat(file, { bigint: true })).mtimeNs
      raw = await readFile(file, 'utf8')
    } catch {
      return StatCache.empty()
    }
    const lines = raw.split('\n')
    if (lines[0] !== HEADER) return StatCache.empty()
    const entries = new Map<string, CacheEntry>()
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]
      if (!line) continue
      try {
        const [path, size, mtimeNs, ctimeNs, ino, sha1, sha256] = JSON.parse(line) as [string, string, string, string, string, string, string]
        entries.set(path, { size: BigInt(size), mtimeNs: BigInt(mtimeNs), ctimeNs: BigInt(ctimeNs), ino: BigInt(ino), sha1, sha256 })
      } catch {
        return StatCache.empty()
      }
    }
    return new StatCache(entries, writtenAtNs)
  }

  get size(): number {
    return this.entries.size
  }

  /** The cached hashes of `path` if its stat data still matches and the entry is not racy. */
  lookup(path: string, st: BigIntStats): ContentHashes | undefined {
    const e = this.entries.get(path)
    if (!e) return undefined
    if (e.size !== st.size || e.mtimeNs !== st.mtimeNs || e.ctimeNs !== st.ctimeNs || e.ino !== st.ino) return undefined
    if (e.mtimeNs >= this.writtenAtNs) return undefined
    return { sha1: e.sha1, sha256: e.sha256 }
  }

  /** Records hashes computed from the file whose lstat (taken before reading it) is `st`. */
  set(path: string, st: BigIntStats, hashes: ContentHashes): void {
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

  async save(file: string, tmpDir: string): Promise<void> {
    if (!this.dirty) return
    const parts: string[] = [HEADER]
    for (const [path, e] of this.entries) {
      parts.push(JSON.stringify([path, String(e.size), String(e.mtimeNs), String(e.ctimeNs), String(e.ino), e.sha1, e.sha256]))
    }
    parts.push('')
    await writeFileAtomic(file, parts.join('\n'), tmpDir)
    this.dirty = false
  }
}
