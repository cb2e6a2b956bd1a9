// Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time,
// and self time by file (package), so a slow benchmark can name what limits it.
//
//   node --import tsx bench/lib/cpu-profile.ts FILE.cpuprofile ... [--top 25]
// The benchmarks' --profile DIR option profiles the node child processes they start.
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { SourceMap, type SourceMapPayload } from 'node:module'
import { Session } from 'node:inspector'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { RESULTS_DIR } from './report.ts'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number }
  hitCount?: number
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples?: number[]
  timeDeltas?: number[]
}

export interface ProfileSummary {
  totalMs: number
  /** Time not idle: the shares below are of this. */
  busyMs: number
  functions: { name: string; where: string; selfMs: number; share: number }[]
  files: { where: string; selfMs: number; share: number }[]
}

/** Shortens a script URL to its package or project-relative path. */
function whereOf(url: string): string {
  if (!url) return '(native / V8)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  if (url.startsWith('node:')) return url
  const m = /\/work\/[^/]+\/(.*)$/.exec(url.replace(/^file:\/\//, ''))
  return m ? m[1]! : url
}

/** Source maps of the scripts profiled (the CLI's bundle has one beside it), read once each. */
const sourceMaps = new Map<string, SourceMap | null>()

function sourceMapOf(url: string): SourceMap | null {
  if (!url || url.startsWith('node:') || url.includes('node_modules/')) return null
  let map = sourceMaps.get(url)
  if (map === undefined) {
    const file = `${url.startsWith('file://') ? fileURLToPath(url) : url}.map`
    map = existsSync(file) ? new SourceMap(JSON.parse(readFileSync(file, 'utf8')) as SourceMapPayload) : null
    sourceMaps.set(url, map)
  }
  return map
}

/**
 * The frame in the sources: a bundled, minified function (the CLI runs dist/upswarm.cjs) is named
 * by its original name, module and line through the bundle's source map.
 */
function originalFrame(cf: ProfileNode['callFrame']): { functionName: string; url: string; lineNumber: number } {
  const map = sourceMapOf(cf.url)
  if (!map) return cf
  const e = map.findEntry(cf.lineNumber, cf.columnNumber ?? 0) as { originalSource?: string; originalLine?: number; name?: string }
  if (!e.originalSource) return cf
  return { functionName: e.name || cf.functionName, url: e.originalSource.replace(/^(\.\.\/)+/, ''), lineNumber: e.originalLine ?? 0 }
}

export function summarise(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  for (let i = 0; i < samples.length; i++) self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0) / 1000)
  const totalMs = (profile.endTime - profile.startTime) / 1000
  const fns = new Map<string, { name: string; where: string; selfMs: number }>()
  const files = new Map<string, number>()
  for (const [id, ms] of self) {
    const cf = originalFrame(byId.get(id)!.callFrame)
    const name = cf.functionName || '(anonymous)'
    const where = whereOf(cf.url)
    const key = `${name}@${cf.url}:${cf.lineNumber}`
    const f = fns.get(key) ?? { name, where: `${where}:${cf.lineNumber + 1}`, selfMs: 0 }
    f.selfMs += ms
    fns.set(key, f)
    if (name !== '(idle)') files.set(where, (files.get(where) ?? 0) + ms)
  }
  const idleMs = [...fns.values()].filter((f) => f.name === '(idle)').reduce((a, f) => a + f.selfMs, 0)
  const busyMs = totalMs - idleMs
  const share = (ms: number): number => Number((ms / busyMs).toFixed(3))
  return {
    totalMs,
    busyMs,
    functions: [...fns.values()].filter((f) => f.name !== '(idle)').sort((a, b) => b.selfMs - a.selfMs).slice(0, top).map((f) => ({ ...f, selfMs: Number(f.selfMs.toFixed(1)), share: share(f.selfMs) })),
    files: [...files].sort((a, b) => b[1] - a[1]).slice(0, top).map(([where, ms]) => ({ where, selfMs: Number(ms.toFixed(1)), share: share(ms) })),
  }
}

const PRELOAD = fileURLToPath(new URL('./cpu-prof-preload.mjs', import.meta.url))

/**
 * Runs `fn` with a profiler preload in NODE_OPTIONS, so that the node child processes it spawns
 * write .cpuprofile files into `dir` when they exit (see cpu-prof-preload.mjs); with `onSignal`
 * they profile only from SIGUSR2 on.
 */
