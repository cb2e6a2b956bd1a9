// The history store (R-ROLLBACK S143–S144): a BlobStore of the file versions of the last K
// revisions, so that a rollback within them needs no network. Garbage-collected against the
// set of blobs those revisions use.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { BlobStore } from '../blob-store.ts'

const HEX2 = /^[0-9a-f]{2}$/
const HEX64 = /^[0-9a-f]{64}$/

/** SHA-256 of every blob in the store. */
export async function listBlobs(store: BlobStore): Promise<string[]> {
  // The fan-out directories are read side by side (a history of a few thousand blobs spreads over
  // as many directories: one after the other, that was most of an update's bookkeeping).
  const level = async (dir: string): Promise<string[]> => (await readdirOrEmpty(dir)).filter((n) => HEX2.test(n))
  const names = await Promise.all((await level(store.root)).map(async (a) =>
    (await Promise.all((await level(join(store.root, a))).map((b) => readdirOrEmpty(join(store.root, a, b))))).flat()))
  await store.ready()
  return [...names.flat().filter((n) => HEX64.test(n)), ...(store.packs?.unitHashes() ?? [])]
}

/** Removes every blob not in `keep` (of `listed`, when the caller listed the store already). */
export async function collectGarbage(store: BlobStore, keep: ReadonlySet<string>, listed?: Iterable<string>): Promise<{ removed: number; bytes: number }> {
  let removed = 0
  let bytes = 0
  for (const sha of listed ?? (await listBlobs(store))) {
    if (keep.has(sha)) continue
    bytes += (await store.size(sha)) ?? 0
    await store.remove(sha)
    removed++
  }
  return { removed, bytes }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [])
}
