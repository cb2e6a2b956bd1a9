// Format-2 tree nodes (docs/formats.md §1.6; issue 13 item 3, issue 15): the release's tree as
// content-addressed binary nodes, so the signed metadata an update fetches scales with the change,
// not with the tree. Unsigned: a node is trusted because its SHA-256 is reachable from a signed
// release. compact-encoding; every node starts with `uint format` (2) and `uint type` and must be
// consumed exactly. A reader refuses a node that is not canonical — entries out of byte order, a
// name twice, a field out of range, an integer not in its shortest form — so one tree has one
// encoding and one hash, and an unchanged directory keeps its hash from revision to revision.
import b4a from 'b4a'
import c from 'compact-encoding'
import { sha256Hex } from '../release/hash.ts'
import { META_DIR } from '../release/manifest-core.ts'
import { encodeToBytes, strictDecoding, type State, type WireEncoder } from '../swarm/wire-kit.ts'

export const NODE_FORMAT = 2
/** Every node: at most 1 MiB encoded (§4: a `nodes` reply of several stays under the 8 MiB cap). */
export const NODE_MAX_BYTES = 1024 * 1024
export const NODE_TYPES = { dir: 0, dirParts: 1, chunkList: 2, deltaIndex: 3, packList: 4 } as const
export const DIR_MAX_ENTRIES = 4096
export const DIR_PARTS_MAX = 3072
export const CHUNK_LIST_MAX = 16384
export const DELTA_INDEX_MAX = 8192
export const INLINE_CHUNKS_MAX = 16
/** Packs one pack-list node names (§1.9, issue 13 item 4). */
export const PACK_LIST_MAX = 16384
export const EXT_MAX_BYTES = 4096
const KINDS = ['file', 'dir', 'symlink'] as const
const MAX_MODE = 0o7777
/** Delta codecs (§1.6): 1 = zstd --patch-from, 2 = bsdiff. Others are skipped, not refused. */
export const DELTA_CODECS = { zstdPatch: 1, bsdiff: 2 } as const

export class TreeNodeError extends Error {
  override name = 'TreeNodeError'
}

/** An extension (§2.3): even tags may be ignored by a reader that does not know them, odd ones may not. */
export interface Ext { tag: number; value: Uint8Array }

/** A chunk (or, in a level-1 list, a level-0 list): bytes covered, SHA-256 (hex), compressed size hint (0 = raw). */
export interface ChunkRef { length: number; sha256: string; zlen: number }

export type FileContent =
  | { tag: 0; zlen: number }
  | { tag: 1; chunks: ChunkRef[] }
  | { tag: 2; list: string; chunks: number }

interface EntryBase { name: string; ext?: Ext[] }
export interface FileNodeEntry extends EntryBase { kind: 'file'; mode: number; size: number; sha1: string; sha256: string; content: FileContent }
export interface DirNodeEntry extends EntryBase { kind: 'dir'; mode: number; node: string; files: number; bytes: number }
export interface SymlinkNodeEntry extends EntryBase { kind: 'symlink'; target: string }
export type NodeEntry = FileNodeEntry | DirNodeEntry | SymlinkNodeEntry

export interface DirNode { type: 'dir'; entries: NodeEntry[]; ext?: Ext[] }
export interface DirPart { firstName: string; node: string; entries: number }
export interface DirPartsNode { type: 'dirParts'; parts: DirPart[]; ext?: Ext[] }
export interface ChunkListNode { type: 'chunkList'; level: 0 | 1; chunks: ChunkRef[]; ext?: Ext[] }
export interface DeltaRef { target: string; base: string; delta: string; length: number; codec: number }
export interface DeltaIndexNode { type: 'deltaIndex'; deltas: DeltaRef[]; ext?: Ext[] }
/** §1.9: a pack by its id (the SHA-256 of its header), its size and how many units it holds. */
export interface PackRef { pack: string; bytes: number; units: number }
export interface PackListNode { type: 'packList'; packs: PackRef[]; ext?: Ext[] }
export type TreeNode = DirNode | DirPartsNode | ChunkListNode | DeltaIndexNode | PackListNode

