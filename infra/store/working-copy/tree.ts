// Reads the installed tree as it is on disk: lstat only (symlinks are never followed), the
// metadata folder skipped. File contents are hashed only on a stat-cache miss.
import type { BigIntStats } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { UpswarmError } from '../../errors.ts'
import { hashFile } from '../../release/hash.ts'
import { META_DIR } from '../../release/manifest.ts'
import type { ContentHashes, StatCache } from './stat-cache.ts'

export type DiskEntry =
  | { kind: 'file'; st: BigIntStats }
  | { kind: 'dir'; st: BigIntStats }
  | { kind: 'symlink'; st: BigIntStats; target: string }
  | { kind: 'other'; st: BigIntStats }

const LSTAT_BATCH = 64

/** Every path under `root` (POSIX, relative) except the metadata folder. */
export async function walkTree(root: string): Promise<Map<string, DiskEntry>> {
  const out = new Map<string, DiskEntry>()
  const dirs: { abs: string; rel: string }[] = [{ abs: root, rel: '' }]
  while (dirs.length > 0) {
    const dir = dirs.pop()!
    let names: string[]
    try {
      names = await readdir(dir.abs)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read directory ${dir.abs}: ${(err as Error).message}`, { cause: err })
    }
    if (dir.rel === '') names = names.filter((n) => n !== META_DIR)
    for (let i = 0; i < names.length; i += LSTAT_BATCH) {
      const batch = names.slice(i, i + LSTAT_BATCH)
      const entries = await Promise.all(batch.map((name) => diskEntry(join(dir.abs, name))))
      batch.forEach((name, j) => {
        const e = entries[j]
        if (!e) return
        const rel = dir.rel ? `${dir.rel}/${name}` : name
        out.set(rel, e)
        if (e.kind === 'dir') dirs.push({ abs: join(dir.abs, name), rel })
      })
    }
  }
  return out
}

/** lstat of one path; undefined when it vanished meanwhile. */
export async function diskEntry(abs: string): Promise<DiskEntry | undefined> {
  let st: BigIntStats
  try {
    st = await lstat(abs, { bigint: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UpswarmError('UPSWARM_E_IO', `cannot stat ${abs}: ${(err as Error).message}`, { cause: err })
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', st, target: await readlink(abs) }
  if (st.isDirectory()) return { kind: 'dir', st }
  if (st.isFile()) return { kind: 'file', st }
  return { kind: 'other', st }
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
export async function observeFile(abs: string, rel: string, st: BigIntStats, cache: StatCache): Promise<ObservedHashes> {
  const hit = cache.lookup(rel, st)
  if (hit) return { ...hit, cached: true }
  let h
  try {
    h = await hashFile(abs)
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_IO', `cannot read ${abs}: ${(err as Error).message}`, { cause: err })
  }
  const after = await lstat(abs, { bigint: true }).catch(() => undefined)
  if (after && after.size === st.size && after.mtimeNs === st.mtimeNs && after.ctimeNs === st.ctimeNs && after.ino === st.ino) {
    cache.set(rel, st, h)
  }
  return { sha1: h.sha1, sha256: h.sha256, cached: false }
}
