// No-op status (issue 7, benchmark 3): `upswarm status --offline` of an unchanged working copy
// of 100 000 small files, side by side with `git status` on the same tree (same files on disk:
// git's directory lives outside the tree, and ignores the working copy's .upswarm folder).
// "cold" is the first run of each after its index / stat cache was written (a fresh process;
// the OS caches hold what the setup left, unless --drop-caches); "warm" is the median of the
// next runs. The working copy is made by `init --adopt` from a local signed release
// (lib/local-source.ts): publishing 100 000 objects to JetStream would not fit the budget.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as updater from '../actors/updater/index.ts'
import { generatePublisherKey } from '../infra/release/keys.ts'
import { cliStartupMs, timed, upswarm } from './lib/cluster.ts'
import { withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { localSource } from './lib/local-source.ts'
import { median, progress, round, startRecording, type BenchResult, type CommonOptions } from './lib/report.ts'
import { barChart } from './lib/svg.ts'

export interface StatusBenchOptions extends CommonOptions {
  files: number
  warmRuns: number
  /** Write 3 to /proc/sys/vm/drop_caches before the cold runs (root only; affects the whole machine). */
  dropCaches?: boolean
}

export const STATUS_DEFAULTS: StatusBenchOptions = { files: 100_000, warmRuns: 3 }

/**
 * Small files (64 B – 4 KiB), 100 per directory, two levels deep; each file is a distinct
 * header line plus a slice of one random pool, so generating them costs only the writes.
 */
async function smallTree(root: string, files: number): Promise<number> {
  const pool = randomBytes(64 * 1024)
  let bytes = 0
  const batch = 256
  for (let start = 0; start < files; start += batch) {
    const end = Math.min(files, start + batch)
    const dirs = new Set<string>()
    for (let i = start; i < end; i++) dirs.add(join(root, `d${Math.floor(i / 10_000)}`, `e${Math.floor(i / 100) % 100}`))
    for (const d of dirs) await mkdir(d, { recursive: true })
    await Promise.all(Array.from({ length: end - start }, (_, j) => {
      const i = start + j
      const size = 64 + ((i * 2654435761) >>> 0) % 4032
      const off = ((i * 40503) >>> 0) % (pool.length - size)
      const head = Buffer.from(`file ${i}\n`)
      bytes += size
      return writeFile(join(root, `d${Math.floor(i / 10_000)}`, `e${Math.floor(i / 100) % 100}`, `f${i}.txt`), Buffer.concat([head, pool.subarray(off, off + size - head.length)]))
    }))
  }
  return bytes
}

async function dropCaches(): Promise<void> {
  execFileSync('sync')
  await writeFile('/proc/sys/vm/drop_caches', '3')
}

export async function runStatusBench(o: StatusBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('status', rec.startedAt)
  const work = await mkdtemp(join(tmpdir(), 'upswarm-bench-status-'))
  try {
    const wc = join(work, 'tree')
    const gitDir = join(work, 'git')
    let t = performance.now()
    const bytes = await smallTree(wc, o.files)
    log(`${o.files} files (${(bytes / 1024 / 1024).toFixed(0)} MiB) written in ${((performance.now() - t) / 1000).toFixed(1)} s; signing r1 and adopting the tree`)
    t = performance.now()
    const key = generatePublisherKey()
    const product = crypto.randomUUID()
    const source = await localSource(wc, product, key)
    await updater.init(wc, { product, publicKey: key.publicKey, source, adopt: true, historyDepth: 1 })
    const initS = (performance.now() - t) / 1000
    log(`working copy made in ${initS.toFixed(1)} s; git init + add + commit`)
    t = performance.now()
    const git = (args: string[]) => timed('git', [`--git-dir=${gitDir}`, `--work-tree=${wc}`, ...args], { cwd: wc })
    await git(['init', '-q'])
    // No background `git gc --auto` (100 000 loose objects trigger it): it would compete for
    // the CPU during the timed runs and write into the directory while it is removed.
    await git(['config', 'gc.auto', '0'])
    await git(['config', 'maintenance.auto', 'false'])
    await writeFile(join(gitDir, 'info', 'exclude'), '/.upswarm/\n')
    await git(['add', '-A'])
    await git(['-c', 'user.name=bench', '-c', 'user.email=bench@127.0.0.1', 'commit', '-q', '-m', 'r1'])
    const gitSetupS = (performance.now() - t) / 1000
    log(`git repository made in ${gitSetupS.toFixed(1)} s; timing status`)

    const env = { ...process.env }
    let runNo = 0
    const us = () => withCpuProfiles(o.profile && join(o.profile, `run${++runNo}`), () => upswarm(['status', wc, '--offline'], env))
    const gs = () => git(['status'])
    if (o.dropCaches) await dropCaches()
    const usCold = await us()
    if (o.dropCaches) await dropCaches()
    const gitCold = await gs()
    const usWarm: number[] = []
    const gitWarm: number[] = []
    for (let i = 0; i < o.warmRuns; i++) {
      usWarm.push((await us()).ms)
      gitWarm.push((await gs()).ms)
    }
    // The same check in this process: the CLI's node start-up and module loading left out.
    t = performance.now()
    const inproc = await updater.status(wc)
    const inprocMs = performance.now() - t
    const startup = await cliStartupMs(env)
    const notCurrent = inproc.files.filter((f) => f.status !== 'current').length
    const usWarmMs = median(usWarm)
    const gitWarmMs = median(gitWarm)
    const rows = [
      { run: 'cold (first)', 'upswarm status s': round(usCold.ms / 1000), 'git status s': round(gitCold.ms / 1000), 'upswarm / git': round(usCold.ms / gitCold.ms, 3) },
      { run: `warm (median of ${o.warmRuns})`, 'upswarm status s': round(usWarmMs / 1000), 'git status s': round(gitWarmMs / 1000), 'upswarm / git': round(usWarmMs / gitWarmMs, 3) },
      { run: 'warm, in-process updater.status()', 'upswarm status s': round(inprocMs / 1000), 'git status s': round(gitWarmMs / 1000), 'upswarm / git': round(inprocMs / gitWarmMs, 3) },
    ]
    const svg = barChart([{
      title: `No-op status of ${o.files.toLocaleString('en')} unchanged files`,
      yLabel: 'seconds',
      groups: ['cold (first run)', 'warm (median)', 'warm, in-process'],
      series: [
        { name: 'upswarm status --offline', values: [round(usCold.ms / 1000), round(usWarmMs / 1000), round(inprocMs / 1000)] },
        { name: 'git status', values: [round(gitCold.ms / 1000), round(gitWarmMs / 1000), round(gitWarmMs / 1000)] },
      ],
    }], `same tree on disk; upswarm CLI start-up alone ${(startup / 1000).toFixed(2)} s; ${inproc.hashed} files hashed, ${inproc.cached} from the stat cache in the in-process run`)
    if (o.profile) await writeProfileReport('status', o.profile, Array.from({ length: runNo }, (_, i) => ({ dir: join(o.profile!, `run${i + 1}`), merge: false })), o.resultsDir)
    return await rec.finish({
      name: 'status',
      title: `No-op status: ${o.files.toLocaleString('en')} unchanged files, upswarm vs git`,
      parameters: { ...o, bytes, adoptSeconds: round(initS), gitSetupSeconds: round(gitSetupS), cliStartupMs: round(startup), inProcessHashed: inproc.hashed, inProcessCached: inproc.cached, notCurrent, warmUpswarmMs: usWarm.map((v) => round(v)), warmGitMs: gitWarm.map((v) => round(v)) },
      columns: ['run', 'upswarm status s', 'git status s', 'upswarm / git'],
      rows,
      goals: [],
      notes: [
        `Both find the tree unchanged (upswarm: ${notCurrent} paths not current). The upswarm CLI figure includes ${(startup / 1000).toFixed(2)} s of start-up (node + the CLI, median of \`upswarm --help\`).`,
        o.dropCaches ? 'Page, dentry and inode caches were dropped before each cold run.' : 'OS caches were not dropped (shared machine): "cold" means the first run after the index / stat cache was written.',
      ],
    }, svg)
  } finally {
    if (!o.keep) await rm(work, { recursive: true, force: true, maxRetries: 5 })
  }
}
