// The scenario on real files: r1, r2, r3 published; a working copy at r1 with one
// file edited by hand, one ignored and edited, one deleted; status; update to r3; rollback to
// r2 with no network (history store); rollback to r1 after garbage collection (downloads).
import { randomUUID } from 'node:crypto'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { history, ignore, init, rollback, status, update } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { isUpswarmError } from '../../infra/errors.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, snapshotTree, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const R1: TreeSpec = {
  'bin/run': { content: '#!/bin/sh\necho v1\n', mode: 0o755 },
  'conf/app.ini': 'app=1\n',
  'conf/local.ini': 'colour=blue\n',
  'lib/a.txt': 'a, never changes\n',
  'lib/b.txt': 'b1\n',
  'old.txt': 'dropped in r3\n',
  README: 'readme\n',
  link: { symlink: 'README' },
}
const R2: TreeSpec = { ...R1, 'conf/app.ini': 'app=2\n', 'lib/b.txt': 'b2\n', 'new/n.txt': 'n2\n' }
const { 'old.txt': _dropped, ...R2_WITHOUT_OLD } = R2
const R3: TreeSpec = {
  ...R2_WITHOUT_OLD,
  'conf/app.ini': 'app=3\n',
  'conf/local.ini': 'colour=green\n',
  'lib/b.txt': 'b3\n',
  'new/n.txt': 'n3\n',
  'docs/guide.md': '# guide\n',
}

const HAND_EDIT = 'app=1\nhacked=yes\n'
const MY_COLOUR = 'colour=red\n'

