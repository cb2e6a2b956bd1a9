// The content-addressed blob store on real files: verified puts, and ranges served piece by
// piece through a bounded set of open handles.
import { describe, expect, it } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { access, mkdir, readdir, readlink, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { BlobStore } from '../../infra/store/blob-store.ts'
import { PackStore } from '../../infra/store/pack-store.ts'
import { collectGarbage, listBlobs } from '../../infra/store/working-copy/history.ts'
import { tempDir } from '../helpers/cluster.ts'

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex')

/** Open descriptors of this process that point into `dir`. */
async function openFilesUnder(dir: string): Promise<number> {
  let n = 0
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
    if (target.startsWith(dir)) n++
  }
  return n
}

describe('blob store', () => {
  it('blob store — ranges of many blobs read right, with at most 32 handles open; a removed blob reads as absent', async () => {
    const dir = await tempDir('upswarm-blobs-')
    try {
      const store = new BlobStore(dir.path)
      const blobs = Array.from({ length: 40 }, () => randomBytes(4096 + Math.floor(Math.random() * 4096)))
      for (const b of blobs) await store.put(sha256(b), Readable.from([b]), 'test', b.length)
      // Concurrent reads of every blob, twice over, at several offsets.
      const reads = blobs.flatMap((b) => [0, 1000, b.length - 10].map(async (offset) => {
        const got = await store.readRangeIfPresent(sha256(b), offset, 2000)
        expect(got).toEqual(b.subarray(offset, offset + 2000))
      }))
      await Promise.all([...reads, ...reads])
      expect(await openFilesUnder(dir.path)).toBeLessThanOrEqual(32)
      // Past the end: no bytes; an unknown blob: null (readRange: a NOT_FOUND error).
      expect(await store.readRangeIfPresent(sha256(blobs[0]!), blobs[0]!.length, 10)).toEqual(Buffer.alloc(0))
      const unknown = sha256(randomBytes(8))
      expect(await store.readRangeIfPresent(unknown, 0, 10)).toBeNull()
      await expect(store.readRange(unknown, 0, 10)).rejects.toMatchObject({ code: 'UPSWARM_E_NOT_FOUND' })
      // A removed blob is not served from a handle kept open before.
      const last = sha256(blobs[39]!)
      expect(await store.readRangeIfPresent(last, 0, 10)).not.toBeNull()
      await store.remove(last)
      expect(await store.readRangeIfPresent(last, 0, 10)).toBeNull()
      store.closeHandles()
      await new Promise((r) => setImmediate(r))
      expect(await openFilesUnder(dir.path)).toBe(0)
      // A read after it (one under way as the store closed) is answered and keeps no handle open.
      expect(await store.readRangeIfPresent(sha256(blobs[0]!), 0, 10)).toEqual(blobs[0]!.subarray(0, 10))
      await new Promise((r) => setImmediate(r))
      expect(await openFilesUnder(dir.path)).toBe(0)
    } finally {
      await dir.cleanup()
    }
  })

  it('blob store — commitFile checks size, SHA-256 and, when given, SHA-1 in one read; a mismatch stores nothing and names the blob', async () => {
    const dir = await tempDir('upswarm-blobs-')
    try {
      const store = new BlobStore(dir.path)
      const good = randomBytes(300_000)
      const tmp = await store.stagingPath()
      await writeFile(tmp, good)
      await store.commitFile(sha256(good), tmp, 'test', good.length, sha1(good))
      expect(await store.has(sha256(good))).toBe(true)
      expect((await store.readRange(sha256(good), 1000, 10)).equals(good.subarray(1000, 1010))).toBe(true)

      // Right SHA-256 and size, wrong SHA-1 (a manifest whose two hashes disagree): refused.
      const other = randomBytes(1000)
      const tmp2 = await store.stagingPath()
      await writeFile(tmp2, other)
      const err = await store.commitFile(sha256(other), tmp2, 'peer x', other.length, '0'.repeat(40)).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'UPSWARM_E_HASH_MISMATCH' })
      expect((err as Error).message).toContain(`blob ${sha256(other)} from peer x`)
      expect((err as Error).message).toContain(`SHA-1 ${sha1(other)}`)
      expect(await store.has(sha256(other))).toBe(false)
      await expect(access(tmp2)).rejects.toMatchObject({ code: 'ENOENT' })
      store.closeHandles()
    } finally {
      await dir.cleanup()
    }
  })

  it('blob store — a blob still goes in after its fan-out directory was removed by someone else (directories are made once per process, and again when gone)', async () => {
    const dir = await tempDir('upswarm-blobs-')
    try {
      const store = new BlobStore(dir.path)
      const a = Buffer.from('a'.repeat(1000))
      const b = Buffer.concat([a, Buffer.from('b')])
      await store.put(sha256(a), Readable.from([a]), 'test', a.length)
      await store.put(sha256(b), Readable.from([b]), 'test', b.length)
      // Their directories are known made now; removed behind the store's back, they are made again.
      await rm(dirname(store.path(sha256(a))), { recursive: true })
      await rm(dirname(store.path(sha256(b))), { recursive: true })
      await store.put(sha256(a), Readable.from([a]), 'test', a.length)
      expect(await store.has(sha256(a))).toBe(true)
      const tmp = await store.stagingPath()
      await writeFile(tmp, b)
      await store.commitFile(sha256(b), tmp, 'test', b.length, sha1(b))
      expect(await store.readRange(sha256(b), 0, b.length)).toEqual(b)
      store.closeHandles()
    } finally {
      await dir.cleanup()
    }
  })

  it('blob store — a new store keeps a loose blob one fan-out level down, with its marker; a store an earlier release laid out two levels down keeps that layout: its blobs held, read, listed and collected, new ones beside them (issue 14 item 1)', async () => {
    const dir = await tempDir('upswarm-blobs-')
    try {
      const blobs = Array.from({ length: 6 }, (_, i) => Buffer.from(`blob ${i} `.repeat(100 + i)))
      // A new store: `ab/<sha256>`, and the marker written before its first directory.
      const fresh = new BlobStore(join(dir.path, 'new'))
      expect(fresh.levels).toBe(1)
      for (const b of blobs.slice(0, 3)) await fresh.put(sha256(b), Readable.from([b]), 'test', b.length)
      const s0 = sha256(blobs[0]!)
      expect(fresh.path(s0)).toBe(join(dir.path, 'new', s0.slice(0, 2), s0))
      await access(fresh.path(s0))
      await access(join(dir.path, 'new', 'FANOUT-1'))
      const again = new BlobStore(join(dir.path, 'new'))
      expect(again.levels).toBe(1)
      expect(await again.readRange(s0, 0, blobs[0]!.length)).toEqual(blobs[0])
      expect((await listBlobs(again)).sort()).toEqual(blobs.slice(0, 3).map(sha256).sort())

      // An earlier release's store: `ab/cd/<sha256>`, no marker.
      const old = join(dir.path, 'old')
      for (const b of blobs.slice(0, 3)) {
        const h = sha256(b)
        await mkdir(join(old, h.slice(0, 2), h.slice(2, 4)), { recursive: true })
        await writeFile(join(old, h.slice(0, 2), h.slice(2, 4), h), b)
      }
      const legacy = new BlobStore(old)
      expect(legacy.levels).toBe(2)
      for (const b of blobs.slice(0, 3)) {
        expect(await legacy.has(sha256(b))).toBe(true)
        expect(await legacy.readRange(sha256(b), 0, b.length)).toEqual(b)
      }
      expect(legacy.heldSync()(s0)).toBe(true)
      for (const b of blobs.slice(3)) await legacy.put(sha256(b), Readable.from([b]), 'test', b.length)
      const s3 = sha256(blobs[3]!)
      await access(join(old, s3.slice(0, 2), s3.slice(2, 4), s3))
      await expect(access(join(old, 'FANOUT-1'))).rejects.toThrow()
      expect((await listBlobs(legacy)).sort()).toEqual(blobs.map(sha256).sort())
      const gc = await collectGarbage(legacy, new Set([s3]))
      expect(gc.removed).toBe(5)
      expect(await listBlobs(new BlobStore(old))).toEqual([s3])
      // Their read handles, closed here rather than by the garbage collector (a warning in a later file of this worker).
      for (const s of [fresh, again, legacy]) s.closeHandles()
    } finally {
      await dir.cleanup()
    }
  })

  it('blob store — a working copy\'s history keeps a batch as one pack: held, sized, read (whole ones a run at a time) and listed like loose blobs, found again by a fresh store, and the pack goes with its last unit', async () => {
    const dir = await tempDir('upswarm-blob-packs-')
    try {
      const open = (): BlobStore => new BlobStore(dir.path, new PackStore(join(dir.path, 'packs'), join(dir.path, 'tmp')))
      const store = open()
      const units = Array.from({ length: 20 }, (_, i) => randomBytes(100 + i * 37))
      const loose = randomBytes(5000)
      await store.put(sha256(loose), Readable.from([loose]), 'test', loose.length)
      await store.ready()
      const written = store.putVerifiedManySync(new Map(units.map((u) => [sha256(u), u])))
      expect(written).toHaveLength(1)
      expect((await readdir(join(dir.path, 'packs'))).filter((n) => n.endsWith('.pack'))).toEqual([basename(written[0]!)])
      // No file per blob: the fan-out directories hold the loose blob only.
      expect((await readdir(dir.path)).filter((n) => /^[0-9a-f]{2}$/.test(n))).toEqual([sha256(loose).slice(0, 2)])

      const fresh = open() // a later command: the packs are read on first use
      await fresh.ready()
      const held = fresh.heldSync()
      expect(held(sha256(loose))).toBe(true)
      // Absent: under the loose blob's fan-out directory, and under one that does not exist.
      expect(held(`${sha256(loose).slice(0, 2)}${'0'.repeat(62)}`)).toBe(false)
      expect(held(sha256(randomBytes(64)))).toBe(false)
      for (const u of units) {
        expect(await fresh.has(sha256(u))).toBe(true)
        expect(held(sha256(u))).toBe(true)
        expect(await fresh.size(sha256(u))).toBe(u.length)
        expect(await fresh.packed(sha256(u))).toEqual(u)
        expect(await fresh.readRangeIfPresent(sha256(u), 10, 50)).toEqual(u.subarray(10, 60))
      }
      expect(await fresh.packed(sha256(loose))).toBeUndefined()
      // Whole blobs in the order asked, packed ones read a run at a time, a loose one by itself.
      const asked = [units[7]!, loose, units[0]!, units[19]!, units[3]!]
      expect((await fresh.readWhole(asked.map((b) => [sha256(b), b.length] as const))).map(([sha, b]) => [sha, Buffer.from(b)])).toEqual(asked.map((b) => [sha256(b), b]))
      expect((await listBlobs(fresh)).sort()).toEqual([loose, ...units].map(sha256).sort())

      // Removing units forgets them; the pack file goes with the last one.
      const pack = join(dir.path, 'packs', basename(written[0]!))
      for (const u of units.slice(1)) await fresh.remove(sha256(u))
      await access(pack)
      expect(await fresh.has(sha256(units[1]!))).toBe(false)
      expect(await fresh.has(sha256(units[0]!))).toBe(true)
      await fresh.remove(sha256(units[0]!))
      await expect(access(pack)).rejects.toMatchObject({ code: 'ENOENT' })
      expect(await listBlobs(open())).toEqual([sha256(loose)])
      fresh.closeHandles()
      store.closeHandles()
    } finally {
      await dir.cleanup()
    }
  })
})
