// Sample format-2 tree nodes (docs/formats.md §1.6), one of every node type and entry shape. The
// golden vectors in test/vectors/formats-2/nodes.json are these nodes' bytes and hashes, written
// once (`node --import tsx test/helpers/format2-samples.ts --write`) and never regenerated: a
// codec change that alters them breaks every fleet's hashes.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { encodeNode, nodeHash, type TreeNode } from '../../infra/formats/tree-node.ts'

const h = (c: string, n = 64): string => c.repeat(n)

export const SAMPLE_NODES: Record<string, { node: TreeNode; top?: boolean }> = {
  'dir-top': {
    top: true,
    node: {
      type: 'dir',
      entries: [
        { name: 'README', kind: 'file', mode: 0o644, size: 12, sha1: h('1', 40), sha256: h('2'), content: { tag: 0, zlen: 0 } },
        { name: 'big.dat', kind: 'file', mode: 0o600, size: 100_000, sha1: h('4', 40), sha256: h('5'), content: { tag: 1, chunks: [{ length: 60_000, sha256: h('6'), zlen: 20_000 }, { length: 40_000, sha256: h('7'), zlen: 0 }] } },
        { name: 'bin', kind: 'dir', mode: 0o755, node: h('3'), files: 2, bytes: 300_000 },
        { name: 'current', kind: 'symlink', target: 'bin/tool' },
        { name: 'huge.img', kind: 'file', mode: 0o644, size: 9_000_000_000, sha1: h('8', 40), sha256: h('9'), content: { tag: 2, list: h('a'), chunks: 140_000 } },
        { name: 'é-unicode', kind: 'file', mode: 0o644, size: 0, sha1: 'da39a3ee5e6b4b0d3255bfef95601890afd80709', sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', content: { tag: 0, zlen: 0 }, ext: [{ tag: 2, value: Buffer.from('note') }] },
      ],
    },
  },
  'dir-parts': { node: { type: 'dirParts', parts: [{ firstName: 'a', node: h('b'), entries: 1024 }, { firstName: 'm', node: h('c'), entries: 900 }] } },
  'chunk-list-0': { node: { type: 'chunkList', level: 0, chunks: [{ length: 262_144, sha256: h('d'), zlen: 0 }, { length: 16_384, sha256: h('e'), zlen: 9_000 }] } },
  'chunk-list-1': { node: { type: 'chunkList', level: 1, chunks: [{ length: 4_294_967_296, sha256: h('f'), zlen: 0 }] } },
  'delta-index': {
    node: {
      type: 'deltaIndex',
      deltas: [
        { target: h('1'), base: h('2'), delta: h('3'), length: 512, codec: 1 },
        { target: h('1'), base: h('4'), delta: h('5'), length: 700, codec: 2 },
        { target: h('6'), base: h('2'), delta: h('7'), length: 64, codec: 99 },
      ],
    },
  },
}

export function sampleVectors(): Record<string, { hex: string; sha256: string }> {
  return Object.fromEntries(Object.entries(SAMPLE_NODES).map(([name, { node, top }]) => {
    const bytes = encodeNode(node, { top })
    return [name, { hex: bytes.toString('hex'), sha256: nodeHash(bytes) }]
  }))
}

if (process.argv.includes('--write')) {
  const file = join(import.meta.dirname, '..', 'vectors', 'formats-2', 'nodes.json')
  writeFileSync(file, `${JSON.stringify(sampleVectors(), null, 2)}\n`)
  console.log(`wrote ${file}`)
}
