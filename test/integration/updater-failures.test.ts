// Bad input and bad luck, on real files: bad bytes and bad manifests from the source, rollback
// attacks, conflicts under each policy, a failure in the middle of the apply, adopting a
// non-empty directory, a symlink planted in the tree.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, rollback, status, update } from '../../actors/updater/index.ts'
import type { UpdaterLog } from '../../actors/updater/index.ts'
import { isUpswarmError } from '../../infra/errors.ts'
import { generatePublisherKey, type PublisherKey } from '../../infra/release/keys.ts'
import { encodeRelease, signManifest } from '../../infra/release/manifest.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, snapshotTree, writeTree, type LocalPublishOptions, type TreeSpec } from '../helpers/local-publish.ts'

let tmp: { path: string; cleanup: () => Promise<void> }
beforeAll(async () => { tmp = await tempDir('upswarm-updater-failures-') })
afterAll(async () => tmp?.cleanup())

interface Fixture {
  key: PublisherKey
  product: string
  repo: string
  source: DirectorySource
  wc: string
  trees: Record<string, string>[]
  publish(spec: TreeSpec, extra?: Partial<LocalPublishOptions>): Promise<number>
}

let fixtures = 0
async function fixture(revs: TreeSpec[]): Promise<Fixture> {
  const base = join(tmp.path, `f${fixtures++}`)
  const f: Fixture = {
    key: generatePublisherKey(),
    product: randomUUID(),
    repo: join(base, 'repo'),
    source: new DirectorySource(join(base, 'repo')),
    wc: join(base, 'wc'),
    trees: [],
    async publish(spec, extra = {}) {
      const src = join(base, `src${f.trees.length + 1}`)
      await writeTree(src, spec)
      f.trees.push(await snapshotTree(src))
      return (await publishLocal(f.repo, { key: f.key, product: f.product, src, ...extra })).rev
    },
  }
  for (const spec of revs) await f.publish(spec)
  return f
}

