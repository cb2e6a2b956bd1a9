// Property: for random releases r1 → r2 and random local edits (same-size edits included, so
// the stat cache's racy rule is exercised), `status` gives every path the status a simple
// reference model derives from the contents alone: through the stat index written before the
// edits, again through the index that status wrote, and by a full classification without one.
import { randomUUID } from 'node:crypto'
import { chmod, rm, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ignore, init, status } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const DIRS = ['', 'd1', 'd1/d2', 'e']
const PATHS = DIRS.flatMap((d) => ['a', 'b', 'c'].map((n) => (d ? `${d}/${n}` : n)))

interface FileVal { content: string; exec: boolean }
type LocalOp = 'none' | 'edit' | 'delete' | 'chmod' | 'add'
interface PathCase { r1?: FileVal; r2: FileVal | 'same' | undefined; op: LocalOp; text: string; ignored: boolean }

const rarely = fc.constantFrom(false, false, false, true)
const fileVal = fc.record({ content: fc.constantFrom('x', 'y', 'z'), exec: rarely })
const pathCase: fc.Arbitrary<PathCase> = fc.record({
  r1: fc.option(fileVal, { nil: undefined, freq: 3 }),
  r2: fc.oneof(fc.constant('same' as const), fc.constant('same' as const), fc.option(fileVal, { nil: undefined })),
  op: fc.constantFrom<LocalOp>('none', 'none', 'edit', 'delete', 'chmod', 'add'),
  text: fc.constantFrom('x', 'y', 'z'),
  ignored: rarely,
}, { requiredKeys: ['r2', 'op', 'text', 'ignored'] })
const scenario = fc.record({
  cases: fc.tuple(...PATHS.map(() => pathCase)),
  ignoredDirs: fc.subarray(['d1/d2', 'e']),
})

const value = (v: FileVal): string => `${v.exec ? 755 : 644}:${v.content}`
const spec = (files: Map<string, FileVal>): TreeSpec =>
  Object.fromEntries([...files].map(([p, v]) => [p, { content: v.content, mode: v.exec ? 0o755 : 0o644 }]))
const dirsOf = (paths: Iterable<string>): Set<string> => {
  const out = new Set<string>()
  for (const p of paths) for (let d = dirname(p); d !== '.'; d = dirname(d)) out.add(d)
  return out
}
/** path → "dir" or "<mode>:<content>" of a tree. */
function values(files: Map<string, string>): Map<string, string> {
  const out = new Map(files)
  for (const d of dirsOf(files.keys())) out.set(d, 'dir')
  return out
}

/** The reference model: the status from the three versions of a path, compared as text. */
function expectedStatus(ignored: boolean, b?: string, t?: string, l?: string): string {
  if (ignored) return 'ignored'
  if (!b && !t) return 'unversioned'
  if (t && l === t) return 'current'
  if (b && !t) return !l || l === b ? 'removed' : 'conflict'
  if (!l) return 'missing'
  if (b && b === t) return 'modified'
  return b && l === b ? 'outdated' : 'conflict'
}

describe('working copy — status property', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  beforeAll(async () => { tmp = await tempDir('upswarm-wc-property-') })
  afterAll(async () => tmp?.cleanup())

  it('working copy — status matches the reference model for random trees and local edits', async () => {
    let run = 0
    await fc.assert(fc.asyncProperty(scenario, async ({ cases, ignoredDirs }) => {
      const base = join(tmp.path, `run${run++}`)
      const key = generatePublisherKey()
      const product = randomUUID()
      const r1 = new Map<string, FileVal>()
      const r2 = new Map<string, FileVal>()
      PATHS.forEach((p, i) => {
        const c = cases[i]!
        if (c.r1) r1.set(p, c.r1)
        const v2 = c.r2 === 'same' ? c.r1 : c.r2
        if (v2) r2.set(p, v2)
      })
      const repo = join(base, 'repo')
      for (const [name, files] of [['s1', r1], ['s2', r2]] as const) {
        await writeTree(join(base, name), spec(files))
        await publishLocal(repo, { key, product, src: join(base, name) })
      }
      const wc = join(base, 'wc')
      await init(wc, { product, publicKey: key.publicKey, rev: 1, source: new DirectorySource(repo) })

      const ignoredPaths = new Set<string>()
      for (const [i, p] of PATHS.entries()) {
        if (!cases[i]!.ignored) continue
        ignoredPaths.add(p)
        await ignore(wc, `/${p}`)
      }
      for (const d of ignoredDirs) await ignore(wc, `/${d}/`)
      // The stat index of the tree as installed: the edits below are found through it.
      expect((await status(wc)).statIndex).toBe('context changed')

      const local = new Map([...r1].map(([p, v]) => [p, value(v)]))
      const localDirs = dirsOf(r1.keys())
      for (const [i, p] of PATHS.entries()) {
        const c = cases[i]!
        const abs = join(wc, p)
        const cur = r1.get(p)
        if (c.op === 'edit' && cur) {
          await writeFile(abs, c.text)
          local.set(p, value({ content: c.text, exec: cur.exec }))
        } else if (c.op === 'delete' && cur) {
          await rm(abs)
          local.delete(p)
        } else if (c.op === 'chmod' && cur) {
          await chmod(abs, 0o755)
          local.set(p, value({ ...cur, exec: true }))
        } else if (c.op === 'add' && !cur) {
          await mkdir(dirname(abs), { recursive: true })
          await writeFile(abs, c.text)
          local.set(p, value({ content: c.text, exec: false }))
          for (const d of dirsOf([p])) localDirs.add(d)
        }
      }

      const B = values(new Map([...r1].map(([p, v]) => [p, value(v)])))
      const T = values(new Map([...r2].map(([p, v]) => [p, value(v)])))
      const L = new Map(local)
      for (const d of localDirs) L.set(d, 'dir')
      const isIgnored = (p: string): boolean => ignoredPaths.has(p) || ignoredDirs.some((d) => p === d || p.startsWith(`${d}/`))
      const expected: Record<string, string> = {}
      for (const p of new Set([...B.keys(), ...T.keys(), ...L.keys()])) expected[p] = expectedStatus(isIgnored(p), B.get(p), T.get(p), L.get(p))

      const report = await status(wc)
      expect(report.target).toBe(2)
      expect(report.statIndex).toBe('indexed')
      expect(Object.fromEntries(report.files.map((f) => [f.path, f.status]))).toEqual(expected)
      // And again, from the index that run wrote; and from a full classification without an index.
      expect(Object.fromEntries((await status(wc)).files.map((f) => [f.path, f.status]))).toEqual(expected)
      await rm(layoutOf(wc).statCache)
      const full = await status(wc)
      expect(full.statIndex).toBe('no index')
      expect(Object.fromEntries(full.files.map((f) => [f.path, f.status]))).toEqual(expected)
      await rm(base, { recursive: true, force: true })
    }), { numRuns: 20 })
  })
})
