// The binary stat index (issue 13 item 2): a status of an unchanged tree reads no file and parses
// no manifest; an edited, a new and a deleted file are all found in one run, reading only the
// edited one; a corrupt or truncated index falls back to the full classification and says so;
// git's racy rule: a file whose stat data matches the index but whose mtime is not older than
// the index file is hashed again.
import { randomUUID } from 'node:crypto'
import { execFile } from 'node:child_process'
import { lstat, readFile, rm, truncate, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, status, type StatusReport } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { decodeIndex, IndexWriter, recordOf, statIdOf } from '../../infra/store/working-copy/stat-index.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const run = promisify(execFile)
const T = 1_600_000_000 // seconds: a fixed, whole-second file time, long before any index write
const FILES = 500

const statuses = (r: StatusReport): Record<string, string> => Object.fromEntries(r.files.map((f) => [f.path, f.status]))
const notCurrent = (r: StatusReport): Record<string, string> => Object.fromEntries(r.files.filter((f) => f.status !== 'current').map((f) => [f.path, f.status]))

describe('working copy — stat index', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let repo: string
  let product: string
  let key: ReturnType<typeof generatePublisherKey>
  let template: string
  let n = 0
  const spec: TreeSpec = {}
  for (let i = 0; i < FILES; i++) spec[`d${i % 20}/e${i % 7}/f${i}.txt`] = `file ${String(i).padStart(6, '0')}\n`

  beforeAll(async () => {
    tmp = await tempDir('upswarm-wc-index-')
    key = generatePublisherKey()
    product = randomUUID()
    repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 'src'), spec)
    await publishLocal(repo, { key, product, src: join(tmp.path, 'src') })
    template = join(tmp.path, 'template')
    await init(template, { product, publicKey: key.publicKey, source: new DirectorySource(repo) })
  }, 240_000)
  afterAll(async () => tmp?.cleanup())

  /** A copy of one working copy of the release, its files made old (not racy), and a first status that writes the index. */
  async function indexedCopy(): Promise<{ wc: string; first: StatusReport }> {
    const wc = join(tmp.path, `wc${n++}`)
    // Without the history store: a status does not use it, and copying it is the slow part.
    await run('rsync', ['-a', '--exclude=/.upswarm/history', `${template}/`, `${wc}/`])
    for (const path of Object.keys(spec)) await utimes(join(wc, path), T, T)
    return { wc, first: await status(wc) }
  }

  it('working copy — a status of an unchanged tree comes from the index: no file read, every path current', async () => {
    const { wc, first } = await indexedCopy()
    // init leaves the hashes only (the update's stat cache): the first status classifies every path.
    expect(first.statIndex).toBe('context changed')
    expect(first.hashed).toBe(FILES)
    const before = await readFile(layoutOf(wc).statCache)
    const second = await status(wc)
    expect(second.statIndex).toBe('indexed')
    expect(second.hashed).toBe(0)
    expect(second.cached).toBe(FILES)
    expect(statuses(second)).toEqual(statuses(first))
    expect(second.files.every((f) => f.status === 'current')).toBe(true)
    // Nothing changed: the index is not written again.
    expect((await readFile(layoutOf(wc).statCache)).equals(before)).toBe(true)
  })

  it('working copy — one edited (same size), one new and one deleted file among 500 are all reported by one indexed status, which reads only the edited file', async () => {
    const { wc } = await indexedCopy()
    await writeFile(join(wc, 'd3/e3/f3.txt'), 'FILE 000003\n') // same size, same mtime below: only the ctime tells
    await utimes(join(wc, 'd3/e3/f3.txt'), T, T)
    await writeFile(join(wc, 'd5/e1/new.txt'), 'new\n')
    await rm(join(wc, 'd7/e0/f7.txt'))
    const r = await status(wc)
    expect(r.statIndex).toBe('indexed')
    expect(notCurrent(r)).toEqual({ 'd3/e3/f3.txt': 'modified', 'd5/e1/new.txt': 'unversioned', 'd7/e0/f7.txt': 'missing' })
    expect(r.hashed).toBe(1)
    expect(r.cached).toBe(FILES - 2)
    // The index written by that run gives the same answer, and a full classification agrees.
    expect(statuses(await status(wc))).toEqual(statuses(r))
    await rm(layoutOf(wc).statCache)
    const full = await status(wc)
    expect(full.statIndex).toBe('no index')
    expect(statuses(full)).toEqual(statuses(r))
  })

  it('working copy — a truncated or corrupt index is reported, every path is classified again with the right result, and the index is rewritten', async () => {
    const { wc, first } = await indexedCopy()
    const file = layoutOf(wc).statCache
    await writeFile(join(wc, 'd1/e1/f1.txt'), 'edited by hand\n')
    const size = (await lstat(file)).size
    await truncate(file, Math.floor(size / 2))
    const truncated = await status(wc)
    expect(truncated.statIndex).toBe('corrupt index')
    expect(truncated.statIndexProblem).toBe(`stat index ${file}: checksum mismatch (truncated or corrupt)`)
    expect(notCurrent(truncated)).toEqual({ 'd1/e1/f1.txt': 'modified' })
    expect(truncated.files).toHaveLength(first.files.length)
    expect((await status(wc)).statIndex).toBe('indexed')

    const bytes = await readFile(file)
    const mid = bytes.length >> 1
    bytes[mid] = bytes[mid]! ^ 0xff
    await writeFile(file, bytes)
    const flipped = await status(wc)
    expect(flipped).toMatchObject({ statIndex: 'corrupt index', statIndexProblem: expect.stringContaining('checksum mismatch') })
    expect(notCurrent(flipped)).toEqual({ 'd1/e1/f1.txt': 'modified' })

    await writeFile(file, 'not an index at all, but long enough to have a header and a checksum after it.......................................................................................................................................')
    const garbage = await status(wc)
    expect(garbage.statIndexProblem).toBe(`stat index ${file}: not an upswarm stat index (bad magic bytes)`)
    expect(notCurrent(garbage)).toEqual({ 'd1/e1/f1.txt': 'modified' })
    expect(decodeIndex(await readFile(file), file).count).toBe(first.files.length)
  })

  it('working copy — racy: a file whose stat data matches the index but whose mtime is not older than the index file is hashed again', async () => {
    const { wc } = await indexedCopy()
    const file = layoutOf(wc).statCache
    const path = 'd2/e2/f2.txt'
    // The index says `current` for stat data the file has now, although its contents changed:
    // what an edit in the same clock tick as the index write, after the file was read, leaves.
    await writeFile(join(wc, path), 'FILE 000002\n')
    await utimes(join(wc, path), T + 100, T + 100)
    const now = statIdOf(await lstat(join(wc, path), { bigint: true }))
    const index = decodeIndex(await readFile(file), file)
    const w = new IndexWriter()
    for (let i = 0; i < index.count; i++) {
      if (index.paths[i] === path) w.add({ ...recordOf(index, i), stat: now })
      else w.copy(index, i)
    }
    await writeFile(file, w.finish(index.context))

    // Written in the same second as the file's mtime: racy, so the file is read again.
    await utimes(file, T + 100, T + 100)
    const racy = await status(wc)
    expect(racy.statIndex).toBe('indexed')
    expect(racy.hashed).toBe(1)
    expect(notCurrent(racy)).toEqual({ [path]: 'modified' })

    // The control: the same forged index, written a second later, is trusted (so it is the racy rule that found the edit).
    await writeFile(file, w.finish(index.context))
    await utimes(file, T + 101, T + 101)
    const trusted = await status(wc)
    expect(trusted.hashed).toBe(0)
    expect(notCurrent(trusted)).toEqual({})
  })
})
