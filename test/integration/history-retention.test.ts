// Issue 11 item 8, local side: the history store keeps the last K revisions, and its garbage
// collection never removes what a running update or rollback needs. Collection runs only inside
// a run, which holds the working copy's lock; this test holds a run in the middle of its download
// and checks that a second update or rollback of the same copy is refused by the lock and removes
// nothing, then that the first run ends with exactly the last K revisions kept. Real files.
import { createHash, randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { history, init, rollback, update } from '../../actors/updater/index.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { listBlobs } from '../../infra/store/working-copy/history.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { readState } from '../../infra/store/working-copy/meta.ts'
import { BlobStore } from '../../infra/store/blob-store.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

/** A directory source whose blob downloads wait until the test opens the gate. */
class GatedSource extends DirectorySource {
  private open!: () => void
  private readonly gate = new Promise<void>((r) => { this.open = r })
  private reached!: () => void
  /** Settles when the first download is waiting at the gate. */
  readonly waiting = new Promise<void>((r) => { this.reached = r })

  letThrough(): void {
    this.open()
  }

  override async fetchBlob(entry: FileEntry, into: BlobStore, opts: { signal?: AbortSignal; threads: number }) {
    this.reached()
    await this.gate
    return super.fetchBlob(entry, into, opts)
  }
}

describe('working copy — history retention', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  beforeAll(async () => { tmp = await tempDir('upswarm-retention-') })
  afterAll(async () => tmp?.cleanup())

  it('working copy — history collection never runs beside an update in progress: a second update or rollback is refused by the lock and removes nothing; afterwards the history holds exactly the last K revisions', async () => {
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    const wc = join(tmp.path, 'wc')
    const trees: TreeSpec[] = [1, 2, 3, 4].map((r) => ({ 'same.txt': 'same in every revision\n', 'v.txt': `version ${r}\n`, [`only${r}.txt`]: `only in r${r}\n` }))
    for (const [i, spec] of trees.entries()) {
      const src = join(tmp.path, `src${i + 1}`)
      await writeTree(src, spec)
      await publishLocal(repo, { key, product, src })
    }
    const plain = new DirectorySource(repo)
    await init(wc, { product, publicKey: key.publicKey, rev: 2, source: plain, historyDepth: 2 })
    await update(wc, { source: plain, rev: 3 })
    const store = new BlobStore(layoutOf(wc).history)
    const before = new Set(await listBlobs(store))
    expect((await history(wc)).revisions.filter((r) => r.local).map((r) => r.rev)).toEqual([2, 3])

    // An update to r4 waits in the middle of its download, holding the working copy.
    const gated = new GatedSource(repo)
    const running = update(wc, { source: gated, rev: 4 })
    await gated.waiting
    // Each of these would collect the history (keeping only what its own target needs): refused.
    await expect(update(wc, { source: plain })).rejects.toMatchObject({ code: 'UPSWARM_E_WORKING_COPY', message: expect.stringMatching(/is in use by process \d+/) })
    await expect(rollback(wc, { rev: 2 })).rejects.toMatchObject({ code: 'UPSWARM_E_WORKING_COPY', message: expect.stringMatching(/is in use by process \d+/) })
    const during = new Set(await listBlobs(store))
    expect([...before].filter((b) => !during.has(b))).toEqual([])

    gated.letThrough()
    expect(await running).toMatchObject({ from: 3, to: 4 })
    // K = 2: r3 and r4 stay local, r2's own file versions are collected.
    expect((await history(wc)).revisions.filter((r) => r.local).map((r) => r.rev)).toEqual([3, 4])
    expect(await rollback(wc, { rev: 3 })).toMatchObject({ from: 4, to: 3, source: 'local' })
  })

  it('working copy — an update that installs nothing and keeps the same revisions leaves the history store as the last retain left it (a delta kept for peers stays); the next real update collects it', async () => {
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo-noop')
    const wc = join(tmp.path, 'wc-noop')
    const src = join(tmp.path, 'src-noop')
    await writeTree(src, { 'a.txt': 'a, r1\n', 'b.txt': 'b\n' })
    await publishLocal(repo, { key, product, src })
    const source = new DirectorySource(repo)
    await init(wc, { product, publicKey: key.publicKey, source, historyDepth: 2 })
    await writeTree(src, { 'a.txt': 'a, r2\n' })
    await publishLocal(repo, { key, product, src })
    expect(await update(wc, { source })).toMatchObject({ from: 1, to: 2 })
    expect((await readState(layoutOf(wc))).retained).toEqual([1, 2])
    // A blob no kept revision names, as the deltas a run keeps for its peers are.
    const store = new BlobStore(layoutOf(wc).history)
    const bytes = Buffer.from('a delta kept for peers')
    const stray = createHash('sha256').update(bytes).digest('hex')
    await store.put(stray, Readable.from([bytes]), 'the test')
    expect(await update(wc, { source })).toMatchObject({ from: 2, to: 2, updated: 0 })
    expect(await store.has(stray)).toBe(true)
    await writeTree(src, { 'a.txt': 'a, r3\n' })
    await publishLocal(repo, { key, product, src })
    expect(await update(wc, { source })).toMatchObject({ from: 2, to: 3, updated: 1 })
    expect(await store.has(stray)).toBe(false)
    expect((await readState(layoutOf(wc))).retained).toEqual([2, 3])
    expect((await history(wc)).revisions.filter((r) => r.local).map((r) => r.rev)).toEqual([2, 3])
  })
})