/** Whether this process may run `cmd` (root in a container that allows it); probed once. */
function can(cmd: string, args: string[], undo: [string, string[]]): boolean {
  const dir = execFileSync('mktemp', ['-d']).toString().trim()
  try {
    execFileSync(cmd, [...args, dir], { stdio: 'ignore' })
    execFileSync(undo[0], [...undo[1], dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    execFileSync('rm', ['-rf', dir])
  }
}
const CAN_CHATTR = can('chattr', ['+i'], ['chattr', ['-i']])
const CAN_MOUNT = process.getuid?.() === 0 && can('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs'], ['umount', []])

function recordingLog(): UpdaterLog & { warnings: string[] } {
  const warnings: string[] = []
  return { warnings, info: () => undefined, warn: (_o, msg) => { warnings.push(msg) } }
}

async function expectClean(wc: string): Promise<void> {
  const meta = await readdir(join(wc, '.upswarm'))
  expect(meta.filter((n) => ['staging', 'journal.json', 'lock'].includes(n))).toEqual([])
}

describe('updater — bad bytes and bad manifests', () => {
  it('updater — a corrupted download is discarded and fetched again (R-VERIFY)', async () => {
    const f = await fixture([{ 'a.txt': 'one\n' }, { 'a.txt': 'two\n' }])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    const sha = (await import('../../infra/release/hash.ts')).sha256Hex('two\n')
    f.source.corrupt.set(sha, 2)
    const before = f.source.calls.fetchBlob
    const res = await update(f.wc, { source: f.source, alerts: new RecordingAlerts() })
    expect(res).toMatchObject({ from: 1, to: 2, updated: 1 })
    expect(f.source.calls.fetchBlob - before).toBe(3)
    expect(await readFile(join(f.wc, 'a.txt'), 'utf8')).toBe('two\n')
  })

  it('updater — bytes that never verify are never installed; the message names the file', async () => {
    const f = await fixture([{ 'a.txt': 'one\n', 'b.txt': 'bee\n' }, { 'a.txt': 'two\n', 'b.txt': 'bee 2\n' }])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    f.source.corrupt.set((await import('../../infra/release/hash.ts')).sha256Hex('two\n'), 100)
    const err = await update(f.wc, { source: f.source, alerts: new RecordingAlerts() }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_HASH_MISMATCH')).toBe(true)
    expect((err as Error).message).toMatch(/a\.txt/)
    expect(await snapshotTree(f.wc)).toEqual(f.trees[0])
    expect((await status(f.wc)).rev).toBe(1)
    await expectClean(f.wc)
  })

  it('updater — new directories get their files in place (issue 13 item 4); when one of them never verifies, the directories are removed with what was written into them', async () => {
    const f = await fixture([
      { 'a.txt': 'one\n' },
      { 'a.txt': 'one\n', 'new/other.txt': 'other\n', 'new/deep/ok.txt': 'ok\n', 'new/deep/bad.txt': 'bad\n', 'new/deep/run.sh': { mode: 0o755, content: 'run\n' } },
    ])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    const sha = (await import('../../infra/release/hash.ts')).sha256Hex
    // The first time round, bad.txt never verifies; its directory is there (made before any download).
    f.source.corrupt.set(sha('bad\n'), 100)
    const seen: boolean[] = []
    const fetchBlob = f.source.fetchBlob.bind(f.source)
    f.source.fetchBlob = async (entry, ...rest) => {
      if (entry.path === 'new/deep/bad.txt') seen.push(existsSync(join(f.wc, 'new/deep')))
      return fetchBlob(entry, ...rest)
    }
    const err = await update(f.wc, { source: f.source, alerts: new RecordingAlerts() }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_HASH_MISMATCH')).toBe(true)
    expect((err as Error).message).toMatch(/new\/deep\/bad\.txt/)
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.every(Boolean)).toBe(true)
    expect(await snapshotTree(f.wc)).toEqual(f.trees[0])
    await expectClean(f.wc)
    // Then it verifies: every file in place, with its mode, and a status finds the tree current.
    f.source.corrupt.clear()
    expect(await update(f.wc, { source: f.source, alerts: new RecordingAlerts() })).toMatchObject({ from: 1, to: 2, checkedOut: 4 })
    expect(await snapshotTree(f.wc)).toEqual(f.trees[1])
    expect((await status(f.wc)).files.filter((x) => x.status !== 'current')).toEqual([])
    await expectClean(f.wc)
  })

  it('updater — a SHA-1 that does not match the signed manifest is refused (SHA-1 AND SHA-256)', async () => {
    const f = await fixture([{ 'a.txt': 'one\n' }])
    await f.publish({ 'a.txt': 'two\n' }, {
      tamper: (m) => {
        const e = m.entries.find((x) => x.path === 'a.txt')
        if (e?.kind === 'file') e.sha1 = '0'.repeat(40)
      },
    })
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    const err = await update(f.wc, { source: f.source, alerts: new RecordingAlerts() }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_HASH_MISMATCH')).toBe(true)
    expect((err as Error).message).toMatch(/SHA-1/)
    expect(await readFile(join(f.wc, 'a.txt'), 'utf8')).toBe('one\n')
  })

  it('updater — a manifest signed by another key is refused, naming the expected key', async () => {
    const f = await fixture([{ 'a.txt': 'one\n' }])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source })
    await f.publish({ 'a.txt': 'two\n' })
    const real = JSON.parse(await readFile(join(f.repo, 'releases', f.product, '2.json'), 'utf8'))
    f.source.releaseOverride.set(2, encodeRelease(signManifest(real.manifest, generatePublisherKey())))
    const err = await update(f.wc, { source: f.source, alerts: new RecordingAlerts() }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_SIGNATURE')).toBe(true)
    expect((err as Error).message).toContain(`trusts only key ${f.key.publicKey.slice(0, 16)}`)
    expect((await status(f.wc)).latest).toBe(1)
  })

  it('updater — an unknown revision is a clear error', async () => {
    const f = await fixture([{ 'a.txt': 'one\n' }])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source })
    await expect(update(f.wc, { source: f.source, alerts: new RecordingAlerts(), rev: 9 })).rejects.toMatchObject({ code: 'UPSWARM_E_UNKNOWN_REVISION' })
  })

  it('updater — init of a product no server holds yet says so, and leaves no working copy behind', async () => {
    const f = await fixture([])
    const err = await init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_UNKNOWN_REVISION')).toBe(true)
    expect((err as Error).message).toContain(`no repository server holds a release of product ${f.product}`)
    expect(await readdir(f.wc).catch(() => [])).toEqual([])
  })
})

