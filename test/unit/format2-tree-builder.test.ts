// docs/formats.md §1.6 and §5 step 2 (issue 13 item 3): a scan becomes content-addressed nodes and
// walks back to the same entries; a change touches only the nodes on its path (one part of a big
// directory), so the metadata an update fetches scales with the change; a node that does not hash
// to its name is refused.
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { buildTree, walkTree, type ScannedEntry } from '../../infra/formats/tree-builder.ts'
import { DEFAULT_CHUNKER } from '../../infra/formats/release.ts'
import type { ChunkRef } from '../../infra/formats/tree-node.ts'

const hex = (s: string, n: number): string => createHash('sha256').update(s).digest('hex').slice(0, n)
const file = (path: string, size = 100, chunks?: ChunkRef[]): ScannedEntry => ({ path, kind: 'file', mode: 0o644, size, sha1: hex(`1${path}${size}`, 40), sha256: hex(`2${path}${size}`, 64), ...(chunks ? { chunks } : {}) })
const chunksOf = (n: number, tag: string): ChunkRef[] => Array.from({ length: n }, (_, i) => ({ length: 70_000, sha256: hex(`${tag}${i}`, 64), zlen: 0 }))
const sorted = (es: ScannedEntry[]): ScannedEntry[] => [...es].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))

function sampleTree(extra: ScannedEntry[] = []): ScannedEntry[] {
  const es: ScannedEntry[] = [
    { path: 'bin', kind: 'dir', mode: 0o755 },
    file('bin/tool', 70_000 * 3, chunksOf(3, 'tool')),
    file('bin/huge', 70_000 * 40, chunksOf(40, 'huge')),
    { path: 'current', kind: 'symlink', target: 'bin/tool' },
    { path: 'lib', kind: 'dir', mode: 0o755 },
    { path: 'lib/deep', kind: 'dir', mode: 0o700 },
    file('lib/deep/x.so'),
    { path: 'many', kind: 'dir', mode: 0o755 },
    ...Array.from({ length: 5000 }, (_, i) => file(`many/f${String(i).padStart(5, '0')}`)),
    file('README'),
    ...extra,
  ]
  return sorted(es)
}
const strip = (es: ScannedEntry[]) => es.map(({ chunks: _c, ...e }) => e)

describe('format-2 tree builder', () => {
  it('tree — a scan becomes nodes (a 5000-entry directory in parts, a 40-chunk file behind a chunk list) and walks back to the same entries', async () => {
    const entries = sampleTree()
    const built = buildTree(entries, DEFAULT_CHUNKER)
    expect(built.stats.files).toBe(5004)
    const walked = await walkTree(built.top, async (h) => built.nodes.get(h)!)
    expect(walked.map(({ content: _c, ...e }) => e)).toEqual(strip(entries))
    const byPath = new Map(walked.map((e) => [e.path, e]))
    expect(byPath.get('bin/tool')).toMatchObject({ content: { tag: 1 } })
    expect(byPath.get('bin/huge')).toMatchObject({ content: { tag: 2, chunks: 40 } })
    expect(byPath.get('README')).toMatchObject({ content: { tag: 0 } })
    const nodeTypes = [...built.nodes.values()].map((b) => b[1])
    expect(nodeTypes.filter((t) => t === 1)).toHaveLength(1) // one dir-parts node: many/
  })

  it('tree — one new file in the 5000-entry directory adds only its part, the parts node and the top: unchanged directories keep their hashes', () => {
    const before = buildTree(sampleTree(), DEFAULT_CHUNKER)
    const after = buildTree(sampleTree([file('many/f02500x')]), DEFAULT_CHUNKER)
    const added = [...after.nodes.keys()].filter((h) => !before.nodes.has(h))
    expect(added).toHaveLength(3)
    const addedBytes = added.reduce((n, h) => n + after.nodes.get(h)!.length, 0)
    const allBytes = [...after.nodes.values()].reduce((n, b) => n + b.length, 0)
    expect(addedBytes).toBeLessThan(allBytes / 2)
    console.log(`tree of ${after.stats.files} files: ${allBytes} bytes of nodes; one new file adds ${added.length} nodes, ${addedBytes} bytes`)
  })

  it('tree — a node that does not hash to its name, or a part that is not what its parent says, is refused by name', async () => {
    const built = buildTree(sampleTree(), DEFAULT_CHUNKER)
    const tampered = async (h: string): Promise<Uint8Array> => {
      const b = Buffer.from(built.nodes.get(h)!)
      if (h !== built.top) b[b.length - 2] = b[b.length - 2]! ^ 1
      return b
    }
    await expect(walkTree(built.top, tampered)).rejects.toThrow(/does not hash to its name: refusing it/)
    const other = buildTree(sorted([file('a'), file('b')]), DEFAULT_CHUNKER)
    await expect(walkTree(built.top, async (h) => (h === built.top ? built.nodes.get(h)! : other.nodes.get(other.top)!))).rejects.toThrow(/does not hash to its name/)
  })
})
