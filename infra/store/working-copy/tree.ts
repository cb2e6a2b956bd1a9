// Reads the installed tree as it is on disk: lstat only (symlinks are never followed), the
// metadata folder skipped. File contents are hashed only on a stat-cache miss.
import { lstatSync, readdirSync, readFileSync, readlinkSync, type BigIntStats } from 'node:fs'
import { lstat, readFile } from 'node:fs/promises'
import { setImmediate } from 'node:timers/promises'
import { join } from 'node:path'
import { UpswarmError } from '../../errors.ts'
import { hashFile, sha1Hex, sha256Hex } from '../../release/hash.ts'
import { META_DIR } from '../../release/manifest-core.ts'
import type { ContentHashes, StatCache } from './stat-cache.ts'
import type { StatFields } from './stat-index.ts'

/**
 * What a walk keeps of a path's lstat: the fields status and the stat cache compare. Not node's
 * BigIntStats, which holds 18 BigInts: about 1.1 KiB a path, 1.1 GiB at 1 000 000 paths (issue 13).
 */
export interface DiskStat extends StatFields {
  mode: number
}

export const diskStatOf = (st: BigIntStats): DiskStat => ({ mode: Number(st.mode), size: st.size, ino: st.ino, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs })

export type DiskEntry =
  | { kind: 'file'; st: DiskStat }
  | { kind: 'dir'; st: DiskStat }
  | { kind: 'symlink'; st: DiskStat; target: string }
  | { kind: 'other'; st: DiskStat }

/**
 * Every path under `root` (POSIX, relative) except the metadata folder. Synchronous lstat is
 * several times faster than the thread-pool round trip per file; the walk yields to the event
 * loop after each directory.
 */
export async function walkTree(root: string): Promise<Map<string, DiskEntry>> {
  const out = new Map<string, DiskEntry>()
  const dirs: { abs: string; rel: string }[] = [{ abs: root, rel: '' }]
  while (dirs.length > 0) {
    const dir = dirs.pop()!
    let names: string[]
    try {
      names = readdirSync(dir.abs)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read directory ${dir.abs}: ${(err as Error).message}`, { cause: err })
    }
    for (const name of names) {
      if (dir.rel === '' && name === META_DIR) continue
      const abs = join(dir.abs, name)
      const e = diskEntrySync(abs)
      if (!e) continue
      const rel = dir.rel ? `${dir.rel}/${name}` : name
      out.set(rel, e)
      if (e.kind === 'dir') dirs.push({ abs, rel })
    }
    await setImmediate()
  }
  return out
}

/** What lstat says of one path (undefined: nothing there). */
export function diskEntrySync(abs: string): DiskEntry | undefined {
  let st: BigIntStats
  try {
    st = lstatSync(abs, { bigint: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UpswarmError('UPSWARM_E_IO', `cannot stat ${abs}: ${(err as Error).message}`, { cause: err })
  }
  const kept = diskStatOf(st)
  if (st.isSymbolicLink()) return { kind: 'symlink', st: kept, target: readlinkSync(abs) }
  if (st.isDirectory()) return { kind: 'dir', st: kept }
  if (st.isFile()) return { kind: 'file', st: kept }
  return { kind: 'other', st: kept }
}

export interface ObservedHashes extends ContentHashes {
  /** True when the hashes came from the stat cache (no content was read). */
  cached: boolean
}

/**
 * SHA-1 and SHA-256 of a regular file: from the stat cache when its entry still matches,
 * else by reading the file (and then recorded in the cache, unless the file changed while it
 * was being read).
 */
export async function observeFile(abs: string, rel: string, st: DiskStat, cache: StatCache): Promise<ObservedHashes> {
  const hit = cache.lookup(rel, st)
  if (hit) return { ...hit, cached: true }
  let h
  try {
    h = await hashContent(abs, Number(st.size))
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_IO', `cannot read ${abs}: ${(err as Error).message}`, { cause: err })
  }
  const after = await lstat(abs, { bigint: true }).catch(() => undefined)
  if (after && after.size === st.size && after.mtimeNs === st.mtimeNs && after.ctimeNs === st.ctimeNs && after.ino === st.ino) {
    cache.set(rel, st, h)
  }
  return { sha1: h.sha1, sha256: h.sha256, cached: false }
}

/** Up to this size a file is read in one piece: far cheaper than a stream per small file. */
const SMALL_FILE = 256 * 1024

/** SHA-1, SHA-256 and size of a file; streamed when larger than SMALL_FILE. */
export async function hashContent(abs: string, sizeHint: number): Promise<{ size: number; sha1: string; sha256: string }> {
  if (sizeHint <= SMALL_FILE) {
    // Synchronous: a small file's promise read costs several thread-pool round trips (open,
    // fstat, read, close), more than reading it (issue 13: 1% of 100 000 files changed).
    const buf = readFileSync(abs)
    return { size: buf.length, sha1: sha1Hex(buf), sha256: sha256Hex(buf) }
  }
  const h = await hashFile(abs)
  return { size: h.size, sha1: h.sha1, sha256: h.sha256 }
}
