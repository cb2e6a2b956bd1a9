// Status (issue 7 benchmark 3, issue 13 item 2): `upswarm status --offline` of a working copy of
// 100 000 small files, side by side with `git status` on the same tree (same files on disk: git's
// directory lives outside the tree, and ignores the working copy's .upswarm folder).
// - no-op: "cold" is the first run of each after its index was written (a fresh process; the OS
//   caches hold what the setup left, unless --drop-caches); "warm" is the median of the next runs;
// - exactness: one edited (same size), one new and one deleted file, each tool's first run after
//   the edits, both must report exactly those three;
// - 1% changed: the contents of 1% of the files rewritten before each pair of runs (a new edit
//   each time, so that neither tool has recorded it yet), median of the runs.
// Peak RSS of each upswarm run is read with /usr/bin/time when it is there. The working copy is
// made by `init --adopt` from a local signed release (lib/local-source.ts): publishing 100 000
// objects to JetStream would not fit the budget.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile as readFileBytes, rm, unlink, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import * as updater from '../actors/updater/index.ts'
import { generatePublisherKey } from '../infra/release/keys.ts'
import { layoutOf } from '../infra/store/working-copy/layout.ts'
import { CLI, cliStartupMs, timed, upswarm, upswarmWithPeak } from './lib/cluster.ts'
import { withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { localSource } from './lib/local-source.ts'
import { median, progress, round, startRecording, type BenchResult, type CommonOptions } from './lib/report.ts'
import { barChart } from './lib/svg.ts'

export interface StatusBenchOptions extends CommonOptions {
  files: number
  warmRuns: number
  /** Write 3 to /proc/sys/vm/drop_caches before the cold runs (root only; affects the whole machine). */
  dropCaches?: boolean
  /** Only the peak RSS of a full and of an indexed status (no git, no timing): the 1 000 000-file memory case. */
  memoryOnly?: boolean
}

export const STATUS_DEFAULTS: StatusBenchOptions = { files: 100_000, warmRuns: 3 }

const GOAL_NOOP = 1.0
const GOAL_CHANGED = 2.0
const CHANGED_SHARE = 0.01
const TIME = '/usr/bin/time'

const fileOf = (root: string, i: number): string => join(root, `d${Math.floor(i / 10_000)}`, `e${Math.floor(i / 100) % 100}`, `f${i}.txt`)
const relOf = (i: number): string => `d${Math.floor(i / 10_000)}/e${Math.floor(i / 100) % 100}/f${i}.txt`

/** What a status says is not current: upswarm's text lines `status path`, git's porcelain `XY path`. */
function upswarmChanges(stdout: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of stdout.split('\n')) {
    const m = /^(modified|unversioned|missing|conflict|outdated|removed|ignored)\s+(.+)$/.exec(line)
    if (m) out.set(m[2]!, m[1]!)
  }
  return out
}
function gitChanges(stdout: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of stdout.split('\n')) if (line.length > 3) out.set(line.slice(3), line.slice(0, 2).trim())
  return out
}

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
      return writeFile(fileOf(root, i), Buffer.concat([head, pool.subarray(off, off + size - head.length)]))
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
    if (o.memoryOnly) return await memoryOnly(o, rec, log, wc, bytes, initS)
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

    // The tree and the repository just written (about 400 MiB) are still being written back:
    // flushed first, so that the writeback does not land on the timed runs of either tool.
    execFileSync('sync')
    const env = { ...process.env }
    const peaks: number[] = []
    let runNo = 0
    // With /usr/bin/time the upswarm process's peak RSS is read too (not while profiling).
    const us = async (args: string[] = []) => {
      const r = await withCpuProfiles(o.profile && join(o.profile, `run${++runNo}`), () => upswarmWithPeak(['status', wc, '--offline', ...args], env))
      if (r.peakMiB !== null) peaks.push(r.peakMiB)
      return r
    }
    const gs = (args: string[] = []) => git(['status', ...args])
    /** An untimed status: what a restore of the tree changed is classified before the next timed run. */
    const settle = async (): Promise<void> => {
      await upswarm(['status', wc, '--offline'], env)
    }
    const loadBefore = loadavg()
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
    const notCurrent = inproc.notCurrent.length

    // Exactness: one edited (same size), one new, one deleted file; then the tree as it was.
    const edited = Math.floor(o.files / 3)
    const deleted = Math.floor((2 * o.files) / 3)
    const expectUs = new Map([[relOf(edited), 'modified'], ['d0/e0/new-file.txt', 'unversioned'], [relOf(deleted), 'missing']])
    const expectGit = new Map([[relOf(edited), 'M'], ['d0/e0/new-file.txt', '??'], [relOf(deleted), 'D']])
    const same = (a: Map<string, string>, b: Map<string, string>): boolean => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v)
    const exactness = async (): Promise<{ us: number; git: number; exactUs: boolean; exactGit: boolean; reported: Map<string, string> }> => {
      const originals = [await readFileBytes(fileOf(wc, edited)), await readFileBytes(fileOf(wc, deleted))] as const
      await writeFile(fileOf(wc, edited), Buffer.from(originals[0].map((b) => (b === 0x0a ? b : b ^ 0x01))))
      await writeFile(join(wc, 'd0', 'e0', 'new-file.txt'), 'new\n')
      await unlink(fileOf(wc, deleted))
      const u = await us()
      const g = await gs(['--porcelain'])
      await writeFile(fileOf(wc, edited), originals[0])
      await writeFile(fileOf(wc, deleted), originals[1])
      await unlink(join(wc, 'd0', 'e0', 'new-file.txt'))
      await settle()
      const reported = upswarmChanges(u.stdout)
      return { us: u.ms, git: g.ms, exactUs: same(reported, expectUs), exactGit: same(gitChanges(g.stdout), expectGit), reported }
    }
    // 1% changed: a fresh edit of the same files before each pair of runs; then the tree as it was.
    const changedCount = Math.max(1, Math.round(o.files * CHANGED_SHARE))
    const changedIds = Array.from({ length: changedCount }, (_, j) => (j * 97 + 1) % o.files)
    const onePercent = async (): Promise<{ us: number[]; git: number[]; reported: number }> => {
      const originals = await Promise.all(changedIds.map((i) => readFileBytes(fileOf(wc, i))))
      const r = { us: [] as number[], git: [] as number[], reported: 0 }
      for (let k = 0; k < o.warmRuns; k++) {
        for (let j = 0; j < changedCount; j++) await writeFile(fileOf(wc, changedIds[j]!), `changed ${k} ${j}\n`)
        const u = await us()
        r.reported = upswarmChanges(u.stdout).size
        r.us.push(u.ms)
        r.git.push((await gs()).ms)
      }
      for (let j = 0; j < changedCount; j++) await writeFile(fileOf(wc, changedIds[j]!), originals[j]!)
      await settle()
      return r
    }
    log('exactness: one edited, one new and one deleted file')
    const walkExact = await exactness()
    log(`1% changed: ${changedCount} files rewritten before each of ${o.warmRuns} pairs of runs`)
    const walkChanged = await onePercent()

    // The same with the copy's file monitor (`upswarm monitor`, which the sharing daemon runs).
    log('the same with the file monitor running')
    const monitor = await startMonitorProcess(wc, env)
    const monWarm: number[] = []
    let monExact: Awaited<ReturnType<typeof exactness>>
    let monChanged: Awaited<ReturnType<typeof onePercent>>
    const monGitWarm: number[] = []
    try {
      // The first status records the monitor's token (it walks), the second writes the short answer.
      await settle()
      await settle()
      for (let i = 0; i < o.warmRuns; i++) {
        monWarm.push((await us()).ms)
        monGitWarm.push((await gs()).ms)
      }
      monExact = await exactness()
      monChanged = await onePercent()
    } finally {
      await monitor.stop()
    }
    const usExact = { ms: walkExact.us }
    const gitExact = { ms: walkExact.git }
    const loadAfter = loadavg()
    const usWarmMs = median(usWarm)
    const gitWarmMs = median(gitWarm)
    const usChangedMs = median(walkChanged.us)
    const gitChangedMs = median(walkChanged.git)
    const monWarmMs = median(monWarm)
    const monGitWarmMs = median(monGitWarm)
    const monChangedMs = median(monChanged.us)
    const monGitChangedMs = median(monChanged.git)
    const changedReported = walkChanged.reported
    const rows = [
      { run: 'no-op, cold (first)', 'upswarm status s': round(usCold.ms / 1000), 'git status s': round(gitCold.ms / 1000), 'upswarm / git': round(usCold.ms / gitCold.ms, 3) },
      { run: `no-op, warm (median of ${o.warmRuns})`, 'upswarm status s': round(usWarmMs / 1000), 'git status s': round(gitWarmMs / 1000), 'upswarm / git': round(usWarmMs / gitWarmMs, 3) },
      { run: 'no-op, warm, in-process updater.status()', 'upswarm status s': round(inprocMs / 1000), 'git status s': round(gitWarmMs / 1000), 'upswarm / git': round(inprocMs / gitWarmMs, 3) },
      { run: '1 edited + 1 new + 1 deleted', 'upswarm status s': round(usExact.ms / 1000), 'git status s': round(gitExact.ms / 1000), 'upswarm / git': round(usExact.ms / gitExact.ms, 3) },
      { run: `1% changed (median of ${o.warmRuns})`, 'upswarm status s': round(usChangedMs / 1000), 'git status s': round(gitChangedMs / 1000), 'upswarm / git': round(usChangedMs / gitChangedMs, 3) },
      { run: `monitor: no-op, warm (median of ${o.warmRuns})`, 'upswarm status s': round(monWarmMs / 1000), 'git status s': round(monGitWarmMs / 1000), 'upswarm / git': round(monWarmMs / monGitWarmMs, 3) },
      { run: 'monitor: 1 edited + 1 new + 1 deleted', 'upswarm status s': round(monExact.us / 1000), 'git status s': round(monExact.git / 1000), 'upswarm / git': round(monExact.us / monExact.git, 3) },
      { run: `monitor: 1% changed (median of ${o.warmRuns})`, 'upswarm status s': round(monChangedMs / 1000), 'git status s': round(monGitChangedMs / 1000), 'upswarm / git': round(monChangedMs / monGitChangedMs, 3) },
    ]
    const svg = barChart([{
      title: `No-op status of ${o.files.toLocaleString('en')} unchanged files`,
      yLabel: 'seconds',
      groups: ['no-op, cold', 'no-op, warm', 'no-op, in-process', '3 changes', '1% changed', 'monitor: no-op', 'monitor: 3 changes', 'monitor: 1%'],
      series: [
        { name: 'upswarm status --offline', values: rows.map((r) => r['upswarm status s']) },
        { name: 'git status', values: rows.map((r) => r['git status s']) },
      ],
    }], `same tree on disk; upswarm CLI start-up alone ${(startup / 1000).toFixed(2)} s; ${inproc.hashed} files hashed, ${inproc.cached} from the stat index in the in-process run`)
    const fmtLoad = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ')
    const peakMiB = peaks.length > 0 ? Math.max(...peaks) : null
    if (o.profile) await writeProfileReport('status', o.profile, Array.from({ length: runNo }, (_, i) => ({ dir: join(o.profile!, `run${i + 1}`), merge: false })), o.resultsDir)
    return await rec.finish({
      name: 'status',
      title: `Status: ${o.files.toLocaleString('en')} files, upswarm vs git`,
      parameters: {
        ...o, bytes, adoptSeconds: round(initS), gitSetupSeconds: round(gitSetupS), cliStartupMs: round(startup), inProcessHashed: inproc.hashed, inProcessCached: inproc.cached, notCurrent,
        warmUpswarmMs: usWarm.map((v) => round(v)), warmGitMs: gitWarm.map((v) => round(v)), changedFiles: changedCount, changedReported,
        changedUpswarmMs: walkChanged.us.map((v) => round(v)), changedGitMs: walkChanged.git.map((v) => round(v)),
        monitorWarmUpswarmMs: monWarm.map((v) => round(v)), monitorWarmGitMs: monGitWarm.map((v) => round(v)),
        monitorChangedUpswarmMs: monChanged.us.map((v) => round(v)), monitorChangedGitMs: monChanged.git.map((v) => round(v)), monitorChangedReported: monChanged.reported,
        peakRssMiB: peakMiB === null ? null : round(peakMiB), loadAverageBefore: loadBefore.map((v) => round(v, 3)), loadAverageAfter: loadAfter.map((v) => round(v, 3)),
      },
      columns: ['run', 'upswarm status s', 'git status s', 'upswarm / git'],
      rows,
      goals: [
        { goal: `no-op status ≤ ${GOAL_NOOP} × git status (warm, CLI start-up included; with the copy's file monitor)`, met: monWarmMs / monGitWarmMs <= GOAL_NOOP, detail: `${round(monWarmMs / 1000)} s vs ${round(monGitWarmMs / 1000)} s (${round(monWarmMs / monGitWarmMs, 3)}×); without the monitor ${round(usWarmMs / 1000)} s vs ${round(gitWarmMs / 1000)} s (${round(usWarmMs / gitWarmMs, 3)}×)` },
        { goal: `1% changed ≤ ${GOAL_CHANGED} × git status (with the monitor)`, met: monChangedMs / monGitChangedMs <= GOAL_CHANGED, detail: `${round(monChangedMs / 1000)} s vs ${round(monGitChangedMs / 1000)} s (${round(monChangedMs / monGitChangedMs, 3)}×), ${monChanged.reported} changed paths reported of ${changedCount}; without the monitor ${round(usChangedMs / 1000)} s vs ${round(gitChangedMs / 1000)} s (${round(usChangedMs / gitChangedMs, 3)}×)` },
        { goal: 'one edited, one new and one deleted file all reported in the same timed run (with and without the monitor)', met: walkExact.exactUs && walkExact.exactGit && monExact.exactUs && monExact.exactGit, detail: `upswarm ${walkExact.exactUs ? 'exact' : `reported ${JSON.stringify([...walkExact.reported])}`}, with the monitor ${monExact.exactUs ? 'exact' : `reported ${JSON.stringify([...monExact.reported])}`}; git ${walkExact.exactGit && monExact.exactGit ? 'exact' : 'not exact'}` },
      ],
      notes: [
        `Load average (1 / 5 / 15 min) ${fmtLoad(loadBefore)} before the timed runs and ${fmtLoad(loadAfter)} after; the ratios, from runs side by side, move less than the times.`,
        peakMiB === null ? 'Peak RSS not measured (no /usr/bin/time).' : `Peak RSS of the upswarm status processes: ${round(peakMiB)} MiB at most.`,
        `Both find the unchanged tree unchanged (upswarm: ${notCurrent} paths not current). The upswarm CLI figure includes ${(startup / 1000).toFixed(2)} s of start-up (node + the CLI, median of \`upswarm --help\`).`,
        o.dropCaches ? 'Page, dentry and inode caches were dropped before each cold run.' : 'OS caches were not dropped (shared machine): "cold" means the first run after the index / stat cache was written.',
      ],
    }, svg)
  } finally {
    if (!o.keep) await rm(work, { recursive: true, force: true, maxRetries: 5 })
  }
}

