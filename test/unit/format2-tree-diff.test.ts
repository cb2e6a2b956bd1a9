// docs/formats.md §4, issue 13 item 3: an update walks the old and the new tree together and
// fetches only the nodes the new revision changed (one batch per level); what it reports as
// changed is exactly what a full walk of both trees would find; a bad node is refused by path.
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { buildTree, walkTree, type BuiltTree, type ScannedEntry, type WalkedEntry } from '../../infra/formats/tree-builder.ts'
import { diffTrees, type NodeSource, type TreeChange } from '../../infra/formats/tree-diff.ts'
import { DEFAULT_CHUNKER } from '../../infra/formats/release.ts'

const hex = (s: string, n: number): string => createHash('sha256').update(s).digest('hex').slice(0, n)
const file = (path: string, tag = ''): ScannedEntry => ({ path, kind: 'file', mode: 0o644, size: 100, sha1: hex(`1${path}${tag}`, 40), sha256: hex(`2${path}${tag}`, 64) })
const dir = (path: string): ScannedEntry => ({ path, kind: 'dir', mode: 0o755 })
const byPath = (a: { path: string }, b: { path: string }): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)

/** 20 files per leaf, 20 leaves per inner directory: `leaves` leaves. */
function tree(leaves: number, edit: (e: ScannedEntry) => ScannedEntry | undefined = (e) => e, extra: ScannedEntry[] = []): ScannedEntry[] {
  const out: ScannedEntry[] = []
  for (let i = 0; i < Math.ceil(leaves / 20); i++) out.push(dir(`d${i}`))
  for (let l = 0; l < leaves; l++) {
    const d = `d${Math.floor(l / 20)}/l${l}`
    out.push(dir(d))
    for (let f = 0; f < 20; f++) {
      const e = edit(file(`${d}/f${f}`))
      if (e) out.push(e)
    }
  }
  return [...out, ...extra].sort(byPath)
}

/** The installed revision's nodes are local; the new one's come through `fetch`, counted. */
function source(held: BuiltTree, remote: BuiltTree): NodeSource & { asked: string[][] } {
  const asked: string[][] = []
  return {
    asked,
    local: (h) => held.nodes.get(h),
    fetch: async (hashes) => {
      asked.push(hashes)
      return new Map(hashes.map((h) => [h, remote.nodes.get(h)!]))
    },
  }
}

/** The changes a full walk of both trees finds. */
async function naive(a: BuiltTree | undefined, b: BuiltTree): Promise<TreeChange[]> {
  const walk = async (t: BuiltTree | undefined): Promise<Map<string, WalkedEntry>> =>
    new Map(t ? (await walkTree(t.top, async (h) => t.nodes.get(h)!)).map((e) => [e.path, e]) : [])
  const [olds, news] = [await walk(a), await walk(b)]
  const out: TreeChange[] = []
  for (const [path, e] of news) {
    const o = olds.get(path)
    if (!o) out.push({ kind: 'added', path, entry: e })
    else if (o.kind !== e.kind) out.push({ kind: 'removed', path, old: o }, { kind: 'added', path, entry: e })
    else if (JSON.stringify(o) !== JSON.stringify(e)) out.push({ kind: 'changed', path, entry: e, old: o })
  }
  for (const [path, o] of olds) if (!news.has(path)) out.push({ kind: 'removed', path, old: o })
  return out.sort(byPath)
}

