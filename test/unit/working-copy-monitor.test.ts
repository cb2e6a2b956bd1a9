// The file monitor (issue 13 item 2, actors/monitor): with it, `status` lstats only what changed,
// and says the same as a status that walks every path. A differential test: two copies of one
// release get the same random edits (files edited, made, deleted; directories made, removed,
// moved inside the tree, moved in from outside, moved out, moved over another; modes; symlinks);
// the watched copy's status must equal the unwatched copy's after every step, with few lstats.
// Then: events that may have been dropped make the monitor walk again and status walk once;
// one monitor per copy; a format-1 stat index is still read.
import { randomUUID } from 'node:crypto'
import { execFile } from 'node:child_process'
import { chmod, mkdir, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startMonitor, type Monitor } from '../../actors/monitor/index.ts'
import { init, status, type StatusReport } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { decodeIndex, tableCrc32 } from '../../infra/store/working-copy/stat-index.ts'
import { random } from '../faults/figures.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const run = promisify(execFile)
const T = 1_600_000_000
const FILES = 400
const STEPS = Number(process.env.UPSWARM_MONITOR_STEPS ?? 40)

const listing = (r: StatusReport): string[] => r.files.map((f) => `${f.status} ${f.path}`)

describe('working copy — file monitor', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let template: string
  let n = 0
  const spec: TreeSpec = {}
  for (let i = 0; i < FILES; i++) spec[`d${i % 8}/e${i % 5}/f${i}.txt`] = `file ${String(i).padStart(6, '0')}\n`
  const monitors: Monitor[] = []

  beforeAll(async () => {
    tmp = await tempDir('upswarm-wc-monitor-')
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 'src'), spec)
    await publishLocal(repo, { key, product, src: join(tmp.path, 'src') })
    template = join(tmp.path, 'template')
    await init(template, { product, publicKey: key.publicKey, source: new DirectorySource(repo) })
  }, 240_000)
  afterAll(async () => {
    for (const m of monitors) await m.close()
    await tmp?.cleanup()
  })

  async function copy(): Promise<string> {
    const wc = join(tmp.path, `wc${n++}`)
    await run('rsync', ['-a', '--exclude=/.upswarm/history', `${template}/`, `${wc}/`])
    for (const path of Object.keys(spec)) await utimes(join(wc, path), T, T)
    return wc
  }

  async function monitored(wc: string, watch?: Parameters<typeof startMonitor>[0]['watch']): Promise<Monitor> {
    const m = await startMonitor({ dir: wc, ...(watch ? { watch } : {}) })
    monitors.push(m)
    return m
  }

  it('working copy — with the monitor, status after each of 40 random edits equals the status of a copy that walks every path, and lstats only what changed', async () => {
    const watched = await copy()
    const plain = await copy()
    const outside = join(tmp.path, `outside${n}`)
    await mkdir(outside)
    const monitor = await monitored(watched)
    expect(monitor.state()).toBe('watching')
    // The first status with the monitor records its token (it walks: the index has none yet).
    await status(watched)
    const quiet = await status(watched)
    expect(quiet).toMatchObject({ monitor: 'changes', lstats: 0, hashed: 0 })
    expect(listing(quiet)).toEqual(listing(await status(plain)))

    const rnd = random(Number(process.env.UPSWARM_MONITOR_SEED ?? 13))
    const pick = <X>(xs: X[]): X => xs[Math.floor(rnd() * xs.length)]!
    const dirs = ['d0', 'd1', 'd2', 'd3', 'd4/e1', 'd5/e2', 'd6', 'd7/e4']
    const ops: Array<[string, (root: string, k: number, dir: string) => Promise<void>]> = [
      ['edit', async (root, k) => writeFile(join(root, `d${k % 8}/e${k % 5}/f${k}.txt`), `edited ${k}\n`).catch(() => {})],
      ['edit, same size and mtime', async (root, k) => {
        const f = join(root, `d${k % 8}/e${k % 5}/f${k}.txt`)
        await writeFile(f, `FILE ${String(k).padStart(6, '0')}\n`).then(() => utimes(f, T, T)).catch(() => {})
      }],
      ['new file', async (root, k, dir) => writeFile(join(root, dir, `new${k}.txt`), `new ${k}\n`).catch(() => {})],
      ['delete', async (root, k) => rm(join(root, `d${k % 8}/e${k % 5}/f${k}.txt`), { force: true })],
      ['new directory with files', async (root, k) => {
        await mkdir(join(root, `made${k}/inner`), { recursive: true })
        await writeFile(join(root, `made${k}/a.txt`), 'a\n')
        await writeFile(join(root, `made${k}/inner/b.txt`), 'b\n')
      }],
      ['remove a directory', async (root, k) => rm(join(root, `d${k % 8}/e${k % 5}`), { recursive: true, force: true })],
      ['move a directory inside the tree', async (root, k) => rename(join(root, `d${k % 8}/e${(k + 1) % 5}`), join(root, `moved${k}`)).catch(() => {})],
      ['move a directory out of the tree', async (root, k) => rename(join(root, `d${k % 8}/e${(k + 2) % 5}`), join(root, '..', `${root.split('/').pop()}-out${k}`)).catch(() => {})],
      ['move a directory in from outside', async (root, k) => {
        const o = join(root, '..', `${root.split('/').pop()}-in${k}`)
        await mkdir(join(o, 'deep'), { recursive: true })
        await writeFile(join(o, 'deep/c.txt'), `c ${k}\n`)
        await rm(join(root, `d${k % 8}`, `in${k}`), { recursive: true, force: true })
        await rename(o, join(root, `d${k % 8}`, `in${k}`)).catch(() => rm(o, { recursive: true, force: true }))
      }],
      ['move a directory over another', async (root, k) => {
        const from = join(root, `d${k % 8}/e${(k + 3) % 5}`)
        const to = join(root, `d${(k + 1) % 8}/e${(k + 3) % 5}`)
        // rename(2) replaces an empty directory only: empty the target first, the way a sync tool does.
        await rm(to, { recursive: true, force: true })
        await rename(from, to).catch(() => {})
      }],
      ['mode', async (root, k) => chmod(join(root, `d${k % 8}/e${k % 5}/f${k}.txt`), 0o755).catch(() => {})],
      ['symlink', async (root, k) => symlink(`f${k}.txt`, join(root, `d${k % 8}/link${k}`)).catch(() => {})],
    ]
    let lstatsMax = 0
    for (let step = 0; step < STEPS; step++) {
      const [what, op] = pick(ops)
      const k = Math.floor(rnd() * FILES)
      const dir = pick(dirs)
      await op(watched, k, dir)
      await op(plain, k, dir)
      const r = await status(watched)
      const expected = await status(plain)
      expect(listing(r), `step ${step}: ${what} (${k})`).toEqual(listing(expected))
      expect(r.monitor, `step ${step}: ${what}`).toBe('changes')
      lstatsMax = Math.max(lstatsMax, r.lstats)
    }
    // A status after an edit lstats what changed, not the tree (400 files, ~50 directories).
    expect(lstatsMax).toBeLessThan(FILES / 4)
    expect(monitor.walks()).toBe(1)
    // And once more with nothing changed: the short answer, no lstat.
    expect(await status(watched)).toMatchObject({ monitor: 'changes', lstats: 0 })
    // The index those statuses rewrote (entries copied as bytes, parents renumbered) serves a walk too.
    await monitor.close()
    await writeFile(join(watched, 'd1', 'late.txt'), 'late\n')
    await writeFile(join(plain, 'd1', 'late.txt'), 'late\n')
    const walked = await status(watched)
    expect(walked).toMatchObject({ monitor: 'no monitor runs', statIndex: 'indexed' })
    expect(listing(walked)).toEqual(listing(await status(plain)))
  }, 120_000)

  it('working copy — events that may have been dropped (a burst over the limit) make the monitor walk again; the next status walks every path, exactly, and the one after uses the monitor again', async () => {
    const wc = await copy()
    const monitor = await monitored(wc, { burstLimit: 50 })
    await status(wc)
    expect((await status(wc)).monitor).toBe('changes')
    // 120 files made in one synchronous burst: one read of the kernel's queue delivers them all.
    for (let i = 0; i < 120; i++) writeFileSync(join(wc, 'd1', `burst${i}.txt`), `${i}\n`)
    const r = await status(wc)
    expect(r.monitor).toMatch(/^the monitor said: |^the monitor/)
    expect(r.notCurrent.filter((f) => f.status === 'unversioned')).toHaveLength(120)
    expect(monitor.walks()).toBe(2)
    expect(monitor.state()).toBe('watching')
    await writeFile(join(wc, 'd2', 'after.txt'), 'after\n')
    const next = await status(wc)
    expect(next.monitor).toBe('changes')
    expect(next.notCurrent.map((f) => f.path)).toContain('d2/after.txt')
    expect(next.notCurrent.filter((f) => f.status === 'unversioned')).toHaveLength(121)
  })

  it('working copy — one monitor per copy: a second is refused while the first answers; a socket left by a monitor that died is replaced', async () => {
    const wc = await copy()
    const first = await monitored(wc)
    await expect(startMonitor({ dir: wc })).rejects.toThrow(`a monitor already answers on ${layoutOf(wc).monitorSocket}`)
    await first.close()
    // What a killed monitor leaves: the socket file, nobody listening.
    const { createServer } = await import('node:net')
    const dead = createServer()
    await new Promise<void>((r) => dead.listen(layoutOf(wc).monitorSocket, r))
    await new Promise<void>((r) => {
      // Closing a listening Unix socket removes its file; unref + a hard close keeps it for this test.
      (dead as unknown as { _handle: { close(): void } | null })._handle?.close()
      r()
    })
    const second = await monitored(wc)
    expect(second.state()).toBe('watching')
    await expect(startMonitor({ dir: join(tmp.path, 'no-such-copy') })).rejects.toThrow('is not an upswarm working copy')
  })

  it('working copy — a format-1 stat index (before the monitor token) is still read: status uses it and writes format 2', async () => {
    const wc = await copy()
    await status(wc)
    const file = layoutOf(wc).statCache
    const v2 = await readFile(file)
    // Format 1: the same bytes without the 24-byte token after the 184-byte header, its own checksum.
    const body = Buffer.concat([v2.subarray(0, 184), v2.subarray(208, v2.length - 4)])
    body.writeUInt32LE(1, 8)
    body.writeUInt32LE(body.readUInt32LE(12) & 1, 12)
    const v1 = Buffer.concat([body, createHash('sha1').update(body).digest()])
    await writeFile(file, v1)
    const old = decodeIndex(v1, file)
    expect(old.monitor).toBeNull()
    expect(old.count).toBe(decodeIndex(v2, file).count)
    await writeFile(join(wc, 'd0/e0/f0.txt'), 'changed\n')
    const r = await status(wc)
    expect(r.statIndex).toBe('indexed')
    expect(r.notCurrent).toEqual([{ path: 'd0/e0/f0.txt', status: 'modified' }])
    expect((await readFile(file)).readUInt32LE(8)).toBe(2)
  })

  it('working copy — format 2 ends with the CRC-32 of the rest; the JavaScript CRC-32 (node without zlib.crc32) gives the same', async () => {
    const wc = await copy()
    await status(wc)
    const bytes = await readFile(layoutOf(wc).statCache)
    const body = bytes.subarray(0, bytes.length - 4)
    expect(tableCrc32(body)).toBe(bytes.readUInt32LE(bytes.length - 4))
    expect(tableCrc32(Buffer.from('123456789'))).toBe(0xcbf43926)
  })
})