/** `upswarm monitor DIR` in its own process, once it said READY. */
async function startMonitorProcess(dir: string, env: NodeJS.ProcessEnv): Promise<{ stop(): Promise<void> }> {
  const child = spawn(process.execPath, [CLI, 'monitor', dir], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  let out = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('READY ')) resolve()
    })
    void exited.then(([code]) => reject(new Error(`upswarm monitor exited (${code}) before READY: ${out}`)))
  })
  return {
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}

/**
 * Peak RSS of `upswarm status` of the tree (issue 13 item 6: under 1 GiB at 1 000 000 files): the
 * full classification (the stat index removed first: `init` now leaves one), the indexed no-op twice, and then with changes: 1% of the
 * files rewritten (new contents, so each is hashed again) plus one new and one deleted file,
 * which the run must report exactly.
 */
async function memoryOnly(o: StatusBenchOptions, rec: ReturnType<typeof startRecording>, log: (m: string) => void, wc: string, bytes: number, initS: number): Promise<BenchResult> {
  if (!existsSync(TIME)) throw new Error(`--status-memory-only needs ${TIME} (Debian's \`time\` package) to read the peak RSS`)
  const rows = []
  const changedCount = Math.max(1, Math.round(o.files * CHANGED_SHARE))
  const deleted = Math.floor((2 * o.files) / 3)
  const changed = async (): Promise<Map<string, string>> => {
    const expect = new Map<string, string>()
    for (let start = 0; start < changedCount; start += 256) {
      await Promise.all(Array.from({ length: Math.min(256, changedCount - start) }, (_, k) => {
        const i = ((start + k) * 97 + 1) % o.files
        expect.set(relOf(i), 'modified')
        return writeFile(fileOf(wc, i), `changed ${i}\n`)
      }))
    }
    await writeFile(join(wc, 'd0', 'e0', 'new-file.txt'), 'new\n')
    await unlink(fileOf(wc, deleted))
    expect.set('d0/e0/new-file.txt', 'unversioned')
    expect.set(relOf(deleted), 'missing')
    return expect
  }
  // The copy's stat index as `init` left it, removed: the full classification a status falls back to.
  const noIndex = async (): Promise<Map<string, string>> => {
    await rm(layoutOf(wc).statCache, { force: true })
    return new Map()
  }
  const runs: [string, (() => Promise<Map<string, string>>) | null][] = [
    ['full classification (first status, no index)', noIndex],
    ['indexed no-op (second status)', null],
    ['indexed no-op (third status)', null],
    [`with changes: ${changedCount.toLocaleString('en')} edited (1%), 1 new, 1 deleted`, changed],
  ]
  for (const [run, edit] of runs) {
    const expect = edit ? await edit() : new Map<string, string>()
    const r = await upswarmWithPeak(['status', wc, '--offline'], process.env)
    const kib = (r.peakMiB ?? NaN) * 1024
    const reported = upswarmChanges(r.stdout)
    const exact = reported.size === expect.size && [...expect].every(([k, v]) => reported.get(k) === v)
    log(`${run}: ${round(r.ms / 1000)} s, peak RSS ${round(kib / 1024)} MiB, ${reported.size} paths not current${exact ? '' : ' (NOT the expected ones)'}`)
    rows.push({ run, 's': round(r.ms / 1000), 'peak RSS MiB': round(kib / 1024), 'under 1 GiB': kib < 1024 * 1024, 'reported exactly': exact })
  }
  return rec.finish({
    name: 'status-memory',
    title: `Status memory: ${o.files.toLocaleString('en')} files`,
    parameters: { ...o, bytes, adoptSeconds: round(initS), loadAverage: loadavg().map((v) => round(v, 3)) },
    columns: ['run', 's', 'peak RSS MiB', 'under 1 GiB', 'reported exactly'],
    rows,
    goals: [
      { goal: 'a status stays under 1 GiB of RSS', met: rows.every((r) => r['under 1 GiB']), detail: rows.map((r) => `${r.run}: ${r['peak RSS MiB']} MiB`).join('; ') },
      { goal: 'each run reports exactly the paths that changed', met: rows.every((r) => r['reported exactly']), detail: rows.filter((r) => !r['reported exactly']).map((r) => r.run).join('; ') || 'all exact' },
    ],
    notes: ['Peak RSS (max resident set size) of the CLI process, read by /usr/bin/time.'],
  })
}