describe('updater — no rollback attack', () => {
  it('updater — a source advertising an older newest revision is ignored and logged', async () => {
    const f = await fixture([{ 'a.txt': '1\n' }, { 'a.txt': '2\n' }, { 'a.txt': '3\n' }])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source })
    f.source.advertiseUpTo = 1
    const log = recordingLog()
    const res = await update(f.wc, { source: f.source, alerts: new RecordingAlerts(), log })
    expect(res).toMatchObject({ from: 3, to: 3 })
    expect(log.warnings.some((w) => /rollback attack/.test(w))).toBe(true)
    expect(await readFile(join(f.wc, 'a.txt'), 'utf8')).toBe('3\n')
  })

  it('updater — an old release replayed as the newest one is refused', async () => {
    const f = await fixture([{ 'a.txt': '1\n' }])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source })
    await f.publish({ 'a.txt': '2\n' })
    f.source.releaseOverride.set(2, await readFile(join(f.repo, 'releases', f.product, '1.json')))
    await expect(update(f.wc, { source: f.source, alerts: new RecordingAlerts() })).rejects.toMatchObject({ code: 'UPSWARM_E_MANIFEST' })
  })

  it("updater — an older manifest must match the client's own release history", async () => {
    const f = await fixture([{ 'a.txt': '1\n' }, { 'a.txt': '2\n' }, { 'a.txt': '3\n' }])
    // At r3 with history depth 1: r2 is known only by the hash r3's signed parent link gives.
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source, historyDepth: 1 })
    const r2 = JSON.parse(await readFile(join(f.repo, 'releases', f.product, '2.json'), 'utf8'))
    const forged = signManifest({ ...r2.manifest, createdAt: 'another day' }, f.key)
    f.source.releaseOverride.set(2, encodeRelease(forged))
    const err = await rollback(f.wc, { rev: 2, source: f.source }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_ROLLBACK')).toBe(true)
    expect((err as Error).message).toMatch(/release history/)
    f.source.releaseOverride.clear()
    expect(await rollback(f.wc, { rev: 1, source: f.source })).toEqual({ from: 3, to: 1, source: 'remote' })
    expect(await readFile(join(f.wc, 'a.txt'), 'utf8')).toBe('1\n')
  })
})

