// What this peer serves (R-SHARE, R-ACCEL-3): verified pieces of blobs still downloading, then
// its history store (every blob of its recent revisions, verified when stored), then files of
// the working copy that the stat cache shows pristine (an adopted tree's files). A history file
// that is also a tree file (an update links the two: updater/downloads.ts, stageBlob) is served
// unless the stat cache shows that tree file changed since it was recorded: an edit in place
// changed both. (A file the cache has no entry for is served: receivers verify every piece.)
import { lstat, open, stat, type FileHandle } from 'node:fs/promises'
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
  /**
   * Format-2 tree nodes the copy holds, by hash (issue 13 item 3): served like a blob of their own
   * size, so a peer cut off from the servers walks a new release's tree from its peers.
   */
  node?: (hash: string) => Promise<Uint8Array | undefined>
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

/** How long the stat cache read from disk, and what it says of a blob, are taken as current. */
const STAT_CACHE_MS = 5_000
/** Blobs whose verdict is kept at most (a peer asking for every blob of a huge release). */
const MAX_VERDICTS = 65_536

export function makeServe(src: ServeSources): ServeFn {
  let cache: { at: number; cache: StatCache } | undefined
  const statCache = async (): Promise<StatCache> => {
    if (!cache || Date.now() - cache.at > STAT_CACHE_MS) cache = { at: Date.now(), cache: await StatCache.load(src.layout.statCache) }
    return cache.cache
  }
  // Per blob, whether its history file is a tree file that changed since the stat cache recorded
  // it: asked at most once per STAT_CACHE_MS (no stat per piece served).
  const verdicts = new Map<string, { at: number; edited: Promise<boolean> }>()
  const editedInTree = (store: BlobStore, sha256: string): Promise<boolean> => {
    const paths = src.pathsOf(sha256)
    if (!paths?.length) return Promise.resolve(false)
    const known = verdicts.get(sha256)
    if (known && Date.now() - known.at <= STAT_CACHE_MS) return known.edited
    const edited = (async () => {
      const blob = await stat(store.path(sha256), { bigint: true }).catch(() => null)
      if (!blob || blob.nlink < 2n) return false
      for (const path of paths) {
        const st = await lstat(treePath(src.layout, path), { bigint: true }).catch(() => null)
        if (st?.ino !== blob.ino) continue
        const cache = await statCache()
        const recorded = cache.recorded(path, st)
        return recorded ? recorded.sha256 !== sha256 : cache.has(path)
      }
      return false
    })()
    if (verdicts.size > MAX_VERDICTS) verdicts.clear()
    verdicts.set(sha256, { at: Date.now(), edited })
    return edited
  }
  return async (sha256, offset, length) => {
    const partial = src.partials.get(sha256)
    if (partial) {
      if (partial.covers(offset, length)) {
        const data = await readFrom(partial.fh, offset, Math.min(length, partial.size - offset)).catch(() => null)
        if (data) return data
      }
    }
    for (const store of src.stores()) {
      if (await editedInTree(store, sha256)) continue
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
    const node = await src.node?.(sha256).catch(() => undefined)
    return node && offset < node.length ? node.subarray(offset, offset + length) : null
  }
}
