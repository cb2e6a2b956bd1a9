// Issue 11 (fault suite, disk full): `status` is a read-only command and answers on a full disk.
// The working copy lives on a small tmpfs (mounted by the test, root only) filled to the last
// byte: taking the lock needs no free block (a symlink naming the pid), and what status would
// write (the stat cache, a newer release's manifest) is skipped and said, not an ENOSPC.
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { randomUUID } from 'node:crypto'
import { lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { init, status, update } from '../../actors/updater/index.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { freeBytes } from '../../infra/store/disk-space.ts'
import { acquireLock } from '../../infra/store/working-copy/lock.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, writeTree } from '../helpers/local-publish.ts'

const run = promisify(execFile)
const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
const AS_ROOT = process.getuid?.() === 0

/** Fills the file system holding `dir` to the last byte; returns the filler files. */
async function fill(dir: string): Promise<void> {
  await writeFile(join(dir, 'filler'), Buffer.alloc(await freeBytes(dir)))
  // Block rounding may leave a little: the smallest writes take what is left.
  for (let i = 0; ; i++) {
    const ok = await writeFile(join(dir, `filler-${i}`), Buffer.alloc(1024)).then(() => true, (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOSPC') throw err
      return false
    })
    if (!ok) break
  }
  await expect(writeFile(join(dir, 'probe'), 'x')).rejects.toMatchObject({ code: 'ENOSPC' })
}

describe('updater — status on a full disk', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let small: string

  beforeEach(async () => {
    tmp = await tempDir('upswarm-status-full-')
    small = join(tmp.path, 'small')
    await mkdir(small)
    if (AS_ROOT) await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small])
  })
  afterEach(async () => {
    if (AS_ROOT) await run('umount', [small]).catch(() => {})
    await tmp?.cleanup()
  })

  // Mounting needs root, as on the machines this runs on (the guard of the other disk-full tests).
  it.skipIf(!AS_ROOT)('updater — status answers on a completely full disk, in-process and through the CLI, saying what it could not write; update fails clearly and leaves no lock', async () => {
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 's1'), { 'a.txt': 'one\n', 'b.txt': 'bee\n' })
    await publishLocal(repo, { key, product, src: join(tmp.path, 's1') })
    const source = new DirectorySource(repo)
    const wc = join(small, 'wc')
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source })
    await writeTree(join(tmp.path, 's2'), { 'a.txt': 'two\n', 'b.txt': 'bee\n' })
    await publishLocal(repo, { key, product, src: join(tmp.path, 's2') })
    // A file changed by hand: status must hash it again, so its stat cache is out of date.
    await writeFile(join(wc, 'b.txt'), 'changed by hand\n')
    const cacheBefore = await readFile(layoutOf(wc).statCache, 'utf8')
    await fill(small)

    const offline = await status(wc)
    expect(offline).toMatchObject({ product, rev: 1, latest: 1, target: 1 })
    expect(offline.files.find((f) => f.path === 'b.txt')?.status).not.toBe('current')
    expect(offline.files.find((f) => f.path === 'a.txt')?.status).toBe('current')
    expect(offline.diskFull).toMatch(new RegExp(`^the disk holding ${layoutOf(wc).meta} is full: the stat cache was not saved; free some space`))
    expect(await readFile(layoutOf(wc).statCache, 'utf8')).toBe(cacheBefore)

    // With a source that has r2: its manifest cannot be recorded either, and status still answers.
    const online = await status(wc, { source })
    expect(online).toMatchObject({ product, rev: 1 })
    expect(online.diskFull).toMatch(/: newer releases were not recorded and the stat cache was not saved;/)

    const cli = await run(process.execPath, [CLI, 'status', wc, '--offline', '--json'], { env: { ...process.env, UPSWARM_NATS: '' } })
    expect(JSON.parse(cli.stdout)).toMatchObject({ product, rev: 1, diskFull: expect.stringContaining('is full') })
    const text = await run(process.execPath, [CLI, 'status', wc, '--offline'], { env: { ...process.env, UPSWARM_NATS: '' } })
    expect(text.stdout).toMatch(/is full: the stat cache was not saved; free some space before the next update\n/)

    // A command that must write fails with a clear error and leaves no lock behind.
    const err = await update(wc, { source, alerts: new RecordingAlerts() }).catch((e: unknown) => e as Error & { code?: string })
    expect(err).toMatchObject({ code: 'UPSWARM_E_IO', message: expect.stringMatching(/ENOSPC|free space/) })
    expect(await readdir(layoutOf(wc).meta)).not.toContain('lock')
  })

  it('updater — the working-copy lock is a symlink naming its owner; a stale one (old or new form) is taken over, a live one refused', async () => {
    const wc = join(tmp.path, 'wc')
    const layout = layoutOf(wc)
    await mkdir(layout.meta, { recursive: true })
    const lock = await acquireLock(layout)
    expect((await lstat(layout.lock)).isSymbolicLink()).toBe(true)
    expect(await readlink(layout.lock)).toBe(String(process.pid))
    await expect(acquireLock(layout)).rejects.toMatchObject({ code: 'UPSWARM_E_WORKING_COPY', message: expect.stringContaining(`in use by process ${process.pid}`) })
    await lock.release()
    await expect(lstat(layout.lock)).rejects.toMatchObject({ code: 'ENOENT' })

    // A pid that has exited: the lock of a killed process, in both forms.
    const child = await run(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'])
    const dead = child.stdout
    for (const leave of [() => symlink(dead, layout.lock), () => writeFile(layout.lock, `${dead}\n`)]) {
      await leave()
      const taken = await acquireLock(layout)
      expect(await readlink(layout.lock)).toBe(String(process.pid))
      await taken.release()
    }
    await writeFile(layout.lock, `${process.pid}\n`)
    await expect(acquireLock(layout)).rejects.toMatchObject({ message: expect.stringContaining(`in use by process ${process.pid}`) })
  })

  it('updater — a lock another live process holds is waited for (bounded), and taken once it is let go', async () => {
    const layout = layoutOf(join(tmp.path, 'wc-wait'))
    await mkdir(layout.meta, { recursive: true })
    // Another process takes the lock, says so, and lets it go when told (a line on its stdin).
    const holder = spawn(process.execPath, ['-e', `
      const fs = require('node:fs')
      fs.symlinkSync(String(process.pid), ${JSON.stringify(layout.lock)})
      process.stdout.write('held\\n')
      process.stdin.once('data', () => { fs.rmSync(${JSON.stringify(layout.lock)}); process.stdout.write('released\\n') })
      process.stdin.once('end', () => process.exit(0))
    `], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = createInterface({ input: holder.stdout! })[Symbol.asyncIterator]()
    try {
      expect((await lines.next()).value).toBe('held')
      // No wait, or a wait that runs out: refused, naming the holder.
      await expect(acquireLock(layout, { waitMs: 0 })).rejects.toMatchObject({ code: 'UPSWARM_E_WORKING_COPY', message: expect.stringContaining(`in use by process ${holder.pid}`) })
      await expect(acquireLock(layout, { waitMs: 50 })).rejects.toMatchObject({ message: expect.stringContaining(`in use by process ${holder.pid}`) })
      // Waiting: taken as soon as the holder lets it go.
      const waiting = acquireLock(layout, { waitMs: 60_000 })
      holder.stdin!.write('go\n')
      expect((await lines.next()).value).toBe('released')
      const lock = await waiting
      expect(await readlink(layout.lock)).toBe(String(process.pid))
      await lock.release()
    } finally {
      holder.stdin!.end()
      await once(holder, 'exit')
    }
  })
})