describe('updater — conflicts, failures and odd trees', () => {
  const R1: TreeSpec = { 'app.ini': 'a1\n', 'other.txt': 'o1\n' }
  const R2: TreeSpec = { 'app.ini': 'a2\n', 'other.txt': 'o2\n' }

  it('updater — --on-conflict=abort changes nothing and downloads nothing', async () => {
    const f = await fixture([R1, R2])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    await writeFile(join(f.wc, 'app.ini'), 'mine\n')
    const before = f.source.calls.fetchBlob
    const alerts = new RecordingAlerts()
    const err = await update(f.wc, { source: f.source, alerts, onConflict: 'abort' }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_CONFLICT')).toBe(true)
    expect((err as Error).message).toMatch(/app\.ini/)
    expect(f.source.calls.fetchBlob).toBe(before)
    expect(alerts.alerts).toEqual([])
    expect(await snapshotTree(f.wc)).toEqual({ ...f.trees[0], 'app.ini': 'file 644 mine\n' })
  })

  it('updater — --on-conflict=overwrite alerts, then installs the new version', async () => {
    const f = await fixture([R1, R2])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    await writeFile(join(f.wc, 'app.ini'), 'mine\n')
    const alerts = new RecordingAlerts()
    const res = await update(f.wc, { source: f.source, alerts, onConflict: 'overwrite' })
    expect(res).toMatchObject({ updated: 2, conflicts: ['app.ini'] })
    expect(alerts.alerts.map((a) => a.path)).toEqual(['app.ini'])
    expect(await snapshotTree(f.wc)).toEqual(f.trees[1])
  })

  it('updater — a failure in the middle of the apply is rolled back and names the path', async () => {
    const f = await fixture([
      { 'a.txt': 'a1\n', 'data/inside.txt': 'i\n', 'z.txt': 'z1\n' },
      { 'a.txt': 'a2\n', data: 'data is a file now\n', 'z.txt': 'z2\n' },
    ])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    // The user keeps a file of their own in data/: the directory cannot become a file.
    await writeFile(join(f.wc, 'data', 'mine.txt'), 'mine\n')
    const expected = { ...f.trees[0], 'data/mine.txt': 'file 644 mine\n' }
    const err = await update(f.wc, { source: f.source, alerts: new RecordingAlerts() }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_IO')).toBe(true)
    expect((err as Error).message).toContain(join(f.wc, 'data'))
    expect((err as Error).message).toMatch(/rolled back/)
    expect(await snapshotTree(f.wc)).toEqual(expected)
    expect((await status(f.wc)).rev).toBe(1)
    await expectClean(f.wc)
  })

  it.skipIf(!CAN_CHATTR)('updater — permission denied in the middle of the apply: rolled back, the path named', async () => {
    const f = await fixture([
      { 'a.txt': 'a1\n', 'locked/b.txt': 'b1\n', 'z.txt': 'z1\n' },
      { 'a.txt': 'a2\n', 'locked/b.txt': 'b2\n', 'z.txt': 'z2\n' },
    ])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    execFileSync('chattr', ['+i', join(f.wc, 'locked')])
    try {
      const err = await update(f.wc, { source: f.source, alerts: new RecordingAlerts() }).catch((e: unknown) => e)
      expect(isUpswarmError(err, 'UPSWARM_E_IO')).toBe(true)
      expect((err as Error).message).toContain(join(f.wc, 'locked', 'b.txt'))
      expect((err as Error).message).toMatch(/EPERM.*rolled back/)
    } finally {
      execFileSync('chattr', ['-i', join(f.wc, 'locked')])
    }
    expect(await snapshotTree(f.wc)).toEqual(f.trees[0])
    await expectClean(f.wc)
    expect((await update(f.wc, { source: f.source, alerts: new RecordingAlerts() })).to).toBe(2)
  })

  it.skipIf(!CAN_MOUNT)('updater — an update the disk cannot hold: refused before anything is written, nothing changed, the largest path named', async () => {
    const f = await fixture([{ 'a.txt': 'a1\n' }, { 'a.txt': 'a2\n', 'big.bin': 'x'.repeat(600 * 1024) }])
    const disk = await mkdtemp(join(tmpdir(), 'upswarm-small-disk-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk])
    try {
      const wc = join(disk, 'wc')
      await init(wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
      const err = await update(wc, { source: f.source, alerts: new RecordingAlerts() }).catch((e: unknown) => e)
      expect(isUpswarmError(err)).toBe(true)
      expect((err as Error).message).toMatch(/not enough free space .* the largest file is big\.bin, 600 KiB\) .*\(ENOSPC ahead\); nothing was changed/)
      expect(await snapshotTree(wc)).toEqual(f.trees[0])
      await expectClean(wc)
    } finally {
      execFileSync('umount', [disk])
      await rm(disk, { recursive: true, force: true })
    }
  })

  it('updater — never writes through a symlink the user planted in place of a directory', async () => {
    const f = await fixture([{ 'lib/a.txt': 'a\n' }, { 'lib/a.txt': 'a\n', 'lib/new.txt': 'new\n', 'b.txt': 'b\n' }])
    await init(f.wc, { product: f.product, publicKey: f.key.publicKey, rev: 1, source: f.source })
    const outside = join(tmp.path, `outside-${randomUUID()}`)
    await mkdir(outside)
    await rm(join(f.wc, 'lib'), { recursive: true })
    await symlink(outside, join(f.wc, 'lib'))
    const log = recordingLog()
    const res = await update(f.wc, { source: f.source, alerts: new RecordingAlerts(), log })
    expect(res).toMatchObject({ to: 2, checkedOut: 1 })
    expect(await readdir(outside)).toEqual([])
    expect(log.warnings.some((w) => w.includes('lib/new.txt'))).toBe(true)
    expect(await readFile(join(f.wc, 'b.txt'), 'utf8')).toBe('b\n')
  })

  it('updater — init refuses a non-empty directory; --adopt classifies and never overwrites', async () => {
    const f = await fixture([{ 'same.txt': 'same\n', 'differs.txt': 'published\n', 'new.txt': 'new\n' }])
    await writeTree(f.wc, { 'same.txt': 'same\n', 'differs.txt': 'local\n', 'own.txt': 'own\n' })
    await expect(init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source })).rejects.toMatchObject({ code: 'UPSWARM_E_WORKING_COPY' })
    expect(await readdir(f.wc)).not.toContain('.upswarm')
    const res = await init(f.wc, { product: f.product, publicKey: f.key.publicKey, source: f.source, adopt: true })
    expect(res).toMatchObject({ to: 1, checkedOut: 1, conflicts: ['differs.txt'] })
    const by = Object.fromEntries((await status(f.wc)).files.map((x) => [x.path, x.status]))
    expect(by).toEqual({ 'differs.txt': 'modified', 'new.txt': 'current', 'own.txt': 'unversioned', 'same.txt': 'current' })
    expect(await readFile(join(f.wc, 'differs.txt'), 'utf8')).toBe('local\n')
  })
})
