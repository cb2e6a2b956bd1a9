// Scans a source tree into manifest entries: files (hashed, streaming), dirs, symlinks, modes.
import { lstat, readdir, readlink } from 'node:fs/promises'
import { closeSync, openSync, readSync, type Stats } from 'node:fs'
import { join } from 'node:path'
import { UpswarmError } from '../errors.ts'
import { FileHasher, hashFile, PIECE_SIZE } from './hash.ts'
import { chunkBuffer, chunkFile, type ChunkerParams, type FileChunks } from '../formats/fastcdc.ts'
import type { ChunkRef } from '../formats/tree-node.ts'
import { comparePaths, isSafeRelPath, META_DIR, type Entry } from './manifest.ts'
import { eachLimited } from '../parallel.ts'

export interface ScanProgress {
  files: number
  bytes: number
  path: string
}

export interface ScannedFile {
  path: string
  abs: string
}

/** Walks `root` and returns every entry (sorted by path) plus where each file lives on disk. */
export async function scanTree(
  root: string,
  opts: {
    pieceSize?: number
    concurrency?: number
    onProgress?: (p: ScanProgress) => void
    /** Also cut each file into format-2 chunks (docs/formats.md §1.7), in the same read pass as its hashes. */
    chunker?: ChunkerParams
  } = {},
): Promise<{ entries: Entry[]; files: Map<string, string>; chunks: Map<string, ChunkRef[]> }> {
  const pieceSize = opts.pieceSize ?? PIECE_SIZE
  const entries: Entry[] = []
  const files = new Map<string, string>()
  const chunks = new Map<string, ChunkRef[]>()
  const toHash: { rel: string; abs: string; mode: number; size: number }[] = []

  async function walk(dirAbs: string, dirRel: string): Promise<void> {
    let names: string[]
    try {
      names = await readdir(dirAbs)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read directory ${dirAbs}: ${(err as Error).message}`, { cause: err })
    }
    names.sort()
    if (dirRel === '') names = names.filter((n) => n !== META_DIR)
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name
      if (!isSafeRelPath(rel)) throw unpublishableName(join(dirAbs, name), name, root)
    }
    // A directory's entries are looked at together (LSTAT_BATCH in flight): a stat is a thread-pool
    // round trip, and one at a time they were most of a scan of many small files.
    const stats: Stats[] = new Array(names.length)
    for (let i = 0; i < names.length; i += LSTAT_BATCH) {
      await Promise.all(names.slice(i, i + LSTAT_BATCH).map(async (name, k) => { stats[i + k] = await lstat(join(dirAbs, name)) }))
    }
    for (const [i, name] of names.entries()) {
      const abs = join(dirAbs, name)
      const rel = dirRel ? `${dirRel}/${name}` : name
      const st = stats[i]!
      if (st.isSymbolicLink()) entries.push({ path: rel, kind: 'symlink', target: await readlink(abs) })
      else if (st.isDirectory()) {
        entries.push({ path: rel, kind: 'dir', mode: st.mode & 0o7777 })
        await walk(abs, rel)
      } else if (st.isFile()) toHash.push({ rel, abs, mode: st.mode & 0o7777, size: st.size })
    }
  }
  await walk(root, '')

  let done = 0
  let bytes = 0
  let sinceYield = 0
  await eachLimited(toHash, opts.concurrency ?? SCAN_CONCURRENCY, async (f) => {
    // A small file is read whole, synchronously (a page-cache read of a few KiB costs less than
    // the thread-pool round trips of an asynchronous one); a large one streams.
    const small = f.size <= SMALL_FILE ? readSmall(f.abs, f.size) : undefined
    if (small && ++sinceYield >= YIELD_EVERY) {
      sinceYield = 0
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    const hashed: FileChunks = small
      ? (opts.chunker ? chunkBuffer(small, opts.chunker, pieceSize) : hashBuffer(small, pieceSize))
      : opts.chunker ? await chunkFile(f.abs, opts.chunker, pieceSize) : await hashFile(f.abs, pieceSize)
    const { chunks: cut, ...h } = hashed
    entries.push({ path: f.rel, kind: 'file', mode: f.mode, ...h })
    if (cut) chunks.set(f.rel, cut)
    files.set(f.rel, f.abs)
    done++
    bytes += h.size
    opts.onProgress?.({ files: done, bytes, path: f.rel })
  })
  entries.sort((a, b) => comparePaths(a.path, b.path))
  return { entries, files, chunks }
}

/** Entries of one directory stat'ed at once. */
const LSTAT_BATCH = 64
/** Files hashed at once (small files are latency, not bandwidth). */
const SCAN_CONCURRENCY = 8
/** Synchronous small reads in a row before the event loop gets a turn. */
const YIELD_EVERY = 128
/** Files up to this size are read whole, in one read (issue 13 item 4: publishing many small files). */
const SMALL_FILE = 256 * 1024

/**
 * A small file's bytes. It may have changed since its stat: whatever is read now is what is hashed
 * (and what the upload checks against), a file that grew past SMALL_FILE included.
 */
export function readSmall(abs: string, size: number): Buffer {
  const fd = openSync(abs, 'r')
  try {
    const buf = Buffer.allocUnsafe(size + 1)
    let got = 0
    for (;;) {
      const n = readSync(fd, buf, got, buf.length - got, null)
      if (n === 0) return buf.subarray(0, got)
      got += n
      if (got === buf.length) break
    }
    // It grew since its stat: read the rest too.
    const parts: Buffer[] = [buf]
    for (;;) {
      const b = Buffer.allocUnsafe(1024 * 1024)
      const n = readSync(fd, b, 0, b.length, null)
      if (n === 0) break
      parts.push(b.subarray(0, n))
    }
    return Buffer.concat(parts)
  } finally {
    closeSync(fd)
  }
}

function hashBuffer(buf: Buffer, pieceSize: number): FileChunks {
  const h = new FileHasher(pieceSize)
  h.update(buf)
  return h.digest()
}

/** Issue 11 item 9: one line naming the file and why, before any manifest is built. */
function unpublishableName(abs: string, name: string, root: string): UpswarmError {
  const why = name.includes('\\') ? 'its name has a backslash (\\), which clients on Windows read as a folder separator' : 'its name cannot be a path in a release'
  return new UpswarmError('UPSWARM_E_PUBLISH', `cannot publish ${abs}: ${why}; rename it or move it out of ${root}`)
}