/** Extension tags a reader of this version knows (none yet); an unknown odd tag refuses the node. */
const KNOWN_EXT_TAGS = new Set<number>()

const hexOf = (b: Uint8Array): string => b4a.toString(b, 'hex')
const rawOf = (hex: string, bytes: number, field: string): Uint8Array => {
  // Buffer's hex decoding stops at the first pair that is not hex: a short result means a bad digit.
  const raw = hex.length === bytes * 2 ? b4a.from(hex, 'hex') : undefined
  if (!raw || raw.byteLength !== bytes) throw new TreeNodeError(`${field}: ${JSON.stringify(hex)} is not ${bytes} bytes of hex`)
  return raw
}

const { decodeWith, uintAtMost } = strictDecoding(TreeNodeError, NODE_MAX_BYTES)

function fixed(s: State, n: number, field: string): Uint8Array {
  if (s.end - s.start < n) throw new TreeNodeError(`truncated ${field}`)
  const out = (s.buffer as Uint8Array).subarray(s.start, s.start + n)
  s.start += n
  return out
}

// ---- encoding -------------------------------------------------------------------------------

function extPre(s: State, ext: Ext[] | undefined): void {
  c.uint.preencode(s, ext?.length ?? 0)
  for (const e of ext ?? []) {
    c.uint.preencode(s, e.tag)
    c.uint8array.preencode(s, e.value)
  }
}
function extEnc(s: State, ext: Ext[] | undefined): void {
  c.uint.encode(s, ext?.length ?? 0)
  for (const e of ext ?? []) {
    c.uint.encode(s, e.tag)
    c.uint8array.encode(s, e.value)
  }
}

function chunkPre(s: State, ch: ChunkRef): void {
  c.uint.preencode(s, ch.length)
  s.end += 32
  c.uint.preencode(s, ch.zlen)
}
function chunkEnc(s: State, ch: ChunkRef): void {
  c.uint.encode(s, ch.length)
  c.fixed32.encode(s, rawOf(ch.sha256, 32, 'chunk sha256'))
  c.uint.encode(s, ch.zlen)
}

function entryPre(s: State, e: NodeEntry): void {
  c.string.preencode(s, e.name)
  c.uint.preencode(s, KINDS.indexOf(e.kind))
  c.uint.preencode(s, e.kind === 'symlink' ? 0 : e.mode)
  if (e.kind === 'file') {
    c.uint.preencode(s, e.size)
    s.end += 20 + 32
    c.uint.preencode(s, e.content.tag)
    if (e.content.tag === 0) c.uint.preencode(s, e.content.zlen)
    else if (e.content.tag === 1) {
      c.uint.preencode(s, e.content.chunks.length)
      for (const ch of e.content.chunks) chunkPre(s, ch)
    } else {
      s.end += 32
      c.uint.preencode(s, e.content.chunks)
    }
  } else if (e.kind === 'dir') {
    s.end += 32
    c.uint.preencode(s, e.files)
    c.uint.preencode(s, e.bytes)
  } else c.string.preencode(s, e.target)
  extPre(s, e.ext)
}
function entryEnc(s: State, e: NodeEntry): void {
  c.string.encode(s, e.name)
  c.uint.encode(s, KINDS.indexOf(e.kind))
  c.uint.encode(s, e.kind === 'symlink' ? 0 : e.mode)
  if (e.kind === 'file') {
    c.uint.encode(s, e.size)
    c.fixed(20).encode(s, rawOf(e.sha1, 20, `${e.name}: sha1`))
    c.fixed32.encode(s, rawOf(e.sha256, 32, `${e.name}: sha256`))
    c.uint.encode(s, e.content.tag)
    if (e.content.tag === 0) c.uint.encode(s, e.content.zlen)
    else if (e.content.tag === 1) {
      c.uint.encode(s, e.content.chunks.length)
      for (const ch of e.content.chunks) chunkEnc(s, ch)
    } else {
      c.fixed32.encode(s, rawOf(e.content.list, 32, `${e.name}: chunk list`))
      c.uint.encode(s, e.content.chunks)
    }
  } else if (e.kind === 'dir') {
    c.fixed32.encode(s, rawOf(e.node, 32, `${e.name}: node`))
    c.uint.encode(s, e.files)
    c.uint.encode(s, e.bytes)
  } else c.string.encode(s, e.target)
  extEnc(s, e.ext)
}