describe('format-2 tree diff', () => {
  it('tree diff — a level of 1 200 changed directories is compared 512 at a time (issue 13 item 6): three requests for the leaves, none over 512 nodes, the same changes as a full walk', async () => {
    const before = buildTree(tree(1200), DEFAULT_CHUNKER)
    // One file in every leaf: every leaf node changes.
    const after = buildTree(tree(1200, (e) => (e.path.endsWith('/f7') ? file(e.path, 'v2') : e)), DEFAULT_CHUNKER)
    const src = source(before, after)
    const diff = await diffTrees(before.top, after.top, src)
    expect(diff.changes).toEqual(await naive(before, after))
    expect(diff.changes.filter((c) => c.kind === 'changed')).toHaveLength(1200)
    // top, the 60 d*, then the 1 200 leaves in slices of 512, 512 and 176.
    expect(src.asked.map((a) => a.length)).toEqual([1, 60, 512, 512, 176])
    expect(diff.fetched.requests).toBe(5)
    expect(new Set(src.asked.flat())).toEqual(new Set([...after.nodes.keys()].filter((h) => !before.nodes.has(h))))
  })

  it('tree diff — 1% of 10 000 files changed in random leaves: fetches exactly the new nodes, one request per level, and finds what a full walk finds', async () => {
    const before = buildTree(tree(500), DEFAULT_CHUNKER)
    // Every 100th file (in path order) is rewritten: 100 files over 100 leaves.
    let i = 0
    const after = buildTree(tree(500, (e) => (e.kind === 'file' && i++ % 100 === 0 ? file(e.path, 'v2') : e)), DEFAULT_CHUNKER)
    const src = source(before, after)
    const diff = await diffTrees(before.top, after.top, src)
    expect(diff.changes).toEqual(await naive(before, after))
    expect(diff.changes.filter((c) => c.kind === 'changed')).toHaveLength(100)
    const fresh = [...after.nodes.keys()].filter((h) => !before.nodes.has(h))
    expect(new Set(src.asked.flat())).toEqual(new Set(fresh))
    expect(diff.fetched.nodes).toBe(fresh.length)
    // top, d*, leaves: three levels, one batch each.
    expect(diff.fetched.requests).toBe(3)
    const all = [...after.nodes.values()].reduce((n, b) => n + b.length, 0)
    expect(diff.fetched.bytes).toBeLessThan(all * 0.25)
  })

  it('tree diff — clustered: two whole leaves changed fetch only those leaves, their parents and the top', async () => {
    const before = buildTree(tree(500), DEFAULT_CHUNKER)
    const after = buildTree(tree(500, (e) => (/^d3\/l(61|62)\//.test(e.path) ? file(e.path, 'v2') : e)), DEFAULT_CHUNKER)
    const diff = await diffTrees(before.top, after.top, source(before, after))
    expect(diff.changes).toEqual(await naive(before, after))
    expect(diff.fetched.nodes).toBe(4) // top, d3, l61, l62
  })

  it('tree diff — added, removed, a file that became a directory, a 5000-entry directory with one new file (one part fetched)', async () => {
    const big = Array.from({ length: 5000 }, (_, i) => file(`big/f${String(i).padStart(5, '0')}`))
    const base = [dir('big'), ...big, file('x'), dir('gone'), file('gone/a'), file('gone/b')]
    const before = buildTree([...tree(40), ...base].sort(byPath), DEFAULT_CHUNKER)
    const afterEntries = [...tree(40), dir('big'), ...big, file('big/f02500x'), dir('x'), file('x/inside'), file('new.txt')].sort(byPath)
    const after = buildTree(afterEntries, DEFAULT_CHUNKER)
    const src = source(before, after)
    const diff = await diffTrees(before.top, after.top, src)
    expect(diff.changes).toEqual(await naive(before, after))
    expect(diff.changes.map((c) => `${c.kind} ${c.path}`)).toEqual([
      'added big/f02500x', 'removed gone', 'removed gone/a', 'removed gone/b', 'added new.txt', 'removed x', 'added x', 'added x/inside',
    ])
    // top, big's parts node, the one part that changed, x/: not the other parts of big/.
    expect(diff.fetched.nodes).toBe(4)
  })

  it('tree diff — from nothing installed, the whole tree is added; the same tree twice fetches nothing', async () => {
    const t = buildTree(tree(30), DEFAULT_CHUNKER)
    const first = await diffTrees(undefined, t.top, source(buildTree([], DEFAULT_CHUNKER), t))
    expect(first.changes).toEqual(await naive(undefined, t))
    expect(first.fetched.nodes).toBe(t.nodes.size)
    expect([...first.nodes.keys()].sort()).toEqual([...t.nodes.keys()].sort())
    const again = await diffTrees(t.top, t.top, source(t, t))
    expect(again).toMatchObject({ changes: [], fetched: { nodes: 0, bytes: 0, requests: 0 } })
  })

  it('tree diff — a fetched node that does not hash to its name is refused, naming where it was met', async () => {
    const before = buildTree(tree(40), DEFAULT_CHUNKER)
    const after = buildTree(tree(40, (e) => (e.path === 'd1/l25/f3' ? file(e.path, 'v2') : e)), DEFAULT_CHUNKER)
    const src = source(before, after)
    const lying: NodeSource = {
      local: src.local,
      fetch: async (hashes) => {
        const m = await src.fetch(hashes)
        // The third level: the leaf d1/l25.
        if (src.asked.length === 3) for (const [h, b] of m) m.set(h, Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([b[b.length - 1]! ^ 1])]))
        return m
      },
    }
    await expect(diffTrees(before.top, after.top, lying)).rejects.toMatchObject({ code: 'UPSWARM_E_HASH_MISMATCH', message: expect.stringMatching(/d1\/l25/) })
  })
})
