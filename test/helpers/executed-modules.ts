// Which source modules a CLI command ran code of (issue 13 item 1: commands run only what they
// use). The build is one CommonJS bundle whose modules stay lazy until first imported
// (scripts/build.mjs), so "loaded" means "ran": the command runs under V8's own coverage
// (NODE_V8_COVERAGE), and each function that ran is traced back to its source module through the
// bundle's source map. The code cache is off for it (the coverage is of compiled code either way).
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { runNode, type NodeRun } from './node-run.ts'

export const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
const BUNDLE = join(PROJECT_ROOT, 'dist', 'upswarm.cjs')

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

/** Runs `upswarm ARGS…` and returns its result and the source modules it ran code of. */
export async function runCounted(args: string[], env: NodeJS.ProcessEnv): Promise<{ r: NodeRun; ran: Set<string>; bundleRan: boolean }> {
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-coverage-'))
  try {
    const r = await runNode([CLI, ...args], { ...env, NODE_V8_COVERAGE: dir, UPSWARM_CODE_CACHE: '0' })
    const url = pathToFileURL(BUNDLE).href
    const runs = await Promise.all((await readdir(dir)).map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8')) as Coverage))
    const functions = runs.flatMap((c) => c.result.filter((s) => s.url === url || s.url === BUNDLE)).flatMap((s) => s.functions)
    const ran = new Set<string>()
    if (functions.length > 0) {
      const text = await readFile(BUNDLE, 'utf8')
      const lineStarts = [0]
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1)
      const map = JSON.parse(await readFile(`${BUNDLE}.map`, 'utf8')) as SourceMap
      const lines = decodeMappings(map.mappings)
      for (const fn of functions) {
        const first = fn.ranges[0]
        if (!first || first.count === 0) continue
        const source = sourceAt(text, lineStarts, lines, map.sources, first.startOffset)
        if (source) ran.add(source)
      }
    }
    return { r, ran, bundleRan: functions.length > 0 }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
