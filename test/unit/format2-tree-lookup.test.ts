// Issue 13 items 3 and 6: reading a format-2 tree without walking all of it. `TreeReader.lookup`
// finds a path's entry by descending through the directories on its way (a split directory: the
// one part that can hold the name), and agrees with a full walk; `eachFile` visits the files of a
// tree once per node, so a second revision costs only the nodes it changed; a bad node is refused.
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { buildTree, walkTree, type ScannedEntry } from '../../infra/formats/tree-builder.ts'
import { TreeReader } from '../../infra/formats/tree-lookup.ts'
import { DEFAULT_CHUNKER } from '../../infra/formats/release.ts'

const hex = (s: string, n: number): string => createHash('sha256').update(s).digest('hex').slice(0, n)
const file = (path: string, tag = ''): ScannedEntry => ({ path, kind: 'file', mode: 0o644, size: 100, sha1: hex(`1${path}${tag}`, 40), sha256: hex(`2${path}${tag}`, 64) })
const dir = (path: string): ScannedEntry => ({ path, kind: 'dir', mode: 0o755 })
const byPath = (a: { path: string }, b: { path: string }): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)

/** A directory of 9 000 files (split into parts), one of 30 with a non-ASCII name, a symlink. */
function entries(tag = ''): ScannedEntry[] {
  const out: ScannedEntry[] = [dir('big'), dir('small'), dir('small/ünï'), { path: 'link', kind: 'symlink', target: 'small' }]
  for (let i = 0; i < 9000; i++) out.push(file(`big/f${String(i).padStart(5, '0')}`, i === 4321 ? tag : ''))
  for (let i = 0; i < 30; i++) out.push(file(`small/ünï/g${i}`))
  return out.sort(byPath)
}

describe('format-2 tree reader', () => {
  it('lookup — finds entries in a split directory and under non-ASCII names as a full walk does, and undefined for paths the tree lacks', async () => {
    const t = buildTree(entries(), DEFAULT_CHUNKER)
    const walked = new Map((await walkTree(t.top, async (h) => t.nodes.get(h)!)).map((e) => [e.path, e]))
    const reads: string[] = []
    const reader = new TreeReader(async (h) => {
      reads.push(h)
      return t.nodes.get(h)!
    })
    for (const path of ['big/f00000', 'big/f04321', 'big/f08999', 'small/ünï/g7', 'small/ünï', 'link']) {
      expect(await reader.lookup(t.top, path)).toEqual(walked.get(path))
    }
    // The split directory: only the parts holding the names asked for were read, not all of them.
    expect(new Set(reads).size).toBeLessThan(t.nodes.size)
    for (const path of ['big/f09000', 'small/none', 'link/g1', 'nothing/here', 'big/f00001/below']) expect(await reader.lookup(t.top, path)).toBeUndefined()
  })

  it('eachFile — visits every file of a tree once, and of a second revision only the files in the nodes it changed; a node that does not hash to its name is refused', async () => {
    const a = buildTree(entries(), DEFAULT_CHUNKER)
    const b = buildTree(entries('changed'), DEFAULT_CHUNKER)
    const nodes = new Map([...a.nodes, ...b.nodes])
    const reader = new TreeReader(async (h) => nodes.get(h)!)
    const seen = new Set<string>()
    const first: string[] = []
    await reader.eachFile(a.top, seen, (path) => first.push(path))
    expect(first.sort()).toEqual(entries().filter((e) => e.kind === 'file').map((e) => e.path).sort())
    const second: string[] = []
    await reader.eachFile(b.top, seen, (path) => second.push(path))
    // Only the part of big/ holding the changed file (and the nodes above it) differ.
    expect(second).toContain('big/f04321')
    expect(second.length).toBeLessThan(4096)
    expect(second).not.toContain('small/ünï/g0')
    const forged = new TreeReader(async (h) => (h === b.top ? a.nodes.get(a.top)! : nodes.get(h)!))
    await expect(forged.eachFile(b.top, new Set(), () => {})).rejects.toMatchObject({ code: 'UPSWARM_E_HASH_MISMATCH' })
  })
})
