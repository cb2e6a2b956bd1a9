// What this peer serves (R-SHARE, R-ACCEL-3): verified pieces of blobs still downloading, then
// its history store (every blob of its recent revisions, verified when stored), then files of
// the working copy that the stat cache shows pristine (an adopted tree's files).
import { lstat, open, type FileHandle } from 'node:fs/promises'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import { StatCache } from '../../infra/store/working-copy/stat-cache.ts'
import { treePath, type WorkingCopyLayout } from '../../infra/store/working-copy/layout.ts'
import type { ServeFn } from '../../infra/swarm/piece-protocol.ts'
import type { PartialBlob } from './multi-source.ts'

export interface ServeSources {
  partials: Map<string, PartialBlob>
  stores: () => BlobStore[]
  layout: WorkingCopyLayout
  /** sha256 → paths in the current revision. */
  pathsOf: (sha256: string) => string[] | undefined
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer | null> {
  const fh = await open(file, 'r').catch(() => null)
  if (!fh) return null
  try {
    return await readFrom(fh, offset, length)
  } finally {
    await fh.close()
  }
}

async function readFrom(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length)
  const { bytesRead } = await fh.read(buf, 0, length, offset)
  return buf.subarray(0, bytesRead)
}

export function makeServe(src: ServeSources): ServeFn {
  let cache: { at: number; cache: StatCache } | undefined
  const statCache = async (): Promise<StatCache> => {
    if (!cache || Date.now() - cache.at > 5000) cache = { at: Date.now(), cache: await StatCache.load(src.layout.statCache) }
    return cache.cache
  }
  return async (sha256, offset, length) => {
    const partial = src.partials.get(sha256)
    if (partial) {
      const first = Math.floor(offset / partial.pieceSize)
      const last = Math.floor((Math.min(offset + length, partial.size) - 1) / partial.pieceSize)
      let ok = offset < partial.size
      for (let i = first; ok && i <= last; i++) ok = partial.verified[i] === 1
      if (ok) {
        const data = await readFrom(partial.fh, offset, Math.min(length, partial.size - offset)).catch(() => null)
        if (data) return data
      }
    }
    for (const store of src.stores()) {
      const data = await store.readRangeIfPresent(sha256, offset, length)
      if (data) return data
    }
    for (const path of src.pathsOf(sha256) ?? []) {
      const abs = treePath(src.layout, path)
      const st = await lstat(abs, { bigint: true }).catch(() => null)
      if (!st?.isFile()) continue
      // Only a file the stat cache vouches for is served; the receiver verifies every piece anyway.
      if ((await statCache()).lookup(path, st)?.sha256 !== sha256) continue
      return readAt(abs, offset, length)
    }
    return null
  }
}