describe('updater — scenario on a directory source', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let repo: string
  let wc: string
  let source: DirectorySource
  const key = generatePublisherKey()
  const product = randomUUID()
  const snapshots: Record<number, Record<string, string>> = {}

  beforeAll(async () => {
    tmp = await tempDir('upswarm-updater-scenario-')
    repo = join(tmp.path, 'repo')
    wc = join(tmp.path, 'wc')
    for (const [i, spec] of [R1, R2, R3].entries()) {
      const src = join(tmp.path, `src${i + 1}`)
      await writeTree(src, spec)
      snapshots[i + 1] = await snapshotTree(src)
      expect((await publishLocal(repo, { key, product, src, label: `1.${i}` })).rev).toBe(i + 1)
    }
    source = new DirectorySource(repo)
  })
  afterAll(async () => tmp?.cleanup())

  /** The user's protected changes on top of a revision's tree. */
  const withUserChanges = (rev: number): Record<string, string> => ({
    ...snapshots[rev],
    'conf/app.ini': `file 644 ${HAND_EDIT}`,
    'conf/local.ini': `file 644 ${MY_COLOUR}`,
  })

  async function expectNoStaging(): Promise<void> {
    const meta = await readdir(join(wc, '.upswarm'))
    expect(meta).not.toContain('staging')
    expect(meta).not.toContain('journal.json')
    expect(meta).not.toContain('lock')
    expect(await readdir(join(wc, '.upswarm', 'tmp')).catch(() => [])).toEqual([])
  }

  it('updater — init checks out revision 1 exactly', async () => {
    const res = await init(wc, { product, publicKey: key.publicKey, rev: 1, source, historyDepth: 2 })
    expect(res).toMatchObject({ from: 0, to: 1, checkedOut: 8, updated: 0, removed: 0, conflicts: [] })
    expect(res.bytesFromServers).toBeGreaterThan(0)
    expect(await snapshotTree(wc)).toEqual(snapshots[1])
    await expectNoStaging()
  })

  it('updater — status shows conflict / ignored / missing / outdated / current / removed', async () => {
    await writeFile(join(wc, 'conf/app.ini'), HAND_EDIT)
    await ignore(wc, 'conf/local.ini')
    await writeFile(join(wc, 'conf/local.ini'), MY_COLOUR)
    await rm(join(wc, 'lib/a.txt'))
    const report = await status(wc, { source })
    expect(report).toMatchObject({ product, rev: 1, latest: 3, target: 3 })
    const by = Object.fromEntries(report.files.map((f) => [f.path, f.status]))
    expect(by).toEqual({
      bin: 'current',
      'bin/run': 'current',
      conf: 'current',
      'conf/app.ini': 'conflict',
      'conf/local.ini': 'ignored',
      docs: 'missing',
      'docs/guide.md': 'missing',
      lib: 'current',
      'lib/a.txt': 'missing',
      'lib/b.txt': 'outdated',
      link: 'current',
      new: 'missing',
      'new/n.txt': 'missing',
      'old.txt': 'removed',
      README: 'current',
    })
  })

  it('updater — update to r3 leaves the conflict alone and raises exactly one alert', async () => {
    const alerts = new RecordingAlerts()
    const phases: string[] = []
    const res = await update(wc, { source, alerts, threads: 2, onProgress: (p) => { if (!phases.includes(p.phase)) phases.push(p.phase) } })
    expect(res).toMatchObject({ from: 1, to: 3, updated: 1, checkedOut: 3, removed: 1, conflicts: ['conf/app.ini'] })
    expect(phases).toEqual(['checking', 'planning', 'downloading', 'applying', 'retaining'])
    expect(alerts.alerts).toHaveLength(1)
    const [alert] = alerts.alerts
    expect(alert).toMatchObject({ type: 'conflict', product, path: 'conf/app.ini', rev: 1, targetRev: 3 })
    expect(alert?.expected).toMatchObject({ kind: 'file', sha1: expect.stringMatching(/^[0-9a-f]{40}$/) })
    expect(alert?.found).toMatchObject({ kind: 'file', size: HAND_EDIT.length })
    expect(await snapshotTree(wc)).toEqual(withUserChanges(3))
    await expectNoStaging()
    const after = Object.fromEntries((await status(wc)).files.map((f) => [f.path, f.status]))
    expect(after['conf/app.ini']).toBe('modified')
    expect(after['conf/local.ini']).toBe('ignored')
    expect(Object.entries(after).filter(([p, s]) => s !== 'current' && !p.startsWith('conf/'))).toEqual([])
  })

  it('updater — history keeps the last 2 revisions locally', async () => {
    const h = await history(wc)
    expect(h).toMatchObject({ product, current: 3, latest: 3, historyDepth: 2 })
    // r3's app.ini was never downloaded (the conflict kept the user's file); r1 was collected.
    expect(h.revisions.map((r) => [r.rev, r.local, r.current])).toEqual([[1, false, false], [2, true, false], [3, false, true]])
    expect(h.revisions[1]?.label).toBe('1.1')
  })

  it('updater — rollback to r2 works with no network, from the history store', async () => {
    source.online = false
    const before = { ...source.calls }
    const res = await rollback(wc, { rev: 2 })
    expect(res).toEqual({ from: 3, to: 2, source: 'local' })
    expect(source.calls).toEqual(before)
    expect(await snapshotTree(wc)).toEqual(withUserChanges(2))
    await expectNoStaging()
  })

  it('updater — rollback must go lower than the current revision (S142)', async () => {
    await expect(rollback(wc, { rev: 2 })).rejects.toMatchObject({ code: 'UPSWARM_E_ROLLBACK' })
    await expect(rollback(wc, { rev: 3 })).rejects.toMatchObject({ code: 'UPSWARM_E_ROLLBACK' })
  })

  it('updater — rollback to r1 after garbage collection needs the source, then downloads', async () => {
    const err = await rollback(wc, { rev: 1 }).catch((e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_NO_SERVER')).toBe(true)
    expect((err as Error).message).toMatch(/lib\/b\.txt/)
    expect(await snapshotTree(wc)).toEqual(withUserChanges(2))
    await expectNoStaging()

    source.online = true
    const res = await rollback(wc, { rev: 1, source })
    expect(res).toEqual({ from: 2, to: 1, source: 'remote' })
    expect(await snapshotTree(wc)).toEqual({ ...withUserChanges(1), 'conf/app.ini': `file 644 ${HAND_EDIT}` })
    expect(await readFile(join(wc, 'lib/b.txt'), 'utf8')).toBe('b1\n')
  })

  it('updater — after a rollback, an automatic update holds until a newer release appears', async () => {
    const res = await update(wc, { source, alerts: new RecordingAlerts() })
    expect(res).toMatchObject({ from: 1, to: 1 })
    const explicit = await update(wc, { source, alerts: new RecordingAlerts(), rev: 3 })
    expect(explicit).toMatchObject({ from: 1, to: 3 })
    expect(await snapshotTree(wc)).toEqual(withUserChanges(3))
  })
})
