// The previous release's CLI, built from git (issue 13 item 3; docs/formats.md §5 step 0): the
// compatibility tests run it beside this tree's CLI, so no format change can strand a fleet.
// The commit comes from test/compat/previous.json (by hash, so a clone without tags still has it);
// its files are taken with `git archive` (no worktree left registered), its dependencies are this
// tree's node_modules when its package-lock.json is the same (else its own `npm ci`), and it is
// built once per commit into a cache directory under the system's temporary directory.
import { execFile, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, rename, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'

const run = promisify(execFile)

export interface PreviousRelease {
  tag: string
  commit: string
  /** The built CLI entry: `node <cli> …`. */
  cli: string
  /** Where its files were unpacked. */
  dir: string
}

interface Pin { tag: string; commit: string }

function pin(): Pin {
  return JSON.parse(readFileSync(join(PROJECT_ROOT, 'test', 'compat', 'previous.json'), 'utf8')) as Pin
}

async function git(args: string[]): Promise<string> {
  return (await run('git', ['-C', PROJECT_ROOT, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout
}

/** `git archive COMMIT | tar -x -C DIR`, streamed. */
async function unpack(commit: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  await new Promise<void>((resolve, reject) => {
    const archive = spawn('git', ['-C', PROJECT_ROOT, 'archive', '--format=tar', commit], { stdio: ['ignore', 'pipe', 'pipe'] })
    const tar = spawn('tar', ['-x', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] })
    archive.stdout.pipe(tar.stdin)
    let err = ''
    archive.stderr.on('data', (d: Buffer) => { err += d.toString() })
    tar.stderr!.on('data', (d: Buffer) => { err += d.toString() })
    let left = 2
    const done = (what: string) => (code: number | null) => {
      if (code !== 0) reject(new Error(`${what} of ${commit} failed (exit ${code}): ${err.trim()}`))
      else if (--left === 0) resolve()
    }
    archive.on('close', done('git archive'))
    tar.on('close', done('tar -x'))
    archive.on('error', reject)
    tar.on('error', reject)
  })
}

/** The two lock files pin the same packages (the project's own name and version aside). */
function sameDependencies(a: string, b: string): boolean {
  const deps = (file: string): string => {
    const lock = JSON.parse(readFileSync(file, 'utf8')) as { packages?: Record<string, unknown> }
    const { '': _self, ...packages } = lock.packages ?? {}
    return JSON.stringify(packages)
  }
  return deps(a) === deps(b)
}

/**
 * Unpacks and builds the previous release (once per commit; later calls reuse the build).
 * A clone that lacks the commit (shallow) is told so, with the command that fetches it.
 */
export async function previousRelease(): Promise<PreviousRelease> {
  const { tag, commit } = pin()
  try {
    await git(['cat-file', '-e', `${commit}^{commit}`])
  } catch {
    throw new Error(`the compatibility tests need commit ${commit} (tag ${tag}), which this clone does not have: ` +
      `run \`git fetch --unshallow\` or \`git fetch origin ${tag}\``)
  }
  const dir = join(tmpdir(), `upswarm-previous-${commit.slice(0, 12)}`)
  const cli = join(dir, 'bin', 'upswarm.mjs')
  if (existsSync(join(dir, '.built'))) return { tag, commit, cli, dir }

  // Build in a scratch directory and rename it into place: a build that died halfway is never reused.
  const scratch = `${dir}.${process.pid}.tmp`
  await rm(scratch, { recursive: true, force: true })
  await unpack(commit, scratch)
  if (sameDependencies(join(scratch, 'package-lock.json'), join(PROJECT_ROOT, 'package-lock.json'))) await symlink(join(PROJECT_ROOT, 'node_modules'), join(scratch, 'node_modules'), 'dir')
  else await run('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: scratch, maxBuffer: 64 * 1024 * 1024 })
  await run(process.execPath, [join(scratch, 'scripts', 'build.mjs')], { cwd: scratch, maxBuffer: 64 * 1024 * 1024 })
  // The build leaves absolute paths nowhere: dist/ only imports packages and its own chunks.
  await run('touch', [join(scratch, '.built')])
  await rm(dir, { recursive: true, force: true })
  await rename(scratch, dir)
  return { tag, commit, cli: join(dir, 'bin', 'upswarm.mjs'), dir }
}
