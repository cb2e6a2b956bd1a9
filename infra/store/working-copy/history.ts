// The history store (R-ROLLBACK S143–S144): a BlobStore of the file versions of the last K
// revisions, so that a rollback within them needs no network. Garbage-collected against the
// set of blobs those revisions use.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { FANOUT_DIR, HEX64, type BlobStore } from '../blob-store.ts'

/** SHA-256 of every blob in the store. */
export async function listBlobs(store: BlobStore): Promise<string[]> {
  await store.ready()
  return [...(await listLoose(store)), ...(store.packs?.unitHashes() ?? [])]
}

/** The blobs stored as files of their own. */
async function listLoose(store: BlobStore): Promise<string[]> {
  // The fan-out directories are read side by side (a history of a few thousand blobs spreads over
  // as many directories: one after the other, that was most of an update's bookkeeping).
  const level = async (dir: string): Promise<string[]> => (await readdirOrEmpty(dir)).filter((n) => FANOUT_DIR.test(n))
  const names = store.levels === 1
    ? await Promise.all((await level(store.root)).map((a) => readdirOrEmpty(join(store.root, a))))
    : await Promise.all((await level(store.root)).map(async (a) =>
      (await Promise.all((await level(join(store.root, a))).map((b) => readdirOrEmpty(join(store.root, a, b))))).flat()))
  return names.flat().filter((n) => HEX64.test(n))
}

/**
 * Removes every blob not in `keep`. The packed ones are not listed first (issue 13 item 6: at
 * 1 000 000 files the listing was a million names more held beside `keep`): only those to remove are.
 */
export async function collectGarbage(store: BlobStore, keep: { has(sha256: string): boolean }): Promise<{ removed: number; bytes: number }> {
  let removed = 0
  let bytes = 0
  await store.ready()
  const drop = (await listLoose(store)).filter((sha) => !keep.has(sha))
  for (const sha of store.packs?.unitHashes() ?? []) if (!keep.has(sha)) drop.push(sha)
  for (const sha of drop) {
    bytes += (await store.size(sha)) ?? 0
    await store.remove(sha)
    removed++
  }
  return { removed, bytes }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [])
}