const nodeEncoder: WireEncoder<TreeNode> = {
  preencode(s, n) {
    c.uint.preencode(s, NODE_FORMAT)
    c.uint.preencode(s, NODE_TYPES[n.type])
    switch (n.type) {
      case 'dir':
        c.uint.preencode(s, n.entries.length)
        for (const e of n.entries) entryPre(s, e)
        break
      case 'dirParts':
        c.uint.preencode(s, n.parts.length)
        for (const p of n.parts) {
          c.string.preencode(s, p.firstName)
          s.end += 32
          c.uint.preencode(s, p.entries)
        }
        break
      case 'chunkList':
        c.uint.preencode(s, n.level)
        c.uint.preencode(s, n.chunks.length)
        for (const ch of n.chunks) chunkPre(s, ch)
        break
      case 'deltaIndex':
        c.uint.preencode(s, n.deltas.length)
        for (const d of n.deltas) {
          s.end += 96
          c.uint.preencode(s, d.length)
          c.uint.preencode(s, d.codec)
        }
        break
      case 'packList':
        c.uint.preencode(s, n.packs.length)
        for (const p of n.packs) {
          s.end += 32
          c.uint.preencode(s, p.bytes)
          c.uint.preencode(s, p.units)
        }
        break
    }
    extPre(s, n.ext)
  },
  encode(s, n) {
    c.uint.encode(s, NODE_FORMAT)
    c.uint.encode(s, NODE_TYPES[n.type])
    switch (n.type) {
      case 'dir':
        c.uint.encode(s, n.entries.length)
        for (const e of n.entries) entryEnc(s, e)
        break
      case 'dirParts':
        c.uint.encode(s, n.parts.length)
        for (const p of n.parts) {
          c.string.encode(s, p.firstName)
          c.fixed32.encode(s, rawOf(p.node, 32, `part ${p.firstName}: node`))
          c.uint.encode(s, p.entries)
        }
        break
      case 'chunkList':
        c.uint.encode(s, n.level)
        c.uint.encode(s, n.chunks.length)
        for (const ch of n.chunks) chunkEnc(s, ch)
        break
      case 'deltaIndex':
        c.uint.encode(s, n.deltas.length)
        for (const d of n.deltas) {
          c.fixed32.encode(s, rawOf(d.target, 32, 'delta target'))
          c.fixed32.encode(s, rawOf(d.base, 32, 'delta base'))
          c.fixed32.encode(s, rawOf(d.delta, 32, 'delta'))
          c.uint.encode(s, d.length)
          c.uint.encode(s, d.codec)
        }
        break
      case 'packList':
        c.uint.encode(s, n.packs.length)
        for (const p of n.packs) {
          c.fixed32.encode(s, rawOf(p.pack, 32, 'pack'))
          c.uint.encode(s, p.bytes)
          c.uint.encode(s, p.units)
        }
        break
    }
    extEnc(s, n.ext)
  },
}

/**
 * The node's bytes. Checks what the decoder checks (order, ranges, sizes), so a publisher can
 * never produce a node its clients refuse.
 */
export function encodeNode(node: TreeNode, opts: { top?: boolean } = {}): Buffer {
  const bytes = encodeToBytes(nodeEncoder, node)
  decodeNode(bytes, opts) // the canonical-form checks, in one place
  return bytes
}

