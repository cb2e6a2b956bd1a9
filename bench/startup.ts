// CLI start-up (issue 13, item 1): `upswarm --version`, `upswarm help` and `upswarm status
// --offline` of a small working copy, side by side with `node -e 0` in one run. Goal: each within
// 1.5× of node alone.
// With hyperfine (Debian's package) the three run in ROUNDS hyperfine runs of runs/ROUNDS each,
// so that a load that changes during the run weighs on all three alike; without it, they are
// spawned in turn, round after round, and timed from spawn to exit. Wall time is what a user
// waits; CPU time (user + system, hyperfine only) moves less with the load of a shared machine,
// so both are shown, with the load average before and after, and the goal is judged on CPU time
// when there is one (on an idle machine the two agree: start-up is one thread).
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import * as updater from '../actors/updater/index.ts'
import { generatePublisherKey } from '../infra/release/keys.ts'
import { CLI, timed } from './lib/cluster.ts'
import { localSource } from './lib/local-source.ts'
import { median, progress, round, startRecording, type BenchResult, type CommonOptions } from './lib/report.ts'

export interface StartupBenchOptions extends CommonOptions {
  /** Timed runs of each command. */
  runs: number
  warmup: number
  /** Files in the small working copy. */
  files: number
}

export const STARTUP_DEFAULTS: StartupBenchOptions = { runs: 40, warmup: 5, files: 40 }

const GOAL_RATIO = 1.5
const ROUNDS = 4

interface Measured {
  label: string
  /** Wall times, ms. */
  times: number[]
  /** Mean CPU time (user + system), ms, when hyperfine measured it. */
  cpuMs: number | null
}

