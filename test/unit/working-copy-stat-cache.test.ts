// The stat cache: git's racy-timestamp rule, invalidation by stat data, and a status of an
// unchanged tree that reads no file contents.
import { randomUUID } from 'node:crypto'
import { lstat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, status } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { StatCache } from '../../infra/store/working-copy/stat-cache.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const HASHES = { sha1: 'a'.repeat(40), sha256: 'b'.repeat(64) }
const T = 1_600_000_000 // seconds: a fixed, whole-second file time

describe('working copy — stat cache', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  beforeAll(async () => { tmp = await tempDir('upswarm-wc-statcache-') })
  afterAll(async () => tmp?.cleanup())

  async function cacheWithEntry(name: string): Promise<{ file: string; cacheFile: string }> {
    const file = join(tmp.path, `${name}.txt`)
    const cacheFile = join(tmp.path, `${name}.cache`)
    await writeFile(file, 'content')
    await utimes(file, T, T)
    const cache = StatCache.empty()
    cache.set('f', await lstat(file, { bigint: true }), HASHES)
    await cache.save(cacheFile, join(tmp.path, 'tmp'))
    return { file, cacheFile }
  }

  it('working copy — an entry not older than the cache write time is racy and not trusted', async () => {
    const { file, cacheFile } = await cacheWithEntry('racy')
    const st = await lstat(file, { bigint: true })
    await utimes(cacheFile, T, T) // written in the same second as the file was modified
    expect((await StatCache.load(cacheFile)).lookup('f', st)).toBeUndefined()
    await utimes(cacheFile, T + 1, T + 1)
    expect((await StatCache.load(cacheFile)).lookup('f', st)).toEqual(HASHES)
  })

  it('working copy — any change of size, mtime, ctime or inode misses the cache', async () => {
    const { file, cacheFile } = await cacheWithEntry('changed')
    await utimes(cacheFile, T + 10, T + 10)
    const cache = await StatCache.load(cacheFile)
    const st = await lstat(file, { bigint: true })
    expect(cache.lookup('f', st)).toEqual(HASHES)
    expect(cache.lookup('f', { ...st, size: st.size + 1n } as typeof st)).toBeUndefined()
    expect(cache.lookup('f', { ...st, ctimeNs: st.ctimeNs + 1n } as typeof st)).toBeUndefined()
    expect(cache.lookup('f', { ...st, ino: st.ino + 1n } as typeof st)).toBeUndefined()
    await utimes(file, T + 5, T + 5)
    expect(cache.lookup('f', await lstat(file, { bigint: true }))).toBeUndefined()
    expect(cache.lookup('g', st)).toBeUndefined()
  })

  it('working copy — status of an unchanged tree reads no file contents; an edit is seen', async () => {
    const files = 300
    const spec: TreeSpec = {}
    for (let i = 0; i < files; i++) spec[`d${i % 10}/f${i}.txt`] = `file ${i}\n`
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 'src'), spec)
    await publishLocal(repo, { key, product, src: join(tmp.path, 'src') })
    const wc = join(tmp.path, 'wc')
    await init(wc, { product, publicKey: key.publicKey, source: new DirectorySource(repo) })
    // Old files (not racy), as in any installed tree.
    for (const path of Object.keys(spec)) await utimes(join(wc, path), T, T)

    const first = await status(wc)
    expect(first.hashed).toBe(files)
    const second = await status(wc)
    expect(second.hashed).toBe(0)
    expect(second.cached).toBe(files)
    expect(second.files.every((f) => f.status === 'current')).toBe(true)

    // Same size, same mtime: only the ctime tells, and the file is hashed again.
    await writeFile(join(wc, 'd3/f3.txt'), 'FILE 3\n')
    await utimes(join(wc, 'd3/f3.txt'), T, T)
    const third = await status(wc)
    expect(third.hashed).toBe(1)
    expect(third.files.find((f) => f.path === 'd3/f3.txt')?.status).toBe('modified')
  })
})
