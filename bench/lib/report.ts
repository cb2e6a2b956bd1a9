// What every benchmark records and how it is shown: the machine, the versions, the parameters,
// a table printed on stdout, and bench/results/<name>.json (plus an SVG chart where useful).
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, freemem, loadavg, totalmem, type as osType, release as osRelease } from 'node:os'
import { join } from 'node:path'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { natsServerBinary } from '../../infra/cluster/nats-server-bin.ts'

export const MiB = 1024 * 1024
export const RESULTS_DIR = join(PROJECT_ROOT, 'bench', 'results')

export type Cell = string | number | boolean | null

/** Options every benchmark takes. */
export interface CommonOptions {
  /** Profile the node processes the benchmark starts under this directory (see lib/cpu-profile.ts). */
  profile?: string
  /** Where <name>.json / .svg / -profile.txt go (default bench/results; tests use a temporary one). */
  resultsDir?: string
  /** Keep the temporary directories. */
  keep?: boolean
}

export interface Goal {
  goal: string
  met: boolean
  detail: string
}

export interface BenchResult {
  name: string
  title: string
  timestamp: string
  /** Wall time of the whole benchmark, setup included. */
  seconds: number
  machine: Machine
  versions: Record<string, string>
  parameters: Record<string, unknown>
  columns: string[]
  rows: Record<string, Cell>[]
  goals: Goal[]
  notes: string[]
}

export interface Machine {
  cores: number
  cpuModel: string
  memoryMiB: number
  freeMemoryMiB: number
  /** 1-minute load average when the benchmark started: this machine is shared. */
  loadAverageAtStart: number
  os: string
}

export function machine(): Machine {
  const c = cpus()
  return {
    cores: c.length,
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    memoryMiB: Math.round(totalmem() / MiB),
    freeMemoryMiB: Math.round(freemem() / MiB),
    loadAverageAtStart: Number(loadavg()[0]!.toFixed(2)),
    os: `${osType()} ${osRelease()}`,
  }
}

function firstLine(cmd: string, args: string[], pattern = /.*/): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 })
    return (pattern.exec(out)?.[0] ?? out.split('\n')[0] ?? '').trim()
  } catch {
    return 'not found'
  }
}

let cachedVersions: Record<string, string> | undefined

/** Versions of everything a figure depends on: node, nats-server, the compared tools, this checkout. */
export async function versions(): Promise<Record<string, string>> {
  if (cachedVersions) return cachedVersions
  const pkg = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
  const dep = async (name: string): Promise<string> => {
    try {
      return (JSON.parse(await readFile(join(PROJECT_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
    } catch {
      return 'not installed'
    }
  }
  let nats = 'not found'
  try {
    const b = natsServerBinary()
    nats = `${b.version.join('.')} (${b.path})`
  } catch { /* reported as not found */ }
  const commit = firstLine('git', ['-C', PROJECT_ROOT, 'rev-parse', '--short', 'HEAD'])
  const dirty = firstLine('git', ['-C', PROJECT_ROOT, 'status', '--porcelain', '--untracked-files=no']) !== ''
  cachedVersions = {
    upswarm: `${pkg.version} (${commit}${dirty ? ', uncommitted changes' : ''})`,
    node: process.version,
    'nats-server': nats,
    rsync: firstLine('rsync', ['--version'], /rsync\s+version\s+\S+/),
    aria2c: firstLine('aria2c', ['--version'], /aria2 version \S+/),
    curl: firstLine('curl', ['--version'], /curl \S+/),
    git: firstLine('git', ['--version']),
    hyperswarm: await dep('hyperswarm'),
    '@hyperswarm/secret-stream': await dep('@hyperswarm/secret-stream'),
    '@nats-io/transport-node': await dep('@nats-io/transport-node'),
    'bittorrent-tracker': await dep('bittorrent-tracker'),
  }
  return cachedVersions
}

/** Fixed-width table: one line per row, columns in the given order. */
export function formatTable(columns: string[], rows: Record<string, Cell>[]): string {
  const text = (v: Cell | undefined): string => (v === null || v === undefined ? '—' : typeof v === 'number' ? formatNumber(v) : String(v))
  const cells = rows.map((r) => columns.map((c) => text(r[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)))
  const line = (vals: string[]): string => vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ')
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n')
}

/** The same table as Markdown, for docs/benchmarks.md. */
export function markdownTable(columns: string[], rows: Record<string, Cell>[]): string {
  const text = (v: Cell | undefined): string => (v === null || v === undefined ? '—' : typeof v === 'number' ? formatNumber(v) : String(v))
  return [
    `| ${columns.join(' | ')} |`,
    `|${columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${columns.map((c) => text(r[c])).join(' | ')} |`),
  ].join('\n')
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  if (Number.isInteger(v)) return String(v)
  const a = Math.abs(v)
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3)
}

/** Rounds for JSON: figures to 4 significant digits, so the files stay readable. */
export function round(v: number, digits = 4): number {
  if (!Number.isFinite(v) || v === 0) return v
  return Number(v.toPrecision(digits))
}

export interface Recorder {
  readonly startedAt: number
  finish(r: Omit<BenchResult, 'timestamp' | 'seconds' | 'machine' | 'versions'>, svg?: string): Promise<BenchResult>
}

/**
 * Call at the start of a benchmark (captures the machine's load then); finish() writes
 * <resultsDir>/<name>.json (+ .svg) and prints. Tests pass their own resultsDir.
 */
export function startRecording(resultsDir = RESULTS_DIR): Recorder {
  const startedAt = performance.now()
  const timestamp = new Date().toISOString()
  const m = machine()
  return {
    startedAt,
    async finish(r, svg) {
      const result: BenchResult = {
        name: r.name,
        title: r.title,
        timestamp,
        seconds: round((performance.now() - startedAt) / 1000),
        machine: m,
        versions: await versions(),
        parameters: r.parameters,
        columns: r.columns,
        rows: r.rows,
        goals: r.goals,
        notes: r.notes,
      }
      await mkdir(resultsDir, { recursive: true })
      await writeFile(join(resultsDir, `${r.name}.json`), `${JSON.stringify(result, null, 2)}\n`)
      if (svg) await writeFile(join(resultsDir, `${r.name}.svg`), svg)
      printResult(result, join(resultsDir, r.name), !!svg)
      return result
    },
  }
}

export function printResult(r: BenchResult, base: string, withSvg: boolean): void {
  const out = [
    '',
    `== ${r.title}`,
    formatTable(r.columns, r.rows),
    ...r.goals.map((g) => `goal ${g.met ? 'MET   ' : 'MISSED'} ${g.goal}: ${g.detail}`),
    ...r.notes.map((n) => `note: ${n}`),
    `(${r.seconds.toFixed(0)} s; load average ${r.machine.loadAverageAtStart} at start; ${base}.json${withSvg ? `, .svg` : ''})`,
    '',
  ]
  process.stdout.write(`${out.join('\n')}\n`)
}

/** Logs a progress line on stderr, with the time since the benchmark started. */
export function progress(name: string, startedAt: number): (msg: string) => void {
  return (msg) => process.stderr.write(`[${name} ${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`)
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}
