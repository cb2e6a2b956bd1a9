// Issue 11 item 8: `update` checks free space before it downloads. On a small file system (a real
// tmpfs, mounted by the test) an update too big for it fails at once with a clear error, nothing
// in the working copy changes, and it succeeds once space is freed.
import { execFile } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { init, status, update } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, snapshotTree, writeTree } from '../helpers/local-publish.ts'

const run = promisify(execFile)

describe('updater — free space', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let small: string

  beforeEach(async () => {
    tmp = await tempDir('upswarm-space-')
    small = join(tmp.path, 'small')
    await mkdir(small)
    await run('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', small])
  })
  afterEach(async () => {
    await run('umount', [small]).catch(() => {})
    await tmp?.cleanup()
  })

  // Mounting needs root, as on the machines this runs on (the same guard as updater-failures' disk-full test).
  it.skipIf(process.getuid?.() !== 0)('updater — an update that does not fit is refused before any download, names what it needs, changes nothing, and goes through once space is freed', async () => {
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 's1'), { 'a.txt': 'one\n' })
    await publishLocal(repo, { key, product, src: join(tmp.path, 's1') })
    await writeTree(join(tmp.path, 's2'), { 'a.txt': 'two\n', 'big.bin': randomBytes(3 * 1024 * 1024).toString('base64') })
    await publishLocal(repo, { key, product, src: join(tmp.path, 's2') })
    const source = new DirectorySource(repo)
    const wc = join(small, 'wc')
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source })
    const before = await snapshotTree(wc)
    const fetches = source.calls.fetchBlob

    const err = await update(wc, { source, alerts: new RecordingAlerts() }).catch((e: unknown) => e as Error & { code?: string })
    expect(err).toMatchObject({ code: 'UPSWARM_E_IO', message: expect.stringMatching(/not enough free space for this update of .*: it needs about [\d.]+ MiB .* the largest file is big\.bin, [\d.]+ MiB\) and [\d.]+ (MiB|KiB) are free \(ENOSPC ahead\); nothing was changed/) })
    expect(source.calls.fetchBlob).toBe(fetches)
    expect(await snapshotTree(wc)).toEqual(before)
    expect((await status(wc)).rev).toBe(1)
    expect(await readdir(join(wc, '.upswarm', 'staging')).catch(() => [])).toEqual(expect.not.arrayContaining(['new']))

    await run('mount', ['-o', 'remount,size=32m', small])
    expect((await update(wc, { source, alerts: new RecordingAlerts() })).to).toBe(2)
    expect((await status(wc)).files.every((f) => f.status === 'current')).toBe(true)
  })
})