export function nodeHash(bytes: Uint8Array): string {
  return sha256Hex(bytes)
}

// ---- decoding -------------------------------------------------------------------------------

function nameCheck(name: string, top: boolean, where?: string): void {
  const at = where ? `${where}: ` : ''
  const bytes = b4a.byteLength(name)
  if (bytes < 1 || bytes > 255) throw new TreeNodeError(`${at}a name of ${bytes} bytes (1 to 255)`)
  if (name === '.' || name === '..' || /[/\\\0]/.test(name)) throw new TreeNodeError(`${at}the name ${JSON.stringify(name)} is not allowed`)
  if (top && name === META_DIR) throw new TreeNodeError(`${at}${META_DIR} is the working copy's own folder, never part of a release`)
}

/** Extensions of a node (`where` "node") or of an entry (`where` "": the entry's decoder says which). */
function extDec(s: State, where: string): Ext[] | undefined {
  const at = where ? `${where}: ` : ''
  const n = uintAtMost(s, EXT_MAX_BYTES, where ? `${at}extension count` : 'extension count')
  if (n === 0) return undefined
  const out: Ext[] = []
  let bytes = 0
  for (let i = 0; i < n; i++) {
    const tag = uintAtMost(s, 0xffffffff, `${at}extension tag`)
    if (out.length && tag <= out[out.length - 1]!.tag) throw new TreeNodeError(`${at}extension tags out of order`)
    const len = uintAtMost(s, EXT_MAX_BYTES, `${at}extension length`)
    bytes += len
    if (bytes > EXT_MAX_BYTES) throw new TreeNodeError(`${at}extensions exceed ${EXT_MAX_BYTES} bytes`)
    if (tag % 2 === 1 && !KNOWN_EXT_TAGS.has(tag)) throw new TreeNodeError(`${at}critical extension ${tag} is unknown to this upswarm (a newer one wrote it)`)
    out.push({ tag, value: b4a.from(fixed(s, len, 'extension value')) })
  }
  return out
}

function chunkDec(s: State, where: string): ChunkRef {
  const length = uintAtMost(s, Number.MAX_SAFE_INTEGER, `${where}: length`)
  const sha256 = hexOf(fixed(s, 32, `${where}: sha256`))
  const zlen = uintAtMost(s, Number.MAX_SAFE_INTEGER, `${where}: zlen`)
  return { length, sha256, zlen }
}

function entryDec(s: State, top: boolean, i: number): NodeEntry {
  const name = c.string.decode(s)
  // Where an error is, said only when there is one (a node of 4 096 entries has as many labels).
  try {
    return entryBody(s, top, name)
  } catch (err) {
    if (err instanceof TreeNodeError) throw new TreeNodeError(`entry ${i} (${JSON.stringify(name)}): ${err.message}`)
    throw err
  }
}

