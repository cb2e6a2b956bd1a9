// Issue 13 item 4: the small files of a first install are written on a worker thread
// (infra/store/file-writer.ts). Both writers write the same bytes with the same modes, report
// the first file they could not write by its path and label, and the threaded one takes more
// than its in-flight cap without losing a file.
import { lstatSync, readdirSync } from 'node:fs'
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FileWriteError, inlineFileWriter, threadedFileWriter, type FileToWrite, type FileWriter, type FileWriterOptions, type WrittenStat } from '../../infra/store/file-writer.ts'

let dir: string
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'upswarm-writer-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

const writers: [string, (opts?: FileWriterOptions) => FileWriter][] = [['inline', inlineFileWriter], ['threaded', threadedFileWriter]]

describe.each(writers)('%s file writer', (_name, make) => {
  it('writes every file with its bytes and mode, empty files too, once flushed', async () => {
    const w = make()
    try {
      const files: FileToWrite[] = Array.from({ length: 50 }, (_, i) => ({
        path: join(dir, `f${i}`), mode: i % 2 ? 0o755 : 0o600, bytes: Buffer.from(`file ${i} `.repeat(i)),
      }))
      await w.write(files.slice(0, 20))
      await w.write(files.slice(20))
      await w.flush()
      for (const [i, f] of files.entries()) {
        expect((await readFile(f.path)).toString()).toBe(`file ${i} `.repeat(i))
        expect((await stat(f.path)).mode & 0o777).toBe(f.mode)
      }
    } finally {
      await w.close()
    }
  })

  it('reports each written file with the stat an lstat gives afterwards (the stat cache takes it instead)', async () => {
    const seen: [string, string | undefined, WrittenStat][] = []
    const w = make({ onWritten: (f, st) => { seen.push([f.path, f.label, st]) } })
    try {
      await w.write([
        { path: join(dir, 'x'), mode: 0o640, bytes: Buffer.from('x'.repeat(5000)), label: 'tree/x' },
        { path: join(dir, 'y'), mode: 0o755, bytes: Buffer.alloc(0) },
      ])
      await w.flush()
    } finally {
      await w.close()
    }
    expect(seen.map(([p, l]) => [p, l])).toEqual([[join(dir, 'x'), 'tree/x'], [join(dir, 'y'), undefined]])
    for (const [path, , st] of seen) {
      const l = lstatSync(path, { bigint: true })
      expect(st).toEqual({ mode: Number(l.mode), size: l.size, ino: l.ino, mtimeNs: l.mtimeNs, ctimeNs: l.ctimeNs })
    }
  })

  it('writes a file to be renamed as a new file, then renames it; an existing one in its way is a failure', async () => {
    const w = make()
    try {
      await w.write([{ path: join(dir, 'tmp-1'), renameTo: join(dir, 'pack-1'), mode: 0o644, bytes: Buffer.from('pack one') }])
      await w.flush()
      expect(await readFile(join(dir, 'pack-1'), 'utf8')).toBe('pack one')
      await expect(stat(join(dir, 'tmp-1'))).rejects.toMatchObject({ code: 'ENOENT' })
      await writeFile(join(dir, 'tmp-2'), 'in the way')
      const err = await w.write([{ path: join(dir, 'tmp-2'), renameTo: join(dir, 'pack-2'), mode: 0o644, bytes: Buffer.from('pack two') }]).then(() => w.flush()).then(() => undefined, (e: unknown) => e)
      expect((err as FileWriteError).failure).toMatchObject({ path: join(dir, 'tmp-2'), code: 'EEXIST' })
      expect(await readFile(join(dir, 'tmp-2'), 'utf8')).toBe('in the way')
      await expect(stat(join(dir, 'pack-2'))).rejects.toMatchObject({ code: 'ENOENT' })
    } finally {
      await w.close()
    }
  })

  it('names the first file it could not write, with its label, and writes nothing after it', async () => {
    const w = make()
    try {
      await mkdir(join(dir, 'ok'))
      const files: FileToWrite[] = [
        { path: join(dir, 'ok', 'a'), mode: 0o644, bytes: Buffer.from('a'), label: 'ok/a' },
        { path: join(dir, 'missing', 'b'), mode: 0o644, bytes: Buffer.from('b'), label: 'missing/b' },
        { path: join(dir, 'ok', 'c'), mode: 0o644, bytes: Buffer.from('c'), label: 'ok/c' },
      ]
      const err = await w.write(files).then(() => w.flush()).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(FileWriteError)
      expect((err as FileWriteError).failure).toMatchObject({ path: join(dir, 'missing', 'b'), label: 'missing/b', code: 'ENOENT' })
      expect(await readFile(join(dir, 'ok', 'a'), 'utf8')).toBe('a')
      await expect(stat(join(dir, 'ok', 'c'))).rejects.toMatchObject({ code: 'ENOENT' })
      await expect(w.write([{ path: join(dir, 'ok', 'd'), mode: 0o644, bytes: Buffer.from('d') }]).then(() => w.flush())).rejects.toBeInstanceOf(FileWriteError)
    } finally {
      await w.close()
    }
  })
})

describe('inline file writer', () => {
  it('gives the event loop a turn between runs of files (a daemon serves peers meanwhile)', async () => {
    const w = inlineFileWriter()
    let seen = -1
    setImmediate(() => { seen = readdirSync(dir).length })
    await w.write(Array.from({ length: 200 }, (_, i) => ({ path: join(dir, `f${i}`), mode: 0o644, bytes: Buffer.from(`${i}`) })))
    expect(seen).toBeGreaterThan(0)
    expect(seen).toBeLessThan(200)
    expect(readdirSync(dir)).toHaveLength(200)
  })
})

describe('threaded file writer', () => {
  it('takes more bytes than its in-flight cap (48 MiB in 3 MiB calls) and writes them all', async () => {
    const w = threadedFileWriter()
    try {
      const size = 256 * 1024
      for (let call = 0; call < 16; call++) {
        await w.write(Array.from({ length: 12 }, (_, i) => ({ path: join(dir, `c${call}-${i}`), mode: 0o644, bytes: Buffer.alloc(size, call * 12 + i) })))
      }
      await w.flush()
      for (let call = 0; call < 16; call++) {
        for (let i = 0; i < 12; i++) {
          const b = await readFile(join(dir, `c${call}-${i}`))
          expect(b.length).toBe(size)
          expect(b[0]).toBe((call * 12 + i) & 0xff)
          expect(b[b.length - 1]).toBe((call * 12 + i) & 0xff)
        }
      }
    } finally {
      await w.close()
    }
  })
})
