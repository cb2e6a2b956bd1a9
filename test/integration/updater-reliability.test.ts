// Issue 11: an update never says done when it is not (paths blocked by the user's files), alerts
// are never lost (undelivered ones are kept and sent by the next connected run), and blobs from
// the local history store are re-hashed before they are installed.
import { randomUUID } from 'node:crypto'
import { appendFile, chmod, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { init, rollback, status, update, type UpdaterAlert } from '../../actors/updater/index.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { makeServe } from '../../actors/share-daemon/serve.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

/** An alert sink that cannot deliver (the alert stream is unreachable). */
class FailingAlerts {
  async publish(_alert: UpdaterAlert): Promise<void> {
    throw new Error('alert stream unavailable')
  }
}

describe('updater — reliability', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let wc: string
  let source: DirectorySource
  const key = generatePublisherKey()

  beforeEach(async () => {
    tmp = await tempDir('upswarm-updater-reliab-')
    wc = join(tmp.path, 'wc')
  })
  afterEach(async () => tmp?.cleanup())

  /** Publishes the trees as r1, r2, … and creates a working copy at r1. */
  async function releases(...trees: TreeSpec[]): Promise<string> {
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    for (const [i, spec] of trees.entries()) {
      const src = join(tmp.path, `src${i + 1}`)
      await writeTree(src, spec)
      await publishLocal(repo, { key, product, src })
    }
    source = new DirectorySource(repo)
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source, historyDepth: 3 })
    return product
  }

  it('updater — paths blocked by the user\'s files are reported as blocked, with a warning each, not as done', async () => {
    await releases({ 'a.txt': 'a\n' }, { 'a.txt': 'a\n', 'd/x.txt': 'x\n', 'e/y.txt': 'y\n' })
    // A file where r2 has a directory, and a symlink the user made over r2's directory.
    await writeFile(join(wc, 'd'), 'mine\n')
    await mkdir(join(tmp.path, 'elsewhere'))
    await symlink(join(tmp.path, 'elsewhere'), join(wc, 'e'))
    const r = await update(wc, { source, alerts: new RecordingAlerts() })
    expect(r.to).toBe(2)
    expect(r.blocked).toEqual(['d/x.txt', 'e/y.txt'])
    expect(r.warnings.filter((w) => /is not installed/.test(w))).toHaveLength(2)
    expect(await readFile(join(wc, 'd'), 'utf8')).toBe('mine\n')
    // Still blocked on the next run: it says so again instead of "done".
    expect((await update(wc, { source, alerts: new RecordingAlerts() })).blocked).toEqual(['d/x.txt', 'e/y.txt'])
  })

  it('updater — an alert that cannot be delivered is reported and kept; the next connected run delivers it', async () => {
    await releases({ 'c.ini': 'v=1\n' }, { 'c.ini': 'v=2\n' }, { 'c.ini': 'v=3\n' })
    await writeFile(join(wc, 'c.ini'), 'v=mine\n')
    const failed = await update(wc, { source, alerts: new FailingAlerts(), rev: 2 })
    expect(failed.conflicts).toEqual(['c.ini'])
    expect(failed.alerts).toMatchObject({ delivered: [], pending: 1 })
    expect(failed.alerts.undelivered).toEqual([{ path: 'c.ini', reason: expect.stringMatching(/alert stream unavailable/) }])
    // Offline (no alert sink at all): kept too.
    const offline = await update(wc, { source, rev: 3 })
    expect(offline.alerts.undelivered).toEqual([{ path: 'c.ini', reason: expect.stringMatching(/no connection/) }])
    expect(offline.alerts.pending).toBe(2)
    expect((await status(wc)).alertsPending).toBe(2)
    const sink = new RecordingAlerts()
    const next = await update(wc, { source, alerts: sink })
    expect(next.alerts).toMatchObject({ earlierDelivered: 2, pending: 0 })
    expect((await status(wc)).alertsPending).toBe(0)
    expect(sink.alerts.map((a) => [a.path, a.rev, a.targetRev])).toEqual([['c.ini', 1, 2], ['c.ini', 2, 3]])
  })

  it('updater — a delivered alert is reported as delivered', async () => {
    await releases({ 'c.ini': 'v=1\n' }, { 'c.ini': 'v=2\n' })
    await writeFile(join(wc, 'c.ini'), 'v=mine\n')
    const sink = new RecordingAlerts()
    const r = await update(wc, { source, alerts: sink })
    expect(r.alerts).toEqual({ delivered: ['c.ini'], undelivered: [], earlierDelivered: 0, pending: 0 })
    expect(sink.alerts).toHaveLength(1)
  })

  it('updater — a corrupt blob in the local history store is not installed: it is fetched again, or the rollback fails offline', async () => {
    await releases({ 'a.txt': 'A1\n', 'b.txt': 'B\n' }, { 'a.txt': 'A2\n', 'b.txt': 'B\n' })
    await update(wc, { source, alerts: new RecordingAlerts() })
    const history = (await WorkingCopy.open(wc)).history
    const blob = history.path(sha256Hex(Buffer.from('A1\n')))
    await chmod(blob, 0o644)
    await writeFile(blob, 'XX\n')
    // Offline: the corrupt copy is refused; the tree stays at r2.
    source.online = false
    await expect(rollback(wc, { rev: 1 })).rejects.toMatchObject({ code: 'UPSWARM_E_NO_SERVER', message: expect.stringContaining('a.txt') })
    expect(await readFile(join(wc, 'a.txt'), 'utf8')).toBe('A2\n')
    // With a source: fetched again and verified.
    source.online = true
    const r = await rollback(wc, { rev: 1, source })
    expect(r).toEqual({ from: 2, to: 1, source: 'remote' })
    expect(await readFile(join(wc, 'a.txt'), 'utf8')).toBe('A1\n')
  })

  it('updater — a new file is its history file (one copy on disk), a second path with the same content is a copy of its own, and an edit in place is never installed or served from history', async () => {
    await releases({ 'a.txt': 'A1\n' }, { 'a.txt': 'A2\n', 'same/a.txt': 'A2\n', 'b.txt': 'B2\n' })
    await update(wc, { source, alerts: new RecordingAlerts() })
    const copy = await WorkingCopy.open(wc)
    const a2 = sha256Hex(Buffer.from('A2\n'))
    const [tree, twin, blob] = await Promise.all([stat(join(wc, 'a.txt')), stat(join(wc, 'same/a.txt')), stat(copy.history.path(a2))])
    // Whichever path was staged first is the history file; the other is a file of its own.
    expect([tree.ino, twin.ino]).toContain(blob.ino)
    expect(tree.ino).not.toBe(twin.ino)
    expect(blob.nlink).toBe(2)
    const linked = tree.ino === blob.ino ? 'a.txt' : 'same/a.txt'
    const other = linked === 'a.txt' ? 'same/a.txt' : 'a.txt'
    // A daemon's piece server, told that these tree paths hold A2 (a new one each time: verdicts are kept 5 s).
    const serveFor = (paths: string[]) => makeServe({ partials: new Map(), stores: () => [copy.history], layout: copy.layout, pathsOf: (sha) => (sha === a2 ? paths : undefined) })
    expect(String(await serveFor([linked])(a2, 0, 16))).toBe('A2\n')

    // The user edits the linked file in place: its history file changed with it, the twin did not.
    await appendFile(join(wc, linked), 'mine\n')
    expect(await readFile(join(wc, other), 'utf8')).toBe('A2\n')
    // The changed history file is not served; with the pristine twin beside it, the twin is.
    expect(await serveFor([linked])(a2, 0, 16)).toBeNull()
    expect(String(await serveFor([linked, other])(a2, 0, 16))).toBe('A2\n')
    // The read handles the serving kept: closed here, not by the garbage collector in a later file of this worker.
    copy.history.closeHandles()
    // Back to r1 and forward again: the changed history copy is re-hashed before use, refused,
    // and A2 fetched again and verified (the one blob the source is asked for).
    await rollback(wc, { rev: 1, onConflict: 'overwrite' })
    expect(await readFile(join(wc, 'a.txt'), 'utf8')).toBe('A1\n')
    const fetched = source.calls.fetchBlob
    const r = await update(wc, { source, rev: 2, alerts: new RecordingAlerts() })
    expect(source.calls.fetchBlob - fetched).toBe(1)
    expect(r.to).toBe(2)
    expect(await readFile(join(wc, 'a.txt'), 'utf8')).toBe('A2\n')
    expect(await readFile(join(wc, 'same/a.txt'), 'utf8')).toBe('A2\n')
  })
})
