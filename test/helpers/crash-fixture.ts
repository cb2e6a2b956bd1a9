// The fixture of the kill -9 tests (test/integration/updater-crash.test.ts and the fault suite's
// S1, issue 11): a product with two revisions whose diff touches every kind of journal
// operation, a working copy at r1 with the user's protected changes, a child process running
// one updater operation that can be killed after a given durable step or at a given moment,
// and the check that a working copy is at exactly one revision plus the user's changes.
import { execFile, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ignore, init, status } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { DirectorySource } from './dir-source.ts'
import { publishLocal, snapshotTree, writeTree, type TreeSpec } from './local-publish.ts'

const run = promisify(execFile)
const CHILD = join(import.meta.dirname, 'updater-child.ts')

export const CRASH_R1: TreeSpec = {
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
export const CRASH_R2: TreeSpec = {
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
/** The user's changes: an ignored file and a modified one, both kept across updates. */
const PROTECTED = { 'conf/user.ini': 'file 644 mine\n', 'conf/app.ini': 'file 644 hacked\n' }

export interface ChildExit {
  signal: NodeJS.Signals | null
  code: number | null
  stdout: string
}

export interface ChildOptions {
  /** UPSWARM_CRASH_AFTER_STEP: the child SIGKILLs itself right after its N-th durable step. */
  crashAfter?: number
  /** SIGKILL from outside this many ms after the child starts its operation (a random moment). */
  killAfterMs?: number
}

/** Runs `updater-child.ts <op> <dir> <repo> [rev]`; resolves on exit 0 or a signal. */
export function updaterChild(args: string[], opts: ChildOptions = {}): Promise<ChildExit> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_TRACE_STEPS: '1', UPSWARM_CHILD_READY: '1' }
    if (opts.crashAfter === undefined) delete env.UPSWARM_CRASH_AFTER_STEP
    else env.UPSWARM_CRASH_AFTER_STEP = String(opts.crashAfter)
    const p = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timer: NodeJS.Timeout | undefined
    p.stdout.on('data', (d: Buffer) => { stdout += d })
    p.stderr.on('data', (d: Buffer) => {
      stderr += d
      // The child says "ready" on stderr just before it starts the operation.
      if (opts.killAfterMs !== undefined && timer === undefined && stderr.includes('ready\n')) {
        timer = setTimeout(() => p.kill('SIGKILL'), opts.killAfterMs)
      }
    })
    p.on('error', reject)
    p.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (code !== 0 && signal === null) reject(new Error(`child ${args.join(' ')} failed (${code}): ${stderr}`))
      else resolve({ code, signal, stdout })
    })
  })
}

/** What a finished child printed: the labels of its durable steps and how long the operation took. */
export function childReport(exit: ChildExit): { labels: string[]; ms: number } {
  const out = JSON.parse(exit.stdout) as { steps: { labels: string[] }; ms: number }
  return { labels: out.steps.labels, ms: out.ms }
}

/** What an interrupted or failed operation may not leave in a working copy: staging, journal, lock, temporary files. */
export async function leftovers(dir: string): Promise<string[]> {
  const problems: string[] = []
  const meta = await readdir(join(dir, '.upswarm'))
  for (const left of meta.filter((n) => ['staging', 'journal.json', 'lock'].includes(n))) problems.push(`.upswarm/${left} left behind`)
  for (const tmp of ['tmp', 'history/tmp']) {
    const files = await readdir(join(dir, '.upswarm', tmp)).catch(() => [])
    if (files.length) problems.push(`.upswarm/${tmp} holds ${files.join(', ')}`)
  }
  return problems
}

export interface CrashFixture {
  repo: string
  /** A fresh copy (cp -a) of the working copy at r1 with the user's changes. */
  copy(name: string): Promise<string>
  /** The revision the working copy is at, and every way it is not exactly that revision plus the user's changes. */
  check(dir: string): Promise<{ rev: number; problems: string[] }>
}

export async function crashFixture(base: string): Promise<CrashFixture> {
  const repo = join(base, 'repo')
  const template = join(base, 'template')
  const key = generatePublisherKey()
  const product = randomUUID()
  await writeTree(join(base, 's1'), CRASH_R1)
  await writeTree(join(base, 's2'), CRASH_R2)
  await publishLocal(repo, { key, product, src: join(base, 's1') })
  await publishLocal(repo, { key, product, src: join(base, 's2') })
  const trees: Record<number, Record<string, string>> = {
    1: { ...(await snapshotTree(join(base, 's1'))), ...PROTECTED },
    2: { ...(await snapshotTree(join(base, 's2'))), ...PROTECTED },
  }
  await init(template, { product, publicKey: key.publicKey, rev: 1, source: new DirectorySource(repo) })
  await ignore(template, 'conf/user.ini')
  await writeFile(join(template, 'conf/user.ini'), 'mine\n')
  await writeFile(join(template, 'conf/app.ini'), 'hacked\n')

  async function check(dir: string): Promise<{ rev: number; problems: string[] }> {
    const tree = await snapshotTree(dir)
    const rev = tree['mod.txt'] === 'file 644 v2\n' ? 2 : 1
    const want = trees[rev]!
    const problems: string[] = []
    for (const path of new Set([...Object.keys(want), ...Object.keys(tree)])) {
      if (tree[path] !== want[path]) problems.push(`${path}: ${tree[path] ?? 'absent'}, r${rev} has ${want[path] ?? 'nothing'}`)
    }
    const recorded = (await status(dir)).rev
    if (recorded !== rev) problems.push(`state says r${recorded}, the tree is r${rev}`)
    problems.push(...(await leftovers(dir)))
    return { rev, problems }
  }

  if ((await check(template)).problems.length) throw new Error(`crash fixture: the template is not r1 plus the user's changes: ${(await check(template)).problems.join('; ')}`)
  return {
    repo,
    async copy(name) {
      const dir = join(base, name)
      await run('cp', ['-a', template, dir])
      return dir
    },
    check,
  }
}