function entryBody(s: State, top: boolean, name: string): NodeEntry {
  nameCheck(name, top)
  const kindNo = uintAtMost(s, 0xff, 'kind')
  const kind = KINDS[kindNo]
  if (!kind) throw new TreeNodeError(`unknown kind ${kindNo}`)
  const mode = uintAtMost(s, MAX_MODE, 'mode')
  if (kind === 'file') {
    const size = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'size')
    const sha1 = hexOf(fixed(s, 20, 'sha1'))
    const sha256 = hexOf(fixed(s, 32, 'sha256'))
    const tag = uintAtMost(s, 0xff, 'content tag')
    let content: FileContent
    if (tag === 0) content = { tag, zlen: uintAtMost(s, Number.MAX_SAFE_INTEGER, 'zlen') }
    else if (tag === 1) {
      const n = uintAtMost(s, INLINE_CHUNKS_MAX, 'inline chunks')
      if (n < 1) throw new TreeNodeError(`inline chunks 0 (1 to ${INLINE_CHUNKS_MAX})`)
      const chunks: ChunkRef[] = []
      let covered = 0
      for (let k = 0; k < n; k++) {
        const ch = chunkDec(s, `chunk ${k}`)
        covered += ch.length
        chunks.push(ch)
      }
      if (covered !== size) throw new TreeNodeError(`its chunks cover ${covered} bytes, the file has ${size}`)
      content = { tag, chunks }
    } else if (tag === 2) {
      const list = hexOf(fixed(s, 32, 'chunk list'))
      content = { tag, list, chunks: uintAtMost(s, Number.MAX_SAFE_INTEGER, 'chunk count') }
    } else throw new TreeNodeError(`unknown content tag ${tag}`)
    return { name, kind, mode, size, sha1, sha256, content, ...optExt(extDec(s, '')) }
  }
  if (kind === 'dir') {
    const node = hexOf(fixed(s, 32, 'node'))
    const files = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'files')
    const bytes = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'bytes')
    return { name, kind, mode, node, files, bytes, ...optExt(extDec(s, '')) }
  }
  if (mode !== 0) throw new TreeNodeError(`a symlink's mode must be 0`)
  const target = c.string.decode(s)
  const tb = b4a.byteLength(target)
  if (tb < 1 || tb > 4096 || target.includes('\0')) throw new TreeNodeError(`a symlink target of ${tb} bytes (1 to 4096, no NUL)`)
  return { name, kind, target, ...optExt(extDec(s, '')) }
}

const optExt = (ext: Ext[] | undefined): { ext?: Ext[] } => (ext ? { ext } : {})

/** Below U+D800, UTF-16 order is UTF-8 byte order: most names compare as strings. */
const ABOVE_BMP_START = /[\uD800-\uFFFF]/

function sortedNames(names: string[], what: string): void {
  for (let i = 1; i < names.length; i++) {
    const a = names[i - 1]!
    const b = names[i]!
    if (a < b && !ABOVE_BMP_START.test(a) && !ABOVE_BMP_START.test(b)) continue
    const order = b4a.compare(b4a.from(a), b4a.from(b))
    if (order === 0) throw new TreeNodeError(`${what}: the name ${JSON.stringify(names[i])} twice`)
    if (order > 0) throw new TreeNodeError(`${what}: ${JSON.stringify(names[i])} after ${JSON.stringify(names[i - 1])}: names must be in byte order`)
  }
}

/**
 * Decodes untrusted node bytes, refusing anything not canonical with a TreeNodeError that says
 * what and where. `top`: the release's top directory (may not hold `.upswarm`).
 */
