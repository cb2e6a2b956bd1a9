// Sample format-2 tree nodes (docs/formats.md §1.6), one of every node type and entry shape. The
// golden vectors in test/vectors/formats-2/nodes.json are these nodes' bytes and hashes, written
// once (`node --import tsx test/helpers/format2-samples.ts --write nodes|fastcdc`) and never regenerated: a
// codec change that alters them breaks every fleet's hashes.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { FastCdc } from '../../infra/formats/fastcdc.ts'
import { DEFAULT_CHUNKER } from '../../infra/formats/release.ts'
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
  // §1.9 (issue 13 item 4): the packs a release's small units are in.
  'pack-list': {
    node: {
      type: 'packList',
      packs: [
        { pack: h('8'), bytes: 16_777_300, units: 4_000 },
        { pack: h('9'), bytes: 70, units: 1 },
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

/** Deterministic bytes: SHA-256 in counter mode over a seed. */
export function bytesOf(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let i = 0, off = 0; off < length; i++, off += 32) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off)
  return out
}

/** The chunk lengths fastcdc-2020 cuts `data` into, fed `step` bytes at a time. */
export function cuts(data: Uint8Array, step: number, params = DEFAULT_CHUNKER): number[] {
  const cdc = new FastCdc(params)
  const lengths: number[] = []
  let last = 0
  for (let off = 0; off < data.length; off += step) {
    cdc.push(data.subarray(off, off + step), (end) => {
      lengths.push(off + end - last)
      last = off + end
    })
  }
  if (cdc.pending) lengths.push(cdc.pending)
  return lengths
}

if (process.argv.includes('--write')) {
  const dir = join(import.meta.dirname, '..', 'vectors', 'formats-2')
  const which = process.argv.slice(process.argv.indexOf('--write') + 1)
  if (which.includes('nodes')) writeFileSync(join(dir, 'nodes.json'), `${JSON.stringify(sampleVectors(), null, 2)}\n`)
  if (which.includes('fastcdc')) {
    const seed = 'upswarm-fastcdc-golden'
    const length = 4 << 20
    writeFileSync(join(dir, 'fastcdc.json'), `${JSON.stringify({ seed, length, params: DEFAULT_CHUNKER, chunks: cuts(bytesOf(seed, length), length) })}\n`)
  }
  console.log(`wrote ${which.join(', ')} under ${dir}`)
}