export async function withCpuProfiles<T>(dir: string | undefined, fn: () => Promise<T>, opts: { onSignal?: boolean } = {}): Promise<T> {
  if (!dir) return fn()
  await mkdir(dir, { recursive: true })
  const prev = { opts: process.env.NODE_OPTIONS, dir: process.env.UPSWARM_BENCH_CPU_PROF_DIR, signal: process.env.UPSWARM_BENCH_CPU_PROF_ON_SIGNAL }
  process.env.NODE_OPTIONS = `${prev.opts ?? ''} --import ${PRELOAD}`.trim()
  process.env.UPSWARM_BENCH_CPU_PROF_DIR = dir
  if (opts.onSignal) process.env.UPSWARM_BENCH_CPU_PROF_ON_SIGNAL = '1'
  try {
    return await fn()
  } finally {
    for (const [k, v] of [['NODE_OPTIONS', prev.opts], ['UPSWARM_BENCH_CPU_PROF_DIR', prev.dir], ['UPSWARM_BENCH_CPU_PROF_ON_SIGNAL', prev.signal]] as const) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

/** Profiles this process while `fn` runs; writes <dir>/self.<label>.cpuprofile. */
export async function profileSelf<T>(dir: string | undefined, label: string, fn: () => Promise<T>): Promise<T> {
  if (!dir) return fn()
  const session = new Session()
  session.connect()
  const post = (method: string): Promise<unknown> => new Promise((resolve, reject) => session.post(method, (err, res) => (err ? reject(err) : resolve(res))))
  await post('Profiler.enable')
  await post('Profiler.start')
  try {
    return await fn()
  } finally {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown }
    session.disconnect()
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, `self.${label}.cpuprofile`), JSON.stringify(profile))
  }
}

/**
 * A text report of the profiles in `dir` (for bench/results/<name>-profile.txt): each one,
 * longest first, or with `merge` all of them added up (processes of one kind, e.g. N daemons).
 */
export async function summariseDir(dir: string, opts: { merge?: boolean; top?: number } = {}): Promise<string> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.cpuprofile'))
  const profiles = await Promise.all(files.map(async (f) => ({ f, p: JSON.parse(await readFile(join(dir, f), 'utf8')) as CpuProfile })))
  if (opts.merge) {
    const merged = profiles.map(({ p }) => summarise(p, Infinity)).reduce<ProfileSummary | undefined>((acc, s) => (acc ? add(acc, s) : s), undefined)
    return merged ? format(`${dir} (${files.length} processes added up)`, finish(merged, opts.top ?? 15)) : `${dir}: no profiles\n`
  }
  return profiles.map(({ f, p }) => ({ f, s: summarise(p, opts.top ?? 15) })).sort((a, b) => b.s.totalMs - a.s.totalMs).map(({ f, s }) => format(f, s)).join('\n')
}

/** bench/results/<name>-profile.txt from the given profile directories. */
export async function writeProfileReport(name: string, base: string, dirs: { dir: string; merge: boolean }[], resultsDir = RESULTS_DIR): Promise<void> {
  const parts = [`CPU profiles of ${name} (raw .cpuprofile files in ${base}; open them in Chrome DevTools)`, '']
  for (const d of dirs) parts.push(await summariseDir(d.dir, { merge: d.merge }))
  await mkdir(resultsDir, { recursive: true })
  await writeFile(join(resultsDir, `${name}-profile.txt`), parts.join('\n'))
}

function add(a: ProfileSummary, b: ProfileSummary): ProfileSummary {
  const fns = new Map(a.functions.map((f) => [`${f.name}@${f.where}`, { ...f }]))
  for (const f of b.functions) {
    const k = `${f.name}@${f.where}`
    const e = fns.get(k)
    if (e) e.selfMs += f.selfMs
    else fns.set(k, { ...f })
  }
  const files = new Map(a.files.map((f) => [f.where, { ...f }]))
  for (const f of b.files) {
    const e = files.get(f.where)
    if (e) e.selfMs += f.selfMs
    else files.set(f.where, { ...f })
  }
  return { totalMs: a.totalMs + b.totalMs, busyMs: a.busyMs + b.busyMs, functions: [...fns.values()], files: [...files.values()] }
}

function finish(s: ProfileSummary, top: number): ProfileSummary {
  const share = (ms: number): number => Number((ms / s.busyMs).toFixed(3))
  return {
    ...s,
    functions: s.functions.sort((a, b) => b.selfMs - a.selfMs).slice(0, top).map((f) => ({ ...f, selfMs: Number(f.selfMs.toFixed(1)), share: share(f.selfMs) })),
    files: s.files.sort((a, b) => b.selfMs - a.selfMs).slice(0, top).map((f) => ({ ...f, selfMs: Number(f.selfMs.toFixed(1)), share: share(f.selfMs) })),
  }
}

function format(file: string, s: ProfileSummary): string {
  const lines = [`${file}: ${s.totalMs.toFixed(0)} ms profiled, ${s.busyMs.toFixed(0)} ms busy (shares are of busy time)`, '  self time by function:']
  for (const f of s.functions) lines.push(`  ${f.selfMs.toFixed(0).padStart(7)} ms ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}  (${f.where})`)
  lines.push('  self time by file / package:')
  for (const f of s.files) lines.push(`  ${f.selfMs.toFixed(0).padStart(7)} ms ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.where}`)
  return `${lines.join('\n')}\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } })
  for (const file of positionals) {
    process.stdout.write(format(file, summarise(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, Number(values.top))))
  }
}
