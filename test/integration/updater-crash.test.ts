// kill -9 of a real update at every durable step (and of a recovery in the middle of an undo):
// the next command recovers the working copy to exactly the old or exactly the new revision,
// plus the user's protected changes, with no staging file left, and a later update completes.
import { execFile, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { access, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ignore, init, recover, status, update } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, snapshotTree, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const run = promisify(execFile)
const CHILD = join(import.meta.dirname, '../helpers/updater-child.ts')
const MAX_STEPS = 200
const PARALLEL = 2

const R1: TreeSpec = {
  'keep.txt': 'same in both\n',
  'mod.txt': 'v1\n',
  'gone.txt': 'removed in r2\n',
  'dir/x.txt': 'x1\n',
  'dir/sub/y.txt': 'y, its directory goes away\n',
  t1: 'a file that becomes a directory\n',
  't2/z.txt': 'a directory that becomes a file\n',
  ln: { symlink: 'keep.txt' },
  exe: { content: 'same content, new mode\n', mode: 0o644 },
  'conf/user.ini': 'u1\n',
  'conf/app.ini': 'a1\n',
}
const R2: TreeSpec = {
  'keep.txt': 'same in both\n',
  'mod.txt': 'v2\n',
  'dir/x.txt': 'x2\n',
  't1/inner.txt': 'now inside t1\n',
  t2: 't2 is a file now\n',
  ln: { symlink: 'mod.txt' },
  exe: { content: 'same content, new mode\n', mode: 0o755 },
  'conf/user.ini': 'u2\n',
  'conf/app.ini': 'a2\n',
  'newdir/deep/n.txt': 'new\n',
}
const PROTECTED = { 'conf/user.ini': 'file 644 mine\n', 'conf/app.ini': 'file 644 hacked\n' }

interface ChildExit {
  signal: NodeJS.Signals | null
  code: number | null
  stdout: string
}

function child(args: string[], crashAfter?: number): Promise<ChildExit> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_TRACE_STEPS: '1' }
    if (crashAfter === undefined) delete env.UPSWARM_CRASH_AFTER_STEP
    else env.UPSWARM_CRASH_AFTER_STEP = String(crashAfter)
    const p = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d })
    p.stderr.on('data', (d: Buffer) => { stderr += d })
    p.on('error', reject)
    p.on('exit', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`child ${args.join(' ')} failed (${code}): ${stderr}`))
      else resolve({ code, signal, stdout })
    })
  })
}

describe('updater — crash safety', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let repo: string
  let template: string
  let oldTree: Record<string, string>
  let newTree: Record<string, string>

  beforeAll(async () => {
    tmp = await tempDir('upswarm-updater-crash-')
    repo = join(tmp.path, 'repo')
    template = join(tmp.path, 'template')
    const key = generatePublisherKey()
    const product = randomUUID()
    await writeTree(join(tmp.path, 's1'), R1)
    await writeTree(join(tmp.path, 's2'), R2)
    await publishLocal(repo, { key, product, src: join(tmp.path, 's1') })
    await publishLocal(repo, { key, product, src: join(tmp.path, 's2') })
    oldTree = { ...(await snapshotTree(join(tmp.path, 's1'))), ...PROTECTED }
    newTree = { ...(await snapshotTree(join(tmp.path, 's2'))), ...PROTECTED }
    await init(template, { product, publicKey: key.publicKey, rev: 1, source: new DirectorySource(repo) })
    await ignore(template, 'conf/user.ini')
    await writeFile(join(template, 'conf/user.ini'), 'mine\n')
    await writeFile(join(template, 'conf/app.ini'), 'hacked\n')
    expect(await snapshotTree(template)).toEqual(oldTree)
  })
  afterAll(async () => tmp?.cleanup())

  async function copyOfTemplate(name: string): Promise<string> {
    const dir = join(tmp.path, name)
    await run('cp', ['-a', template, dir])
    return dir
  }

  /** Exactly one revision, state agreeing with the tree, no staging or temporary file. */
  async function expectOneRevision(dir: string): Promise<number> {
    const tree = await snapshotTree(dir)
    const rev = tree['mod.txt'] === 'file 644 v2\n' ? 2 : 1
    expect(tree).toEqual(rev === 2 ? newTree : oldTree)
    expect((await status(dir)).rev).toBe(rev)
    const meta = await readdir(join(dir, '.upswarm'))
    expect(meta.filter((n) => ['staging', 'journal.json', 'lock'].includes(n))).toEqual([])
    expect(await readdir(join(dir, '.upswarm', 'tmp')).catch(() => [])).toEqual([])
    expect(await readdir(join(dir, '.upswarm', 'history', 'tmp')).catch(() => [])).toEqual([])
    return rev
  }

  // Some thirty child processes, each a fresh Node start: a generous bound on two busy cores.
  it('updater — kill -9 after every journal step, then recovery: exactly one revision', { timeout: 300_000 }, async () => {
    const full = await copyOfTemplate('full')
    const done = await child(['update', full, repo])
    const labels = (JSON.parse(done.stdout) as { steps: { labels: string[] } }).steps.labels
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
        const exit = await child(['update', dir, repo], n)
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
      expect((await child(['update', dir, repo], n)).signal).toBe('SIGKILL')
      expect((await child(['recover', dir, repo], 2)).signal).toBe('SIGKILL')
      await recover(dir)
      expect(await expectOneRevision(dir)).toBe(1)
      // And the working copy is usable: the update goes through.
      await update(dir, { source: new DirectorySource(repo), alerts: new RecordingAlerts() })
      expect(await expectOneRevision(dir)).toBe(2)
    }
  })
})