export function decodeNode(bytes: Uint8Array, opts: { top?: boolean; where?: string; canonical?: boolean } = {}): TreeNode {
  const top = !!opts.top
  const what = opts.where ?? 'tree node'
  const node = decodeWith(what, bytes, (s): TreeNode => {
    const format = c.uint.decode(s)
    if (format !== NODE_FORMAT) throw new TreeNodeError(`${what} is format ${format}; this upswarm reads format ${NODE_FORMAT}`)
    const type = uintAtMost(s, 0xff, 'node type')
    switch (type) {
      case NODE_TYPES.dir: {
        const n = uintAtMost(s, DIR_MAX_ENTRIES, 'entries')
        const entries: NodeEntry[] = []
        for (let i = 0; i < n; i++) entries.push(entryDec(s, top, i))
        return { type: 'dir', entries, ...optExt(extDec(s, 'node')) }
      }
      case NODE_TYPES.dirParts: {
        const n = uintAtMost(s, DIR_PARTS_MAX, 'parts')
        if (n < 2) throw new TreeNodeError(`${what}: a dir-parts node of ${n} part(s): a directory that fits one node is a dir node`)
        const parts: DirPart[] = []
        for (let i = 0; i < n; i++) {
          const firstName = c.string.decode(s)
          nameCheck(firstName, top, `part ${i}`)
          const node = hexOf(fixed(s, 32, `part ${i}: node`))
          const entries = uintAtMost(s, DIR_MAX_ENTRIES, `part ${i}: entries`)
          if (entries < 1) throw new TreeNodeError(`part ${i}: an empty part`)
          parts.push({ firstName, node, entries })
        }
        return { type: 'dirParts', parts, ...optExt(extDec(s, 'node')) }
      }
      case NODE_TYPES.chunkList: {
        const level = uintAtMost(s, 0xff, 'level')
        if (level !== 0 && level !== 1) throw new TreeNodeError(`${what}: unknown chunk-list level ${level}`)
        const n = uintAtMost(s, CHUNK_LIST_MAX, 'chunks')
        if (n < 1) throw new TreeNodeError(`${what}: an empty chunk list`)
        const chunks: ChunkRef[] = []
        for (let i = 0; i < n; i++) chunks.push(chunkDec(s, `chunk ${i}`))
        return { type: 'chunkList', level, chunks, ...optExt(extDec(s, 'node')) }
      }
      case NODE_TYPES.deltaIndex: {
        const n = uintAtMost(s, DELTA_INDEX_MAX, 'deltas')
        const deltas: DeltaRef[] = []
        for (let i = 0; i < n; i++) {
          const target = hexOf(fixed(s, 32, `delta ${i}: target`))
          const base = hexOf(fixed(s, 32, `delta ${i}: base`))
          const delta = hexOf(fixed(s, 32, `delta ${i}: delta`))
          const length = uintAtMost(s, Number.MAX_SAFE_INTEGER, `delta ${i}: length`)
          const codec = uintAtMost(s, 0xffffffff, `delta ${i}: codec`)
          const prev = deltas[i - 1]
          if (prev && (prev.target > target || (prev.target === target && prev.base >= base))) throw new TreeNodeError(`${what}: delta ${i} out of order (sorted by target, then base, each pair once)`)
          deltas.push({ target, base, delta, length, codec })
        }
        return { type: 'deltaIndex', deltas, ...optExt(extDec(s, 'node')) }
      }
      case NODE_TYPES.packList: {
        const n = uintAtMost(s, PACK_LIST_MAX, 'packs')
        if (n < 1) throw new TreeNodeError(`${what}: an empty pack list`)
        const packs: PackRef[] = []
        for (let i = 0; i < n; i++) {
          const pack = hexOf(fixed(s, 32, `pack ${i}`))
          const bytes = uintAtMost(s, Number.MAX_SAFE_INTEGER, `pack ${i}: bytes`)
          const units = uintAtMost(s, 0xffffffff, `pack ${i}: units`)
          if (units < 1) throw new TreeNodeError(`${what}: pack ${i} holds no unit`)
          if (i > 0 && packs[i - 1]!.pack >= pack) throw new TreeNodeError(`${what}: pack ${i} out of order (sorted by id, each once)`)
          packs.push({ pack, bytes, units })
        }
        return { type: 'packList', packs, ...optExt(extDec(s, 'node')) }
      }
      default:
        throw new TreeNodeError(`${what}: unknown node type ${type}`)
    }
  })
  if (node.type === 'dir') sortedNames(node.entries.map((e) => e.name), what)
  if (node.type === 'dirParts') sortedNames(node.parts.map((p) => p.firstName), what)
  // Shortest-form integers and valid UTF-8: the bytes must be exactly what this node encodes to.
  // (Bytes a store kept after this check are not checked again: the result is the same.)
  if (opts.canonical !== false && !b4a.equals(encodeToBytes(nodeEncoder, node), bytes)) throw new TreeNodeError(`${what} is not in canonical form (an integer not in its shortest encoding, or a name that is not valid UTF-8)`)
  return node
}

/** Encoded size of one dir-node entry: what a publisher adds up to cut a directory into parts. */
export function entryBytes(e: NodeEntry): number {
  const s: State = { start: 0, end: 0, buffer: null }
  entryPre(s, e)
  return s.end
}
