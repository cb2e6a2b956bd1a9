// Scans a source tree into manifest entries: files (hashed, streaming), dirs, symlinks, modes.
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { UpswarmError } from '../errors.ts'
import { hashFile, PIECE_SIZE } from './hash.ts'
import { chunkFile, type ChunkerParams, type FileChunks } from '../formats/fastcdc.ts'
import type { ChunkRef } from '../formats/tree-node.ts'
import { comparePaths, isSafeRelPath, META_DIR, type Entry } from './manifest.ts'

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
  const toHash: { rel: string; abs: string; mode: number }[] = []

  async function walk(dirAbs: string, dirRel: string): Promise<void> {
    let names: string[]
    try {
      names = await readdir(dirAbs)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read directory ${dirAbs}: ${(err as Error).message}`, { cause: err })
    }
    names.sort()
    for (const name of names) {
      if (dirRel === '' && name === META_DIR) continue
      const abs = join(dirAbs, name)
      const rel = dirRel ? `${dirRel}/${name}` : name
      if (!isSafeRelPath(rel)) throw unpublishableName(abs, name, root)
      const st = await lstat(abs)
      if (st.isSymbolicLink()) entries.push({ path: rel, kind: 'symlink', target: await readlink(abs) })
      else if (st.isDirectory()) {
        entries.push({ path: rel, kind: 'dir', mode: st.mode & 0o7777 })
        await walk(abs, rel)
      } else if (st.isFile()) toHash.push({ rel, abs, mode: st.mode & 0o7777 })
    }
  }
  await walk(root, '')

  let done = 0
  let bytes = 0
  let next = 0
  const workers = Array.from({ length: opts.concurrency ?? 2 }, async () => {
    while (next < toHash.length) {
      const f = toHash[next++]!
      const hashed: FileChunks = opts.chunker ? await chunkFile(f.abs, opts.chunker, pieceSize) : await hashFile(f.abs, pieceSize)
      const { chunks: cut, ...h } = hashed
      entries.push({ path: f.rel, kind: 'file', mode: f.mode, ...h })
      if (cut) chunks.set(f.rel, cut)
      files.set(f.rel, f.abs)
      done++
      bytes += h.size
      opts.onProgress?.({ files: done, bytes, path: f.rel })
    }
  })
  await Promise.all(workers)
  entries.sort((a, b) => comparePaths(a.path, b.path))
  return { entries, files, chunks }
}

/** Issue 11 item 9: one line naming the file and why, before any manifest is built. */
function unpublishableName(abs: string, name: string, root: string): UpswarmError {
  const why = name.includes('\\') ? 'its name has a backslash (\\), which clients on Windows read as a folder separator' : 'its name cannot be a path in a release'
  return new UpswarmError('UPSWARM_E_PUBLISH', `cannot publish ${abs}: ${why}; rename it or move it out of ${root}`)
}