function hyperfineVersion(): string | undefined {
  try {
    return execFileSync('hyperfine', ['--version'], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}

async function withHyperfine(commands: { label: string; argv: string[] }[], o: StartupBenchOptions, work: string): Promise<Measured[]> {
  const out = join(work, 'hyperfine.json')
  const rounds = Math.min(ROUNDS, o.runs)
  const times = commands.map(() => [] as number[])
  const cpu = commands.map(() => 0)
  for (let round = 0; round < rounds; round++) {
    const runs = Math.ceil(o.runs / rounds)
    // -N: no shell in between, so the figures are the programs' own.
    execFileSync('hyperfine', ['-N', '--style', 'none', '--warmup', String(o.warmup), '--runs', String(runs), '--export-json', out,
      ...commands.flatMap((c) => ['--command-name', c.label, c.argv.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')])],
    { stdio: ['ignore', 'ignore', 'inherit'] })
    const json = JSON.parse(await readFile(out, 'utf8')) as { results: { times: number[]; user: number; system: number }[] }
    json.results.forEach((r, i) => {
      times[i]!.push(...r.times.map((s) => s * 1000))
      cpu[i]! += ((r.user + r.system) * 1000) / rounds
    })
  }
  return commands.map((c, i) => ({ label: c.label, times: times[i]!, cpuMs: cpu[i]! }))
}

async function withSpawns(commands: { label: string; argv: string[] }[], o: StartupBenchOptions): Promise<Measured[]> {
  const times = commands.map(() => [] as number[])
  for (let round = 0; round < o.warmup + o.runs; round++) {
    for (const [i, c] of commands.entries()) {
      const { ms } = await timed(c.argv[0]!, c.argv.slice(1))
      if (round >= o.warmup) times[i]!.push(ms)
    }
  }
  return commands.map((c, i) => ({ label: c.label, times: times[i]!, cpuMs: null }))
}

/** A signed r1 of a few small files, adopted as a working copy (no cluster needed to read it offline). */
async function smallWorkingCopy(dir: string, files: number): Promise<void> {
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${i % 4}`)
    await mkdir(sub, { recursive: true })
    await writeFile(join(sub, `f${i}.txt`), `file ${i}\n`)
  }
  const key = generatePublisherKey()
  const product = crypto.randomUUID()
  await updater.init(dir, { product, publicKey: key.publicKey, source: await localSource(dir, product, key), adopt: true, historyDepth: 1 })
}

export async function runStartupBench(o: StartupBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('startup', rec.startedAt)
  const work = await mkdtemp(join(tmpdir(), 'upswarm-bench-startup-'))
  try {
    const wc = join(work, 'wc')
    await smallWorkingCopy(wc, o.files)
    const node = process.execPath
    const commands = [
      { label: 'node -e 0', argv: [node, '-e', '0'] },
      { label: 'upswarm --version', argv: [node, CLI, '--version'] },
      { label: 'upswarm help', argv: [node, CLI, 'help'] },
      { label: 'upswarm status --offline', argv: [node, CLI, 'status', wc, '--offline'] },
    ]
    // Both must work before they are timed: a failing command exits fast.
    const version = (await timed(node, [CLI, '--version'])).stdout.trim()
    if (!/^Usage: upswarm/m.test((await timed(node, [CLI, 'help'])).stdout)) throw new Error('upswarm help printed no usage')
    const status = (await timed(node, [CLI, 'status', wc, '--offline', '--json'])).stdout
    const current = (JSON.parse(status) as { files: { status: string }[] }).files.filter((f) => f.status === 'current').length
    const hyperfine = hyperfineVersion()
    const loadBefore = loadavg()
    log(`working copy of ${o.files} files (${current} paths current); ${o.runs} runs each ${hyperfine ? `with ${hyperfine}` : 'by timed spawns (no hyperfine)'}`)
    const measured = hyperfine ? await withHyperfine(commands, o, work) : await withSpawns(commands, o)
    const loadAfter = loadavg()
    const base = measured[0]!
    const baseMedian = median(base.times)
    const rows = measured.map((m) => {
      const sorted = [...m.times].sort((a, b) => a - b)
      const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
      return {
        command: m.label,
        'median ms': round(median(m.times), 3),
        'p10–p90 ms': `${q(0.1).toFixed(0)}–${q(0.9).toFixed(0)}`,
        '× node (median)': round(median(m.times) / baseMedian, 3),
        'CPU ms': m.cpuMs === null ? null : round(m.cpuMs, 3),
        '× node (CPU)': m.cpuMs === null || base.cpuMs === null ? null : round(m.cpuMs / base.cpuMs, 3),
      }
    })
    const goal = (i: number) => {
      const r = rows[i]!
      return {
        goal: `${r.command} ≤ ${GOAL_RATIO} × node -e 0`,
        met: (r['× node (CPU)'] ?? r['× node (median)']) <= GOAL_RATIO,
        detail: `${r['median ms']} ms vs ${rows[0]!['median ms']} ms median wall time (${r['× node (median)']}×)` +
          (r['× node (CPU)'] === null ? '' : `; CPU ${r['CPU ms']} vs ${rows[0]!['CPU ms']} ms (${r['× node (CPU)']}×)`),
      }
    }
    const fmtLoad = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ')
    return await rec.finish({
      name: 'startup',
      title: 'CLI start-up: upswarm --version, help and status --offline vs node -e 0',
      parameters: { ...o, version, tool: hyperfine ?? 'timed spawns', loadAverageBefore: loadBefore.map((v) => round(v, 3)), loadAverageAfter: loadAfter.map((v) => round(v, 3)), timesMs: Object.fromEntries(measured.map((m) => [m.label, m.times.map((t) => round(t, 3))])) },
      columns: ['command', 'median ms', 'p10–p90 ms', '× node (median)', 'CPU ms', '× node (CPU)'],
      rows,
      goals: [goal(1), goal(2), goal(3)],
      notes: [
        `Load average (1 / 5 / 15 min) ${fmtLoad(loadBefore)} before and ${fmtLoad(loadAfter)} after the timed runs (a shared machine: figures are upper bounds when it is busy).`,
        `The working copy: ${o.files} files, made by init --adopt from a local signed release; status reports ${current} paths current.`,
        'upswarm runs from the build in dist/ (one plain-JavaScript bundle, esbuild, compiled through V8\'s code cache; the warm-up runs write the cache); each command runs only the modules it uses, and none of the three runs zod, xstate or the NATS client (test/integration/startup-modules.test.ts; docs/decisions.md).',
      ],
    })
  } finally {
    if (!o.keep) await rm(work, { recursive: true, force: true })
  }
}
