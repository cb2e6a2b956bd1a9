// Which source modules a CLI command ran code of (issue 13 item 1: commands run only what they
// use). The build is one CommonJS bundle whose modules stay lazy until first imported
// (scripts/build.mjs), so "loaded" means "ran": the command runs under V8's own coverage
// (NODE_V8_COVERAGE), and each function that ran is traced back to its source module through the
// source map of its build (dist/upswarm.cjs, or dist/status.cjs for `status --offline`). The code
// cache is off for it (the coverage is of compiled code either way).
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { runNode, type NodeRun } from './node-run.ts'

export const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
/** The builds bin/upswarm.cjs may run (scripts/build.mjs). */
const BUNDLES = ['upswarm.cjs', 'status.cjs'].map((f) => join(PROJECT_ROOT, 'dist', f))

interface Coverage { result: { url: string; functions: { functionName: string; ranges: { startOffset: number; count: number }[] }[] }[] }
interface SourceMap { sources: string[]; mappings: string }

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** Per generated line, its segments as [column, source index], from a source map's VLQ mappings. */
function decodeMappings(mappings: string): Array<Array<[number, number]>> {
  const lines: Array<Array<[number, number]>> = []
  let source = 0
  for (const line of mappings.split(';')) {
    const segments: Array<[number, number]> = []
    let column = 0
    for (const segment of line.split(',')) {
      if (!segment) continue
      const fields: number[] = []
      let value = 0
      let shift = 0
      for (const ch of segment) {
        const digit = B64.indexOf(ch)
        value += (digit & 31) << shift
        if (digit & 32) {
          shift += 5
        } else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1)
          value = 0
          shift = 0
        }
      }
      column += fields[0]!
      if (fields.length >= 4) {
        source += fields[1]!
        segments.push([column, source])
      }
    }
    lines.push(segments)
  }
  return lines
}

/** The source module (project-relative, e.g. `actors/cli/status.ts`, `node_modules/zod/…`) of a bundle offset. */
function sourceAt(text: string, lineStarts: number[], lines: Array<Array<[number, number]>>, sources: string[], offset: number): string | undefined {
  let line = 0
  for (let lo = 0, hi = lineStarts.length - 1; lo <= hi;) {
    const mid = (lo + hi) >> 1
    if (lineStarts[mid]! <= offset) { line = mid; lo = mid + 1 } else hi = mid - 1
  }
  const column = offset - lineStarts[line]!
  const segments = lines[line] ?? []
  let found: [number, number] | undefined
  for (let lo = 0, hi = segments.length - 1; lo <= hi;) {
    const mid = (lo + hi) >> 1
    if (segments[mid]![0] <= column) { found = segments[mid]; lo = mid + 1 } else hi = mid - 1
  }
  return found ? sources[found[1]]!.replace(/^(\.\.\/)+/, '') : undefined
}

/** The source modules of the functions in `functions` that ran, through `bundle`'s source map. */
async function modulesRan(bundle: string, functions: Coverage['result'][number]['functions'], ran: Set<string>): Promise<void> {
  const text = await readFile(bundle, 'utf8')
  const lineStarts = [0]
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1)
  const map = JSON.parse(await readFile(`${bundle}.map`, 'utf8')) as SourceMap
  const lines = decodeMappings(map.mappings)
  for (const fn of functions) {
    const first = fn.ranges[0]
    if (!first || first.count === 0) continue
    const source = sourceAt(text, lineStarts, lines, map.sources, first.startOffset)
    if (source) ran.add(source)
  }
}

/**
 * Runs `upswarm ARGS…` and returns its result, the source modules it ran code of, and which of
 * the builds ran (file names in dist/).
 */
export async function runCounted(args: string[], env: NodeJS.ProcessEnv): Promise<{ r: NodeRun; ran: Set<string>; bundleRan: boolean; builds: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-coverage-'))
  try {
    const r = await runNode([CLI, ...args], { ...env, NODE_V8_COVERAGE: dir, UPSWARM_CODE_CACHE: '0' })
    const runs = await Promise.all((await readdir(dir)).map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8')) as Coverage))
    const ran = new Set<string>()
    const builds: string[] = []
    for (const bundle of BUNDLES) {
      const url = pathToFileURL(bundle).href
      const functions = runs.flatMap((c) => c.result.filter((s) => s.url === url || s.url === bundle)).flatMap((s) => s.functions)
      if (functions.length === 0) continue
      builds.push(basename(bundle))
      await modulesRan(bundle, functions, ran)
    }
    // Packages a build leaves outside itself run from node_modules (dist/status.cjs leaves zod,
    // xstate and the NATS client there): a script of those that ran counts as its own module.
    const packages = pathToFileURL(join(PROJECT_ROOT, 'node_modules')).href + '/'
    for (const script of runs.flatMap((c) => c.result)) {
      if (script.url.startsWith(packages) && script.functions.some((fn) => (fn.ranges[0]?.count ?? 0) > 0)) ran.add(`node_modules/${script.url.slice(packages.length)}`)
    }
    return { r, ran, bundleRan: builds.length > 0, builds }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
