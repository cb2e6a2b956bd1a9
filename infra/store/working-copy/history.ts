// The history store (R-ROLLBACK S143–S144): a BlobStore of the file versions of the last K
// revisions, so that a rollback within them needs no network. Garbage-collected against the
// set of blobs those revisions use.
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { BlobStore } from '../blob-store.ts'

const HEX2 = /^[0-9a-f]{2}$/
const HEX64 = /^[0-9a-f]{64}$/

/** SHA-256 of every blob in the store. */
export async function listBlobs(store: BlobStore): Promise<string[]> {
  const out: string[] = []
  for (const a of await readdirOrEmpty(store.root)) {
    if (!HEX2.test(a)) continue
    for (const b of await readdirOrEmpty(join(store.root, a))) {
      if (!HEX2.test(b)) continue
      for (const name of await readdirOrEmpty(join(store.root, a, b))) if (HEX64.test(name)) out.push(name)
    }
  }
  return out
}

/** Removes every blob not in `keep`. */
export async function collectGarbage(store: BlobStore, keep: ReadonlySet<string>): Promise<{ removed: number; bytes: number }> {
  let removed = 0
  let bytes = 0
  for (const sha of await listBlobs(store)) {
    if (keep.has(sha)) continue
    bytes += await stat(store.path(sha)).then((s) => s.size, () => 0)
    await store.remove(sha)
    removed++
  }
  return { removed, bytes }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [])
}
