// docs/formats.md §1.6 (issue 13 item 3, issue 15): format-2 tree nodes have one encoding each —
// the golden vectors stay byte for byte, and a node that is not canonical is refused by name.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodeNode, encodeNode, nodeHash, TreeNodeError, type DirNode, type FileNodeEntry, type NodeEntry } from '../../infra/formats/tree-node.ts'
import { SAMPLE_NODES, sampleVectors } from '../helpers/format2-samples.ts'

const VECTORS = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'vectors', 'formats-2', 'nodes.json'), 'utf8')) as Record<string, { hex: string; sha256: string }>
const file = (name: string): FileNodeEntry => ({ name, kind: 'file', mode: 0o644, size: 1, sha1: 'a'.repeat(40), sha256: 'b'.repeat(64), content: { tag: 0, zlen: 0 } })
const dirOf = (...entries: NodeEntry[]): DirNode => ({ type: 'dir', entries })
const refusal = (bytes: Uint8Array, opts = {}): string => {
  try {
    decodeNode(bytes, opts)
  } catch (err) {
    expect(err).toBeInstanceOf(TreeNodeError)
    return (err as Error).message
  }
  throw new Error('the node was accepted')
}

describe('format-2 tree nodes', () => {
  it('nodes — every sample encodes to its golden vector, hashes to its recorded SHA-256, and decodes back to itself', () => {
    expect(sampleVectors()).toEqual(VECTORS)
    for (const [name, { node, top }] of Object.entries(SAMPLE_NODES)) {
      const bytes = Buffer.from(VECTORS[name]!.hex, 'hex')
      expect(nodeHash(bytes)).toBe(VECTORS[name]!.sha256)
      expect(decodeNode(bytes, { top })).toEqual(node)
    }
  })

  it('nodes — entries out of byte order, a name twice, a bad name, .upswarm at the top are refused, at encode and at decode', () => {
    expect(() => encodeNode(dirOf(file('b'), file('a')))).toThrow(/"a" after "b": names must be in byte order/)
    expect(() => encodeNode(dirOf(file('a'), file('a')))).toThrow(/the name "a" twice/)
    // Byte order, not locale order: 'Z' (0x5a) before 'a' (0x61), 'é' (0xc3 0xa9) after 'z'.
    expect(() => encodeNode(dirOf(file('Z'), file('a'), file('z'), file('é')))).not.toThrow()
    for (const bad of ['.', '..', 'a/b', 'a\\b', 'x'.repeat(256), '']) expect(() => encodeNode(dirOf(file(bad)))).toThrow(TreeNodeError)
    expect(() => encodeNode(dirOf(file('.upswarm')), { top: true })).toThrow(/working copy's own folder/)
    expect(() => encodeNode(dirOf(file('.upswarm')))).not.toThrow() // deeper down it is an ordinary name
  })

  it('nodes — a non-shortest integer, a trailing byte, an unknown kind, tag, level or type, an odd (critical) unknown extension are refused with what is wrong', () => {
    const ok = encodeNode(dirOf(file('a')))
    // mode 0o644 is `fd a4 01`; write the size (1) as `fd 01 00` instead of `01`.
    const sizeAt = ok.indexOf(Buffer.from('fda40101', 'hex')) + 3
    const long = Buffer.concat([ok.subarray(0, sizeAt), Buffer.from('fd0100', 'hex'), ok.subarray(sizeAt + 1)])
    expect(refusal(long)).toMatch(/not in canonical form \(an integer not in its shortest encoding/)
    expect(refusal(Buffer.concat([ok, Buffer.from([0])]))).toMatch(/1 trailing bytes/)
    const kindAt = ok.indexOf(Buffer.from('0161', 'hex')) + 2 // name "a" then kind
    const unknownKind = Buffer.from(ok)
    unknownKind[kindAt] = 7
    expect(refusal(unknownKind)).toMatch(/unknown kind 7/)
    expect(refusal(Buffer.from([2, 9]))).toMatch(/unknown node type 9/)
    expect(refusal(Buffer.from([3, 0]))).toMatch(/format 3; this upswarm reads format 2/)
    expect(refusal(encodeNode({ type: 'chunkList', level: 0, chunks: [{ length: 1, sha256: 'c'.repeat(64), zlen: 0 }] }).fill(2, 2, 3))).toMatch(/unknown chunk-list level 2/)
    expect(() => encodeNode({ type: 'dir', entries: [{ ...file('a'), ext: [{ tag: 3, value: Buffer.from('x') }] }] })).toThrow(/critical extension 3 is unknown/)
    expect(() => encodeNode({ type: 'dir', entries: [{ ...file('a'), ext: [{ tag: 4, value: Buffer.from('x') }] }] })).not.toThrow()
    const tag = encodeNode({ ...dirOf(file('a')) })
    const unknownTag = Buffer.from(tag)
    unknownTag[unknownTag.length - 4] = 5 // the content tag (0) before zlen (0), ext (0), node ext (0)
    expect(refusal(unknownTag)).toMatch(/unknown content tag 5/)
  })

  it('nodes — inline chunks must cover the file exactly; deltas sorted by target then base; dir-parts hold at least two parts', () => {
    expect(() => encodeNode(dirOf({ ...file('a'), size: 10, content: { tag: 1, chunks: [{ length: 9, sha256: 'c'.repeat(64), zlen: 0 }] } }))).toThrow(/cover 9 bytes, the file has 10/)
    const d = (target: string, base: string) => ({ target: target.repeat(64), base: base.repeat(64), delta: 'e'.repeat(64), length: 1, codec: 1 })
    expect(() => encodeNode({ type: 'deltaIndex', deltas: [d('2', '1'), d('1', '1')] })).toThrow(/delta 1 out of order/)
    expect(() => encodeNode({ type: 'deltaIndex', deltas: [d('1', '1'), d('1', '1')] })).toThrow(/delta 1 out of order/)
    expect(() => encodeNode({ type: 'dirParts', parts: [{ firstName: 'a', node: 'c'.repeat(64), entries: 1 }] })).toThrow(/1 part\(s\)/)
  })

  it('nodes — random and mutated bytes are refused only with TreeNodeError (bounded run)', () => {
    const seeds = Object.values(VECTORS).map((v) => Buffer.from(v.hex, 'hex'))
    for (let i = 0; i < 3000; i++) {
      let bytes: Buffer
      if (i % 3 === 0) bytes = randomBytes(i % 200)
      else {
        bytes = Buffer.from(seeds[i % seeds.length]!)
        for (let k = 0; k < 1 + (i % 4); k++) {
          const at = (i * 7919 + k * 104729) % bytes.length
          bytes[at] = bytes[at]! ^ (1 + ((i + k) % 255))
        }
        if (i % 5 === 0) bytes = bytes.subarray(0, i % bytes.length)
      }
      try {
        decodeNode(bytes)
      } catch (err) {
        if (!(err instanceof TreeNodeError)) throw new Error(`input ${bytes.toString('hex')} threw ${String(err)}`)
      }
    }
  })
})
