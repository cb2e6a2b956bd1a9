// kill -9 of a real update at every durable step (and of a recovery in the middle of an undo):
// the next command recovers the working copy to exactly the old or exactly the new revision,
// plus the user's protected changes, with no staging file left, and a later update completes.
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recover, update } from '../../actors/updater/index.ts'
import { tempDir } from '../helpers/cluster.ts'
import { crashFixture, childReport, updaterChild as child, type CrashFixture } from '../helpers/crash-fixture.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'

const MAX_STEPS = 200
const PARALLEL = 2

describe('updater — crash safety', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let fx: CrashFixture
  let repo: string

  beforeAll(async () => {
    tmp = await tempDir('upswarm-updater-crash-')
    fx = await crashFixture(tmp.path)
    repo = fx.repo
  })
  afterAll(async () => tmp?.cleanup())

  const copyOfTemplate = (name: string): Promise<string> => fx.copy(name)

  /** Exactly one revision, state agreeing with the tree, no staging or temporary file. */
  async function expectOneRevision(dir: string): Promise<number> {
    const { rev, problems } = await fx.check(dir)
    expect(problems).toEqual([])
    return rev
  }

  // Some thirty child processes, each a fresh Node start: a generous bound on two busy cores.
  it('updater — kill -9 after every journal step, then recovery: exactly one revision', { timeout: 300_000 }, async () => {
    const full = await copyOfTemplate('full')
    const done = await child(['update', full, repo])
    const labels = childReport(done).labels
    expect(labels.length).toBeGreaterThan(15)
    expect(labels.length).toBeLessThan(MAX_STEPS)
    expect(await expectOneRevision(full)).toBe(2)
    // Every step from the journal on; of the staging steps (all alike) the first and the last.
    const staging = labels.flatMap((l, i) => (l.startsWith('stage ') ? [i + 1] : []))
    expect(staging.length).toBeGreaterThan(2)
    const points = labels.map((_, i) => i + 1).filter((n) => !staging.includes(n) || n === staging[0] || n === staging.at(-1))

    const outcomes = new Map<number, { rev: number; hadJournal: boolean }>()
    let next = 0
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (next < points.length) {
        const n = points[next++]!
        const dir = await copyOfTemplate(`crash-${n}`)
        const exit = await child(['update', dir, repo], { crashAfter: n })
        expect(exit.signal, `step ${n}`).toBe('SIGKILL')
        const hadJournal = await access(join(dir, '.upswarm', 'journal.json')).then(() => true, () => false)
        await recover(dir)
        outcomes.set(n, { rev: await expectOneRevision(dir), hadJournal })
      }
    }))
    const revs = [...outcomes.keys()].sort((a, b) => a - b).map((n) => outcomes.get(n)!.rev)
    // Before the commit the old revision stands, after it the new one; both happen.
    expect(revs[0]).toBe(1)
    expect(revs.at(-1)).toBe(2)
    expect(revs.indexOf(2)).toBeGreaterThan(0)
    expect(revs.slice(revs.indexOf(2)).every((r) => r === 2)).toBe(true)
    expect([...outcomes.values()].filter((o) => o.hadJournal && o.rev === 1).length).toBeGreaterThan(3)

    // A crash also interrupts the undo itself: recovery is idempotent.
    const midApply = [...outcomes].filter(([, o]) => o.hadJournal && o.rev === 1).map(([n]) => n)
    for (const n of [midApply[0]!, midApply[Math.floor(midApply.length / 2)]!]) {
      const dir = await copyOfTemplate(`recovery-crash-${n}`)
      expect((await child(['update', dir, repo], { crashAfter: n })).signal).toBe('SIGKILL')
      expect((await child(['recover', dir, repo], { crashAfter: 2 })).signal).toBe('SIGKILL')
      await recover(dir)
      expect(await expectOneRevision(dir)).toBe(1)
      // And the working copy is usable: the update goes through.
      await update(dir, { source: new DirectorySource(repo), alerts: new RecordingAlerts() })
      expect(await expectOneRevision(dir)).toBe(2)
    }
  })
})
