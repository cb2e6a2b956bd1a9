// Format-2 trees from a scan, and back (docs/formats.md §1.6, §5 step 2; issue 13 item 3): the
// publisher turns the sorted entries of a scan into content-addressed nodes — one per directory
// (split into parts past 4096 entries or 512 KiB, at name-dependent cut points, so one new file
// changes one part), chunk lists for files of more than 16 chunks — and a reader walks the nodes
// back into entries, checking every node's hash on the way (R-VERIFY).
import b4a from 'b4a'
import { createHash } from 'node:crypto'
import { UpswarmError } from '../errors.ts'
import type { ChunkerParams } from './fastcdc.ts'
import type { Entry } from '../release/manifest.ts'
import {
  CHUNK_LIST_MAX, DIR_MAX_ENTRIES, INLINE_CHUNKS_MAX, TreeNodeError, decodeNode, encodeNode, entryBytes, nodeHash,
  type ChunkRef, type DirNode, type DirPart, type FileContent, type NodeEntry, type TreeNode,
} from './tree-node.ts'

/** A dir node's entries past this many bytes go into parts (§1.6). */
export const DIR_PART_BYTES = 512 * 1024
/** A part ends after an entry whose SHA-256(name) starts with this many zero bits (about every 1024). */
const CUT_BITS = 10

/** A scanned entry, with its chunks when the file is larger than the chunker's `whole`. */
export type ScannedEntry = Entry & { chunks?: ChunkRef[] }

export interface BuiltTree {
  /** SHA-256 of the top node: the release's `tree`. */
  top: string
  /** Every node by hash (identical subtrees are one node). */
  nodes: Map<string, Buffer>
  stats: { files: number; bytes: number; nodes: number }
}

interface DirInfo { mode: number; children: ScannedEntry[] }
interface Built { hash: string; files: number; bytes: number }

const nameBytes = (name: string): Buffer => b4a.from(name) as Buffer
const byName = (a: { name: string }, b: { name: string }): number => b4a.compare(nameBytes(a.name), nameBytes(b.name))
const cutAfter = (name: string): boolean => {
  const d = createHash('sha256').update(name).digest()
  return d[0] === 0 && (d[1]! >> (8 - (CUT_BITS - 8))) === 0
}

export function buildTree(entries: readonly ScannedEntry[], chunker: Pick<ChunkerParams, 'whole'>): BuiltTree {
  const dirs = new Map<string, DirInfo>([['', { mode: 0o755, children: [] }]])
  const parentOf = (path: string): string => path.slice(0, Math.max(0, path.lastIndexOf('/')))
  for (const e of entries) if (e.kind === 'dir') dirs.set(e.path, { mode: e.mode, children: [] })
  for (const e of entries) {
    const dir = dirs.get(parentOf(e.path))
    if (!dir) throw new UpswarmError('UPSWARM_E_PUBLISH', `${e.path}: its directory ${parentOf(e.path)} is not in the scan`)
    dir.children.push(e)
  }
  const nodes = new Map<string, Buffer>()
  const put = (node: TreeNode, top = false): string => {
    const bytes = encodeNode(node, { top })
    const hash = nodeHash(bytes)
    nodes.set(hash, bytes)
    return hash
  }
  const contentOf = (e: ScannedEntry & { kind: 'file' }): FileContent => {
    if (e.size <= chunker.whole || !e.chunks || e.chunks.length <= 1) return { tag: 0, zlen: 0 }
    if (e.chunks.length <= INLINE_CHUNKS_MAX) return { tag: 1, chunks: e.chunks }
    if (e.chunks.length <= CHUNK_LIST_MAX) return { tag: 2, list: put({ type: 'chunkList', level: 0, chunks: e.chunks }), chunks: e.chunks.length }
    const lists: ChunkRef[] = []
    for (let i = 0; i < e.chunks.length; i += CHUNK_LIST_MAX) {
      const part = e.chunks.slice(i, i + CHUNK_LIST_MAX)
      lists.push({ length: part.reduce((n, c) => n + c.length, 0), sha256: put({ type: 'chunkList', level: 0, chunks: part }), zlen: 0 })
    }
    if (lists.length > CHUNK_LIST_MAX) throw new UpswarmError('UPSWARM_E_PUBLISH', `${e.path}: ${e.chunks.length} chunks are more than two chunk-list levels hold`)
    return { tag: 2, list: put({ type: 'chunkList', level: 1, chunks: lists }), chunks: e.chunks.length }
  }
  const build = (path: string): Built => {
    const dir = dirs.get(path)!
    let files = 0
    let bytes = 0
    const out: NodeEntry[] = []
    for (const e of dir.children) {
      const name = e.path.slice(e.path.lastIndexOf('/') + 1)
      if (e.kind === 'file') {
        out.push({ name, kind: 'file', mode: e.mode, size: e.size, sha1: e.sha1, sha256: e.sha256, content: contentOf(e) })
        files++
        bytes += e.size
      } else if (e.kind === 'symlink') out.push({ name, kind: 'symlink', target: e.target })
      else {
        const sub = build(e.path)
        out.push({ name, kind: 'dir', mode: e.mode, node: sub.hash, files: sub.files, bytes: sub.bytes })
        files += sub.files
        bytes += sub.bytes
      }
    }
    out.sort(byName)
    return { hash: dirNode(out, path === ''), files, bytes }
  }
  const dirNode = (entries: NodeEntry[], top: boolean): string => {
    const sizes = entries.map(entryBytes)
    const total = sizes.reduce((a, b) => a + b, 0)
    if (entries.length <= DIR_MAX_ENTRIES && total <= DIR_PART_BYTES) return put({ type: 'dir', entries }, top)
    const parts: { firstName: string; node: string; entries: number }[] = []
    let start = 0
    let partBytes = 0
    for (let i = 0; i < entries.length; i++) {
      partBytes += sizes[i]!
      const full = i + 1 - start >= DIR_MAX_ENTRIES || partBytes + (sizes[i + 1] ?? 0) > DIR_PART_BYTES
      if (i === entries.length - 1 || full || cutAfter(entries[i]!.name)) {
        const slice = entries.slice(start, i + 1)
        parts.push({ firstName: slice[0]!.name, node: put({ type: 'dir', entries: slice }, top), entries: slice.length })
        start = i + 1
        partBytes = 0
      }
    }
    if (parts.length === 1) return parts[0]!.node
    return put({ type: 'dirParts', parts }, top)
  }
  const top = build('')
  return { top: top.hash, nodes, stats: { files: top.files, bytes: top.bytes, nodes: nodes.size } }
}

/**
 * A node's bytes checked against the hash its parent names, then decoded (R-VERIFY): a mismatch
 * or a node that does not decode is refused, naming where in the tree it was met.
 */
export function checkedNode(hash: string, bytes: Uint8Array, top: boolean, where: string, held = false): TreeNode {
  // `held`: bytes from a store that keeps only nodes this check passed, read back checked against
  // their hash (a working copy's TreeStore): the canonical-form re-encoding would find what it found then.
  if (held) return decodeChecked(bytes, top, `tree node ${hash.slice(0, 16)}… (${where})`, false)
  if (nodeHash(bytes) !== hash) throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `tree node ${hash.slice(0, 16)}… (${where}) does not hash to its name: refusing it`)
  return decodeChecked(bytes, top, `tree node ${hash.slice(0, 16)}… (${where})`, true)
}

function decodeChecked(bytes: Uint8Array, top: boolean, where: string, canonical: boolean): TreeNode {
  try {
    return decodeNode(bytes, { top, where, canonical })
  } catch (err) {
    if (err instanceof TreeNodeError) throw new UpswarmError('UPSWARM_E_MANIFEST', err.message, { cause: err })
    throw err
  }
}

/** The error for a node met where a directory should be. */
export function notADirectory(hash: string, type: string, where: string): UpswarmError {
  return new UpswarmError('UPSWARM_E_MANIFEST', `tree node ${hash.slice(0, 16)}… at ${where} is a ${type} node, not a directory`)
}

/** `sub`, read for `part` of the dir-parts node of the directory at `where`, if it is that part (its entry count and first name). */
export function checkedPart(part: DirPart, sub: TreeNode, where: string): DirNode {
  if (sub.type !== 'dir' || sub.entries.length !== part.entries || sub.entries[0]?.name !== part.firstName) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `tree node ${part.node.slice(0, 16)}… is not the part of ${where} its parent describes`)
  }
  return sub
}

/** A directory entry as walked, at `path`. */
export function walkedEntry(path: string, e: NodeEntry): WalkedEntry {
  if (e.kind === 'file') return { path, kind: 'file', mode: e.mode, size: e.size, sha1: e.sha1, sha256: e.sha256, content: e.content }
  if (e.kind === 'symlink') return { path, kind: 'symlink', target: e.target }
  return { path, kind: 'dir', mode: e.mode }
}

/** Nodes a walk reads at once. */
const WALK_READS = 32

/** A file entry as walked: the format-1 fields plus how its bytes are addressed. */
export type WalkedEntry = Entry & { content?: FileContent }

/**
 * Walks a tree from its top hash back into entries sorted by path (the format-1 order), fetching
 * each node by hash with `get` and checking it hashes to what its parent names. `decoded`, kept
 * by the caller across walks, holds the nodes already checked and decoded (by hash): walks of
 * neighbouring revisions share all but the changed directories, and each node is read, hashed
 * and decoded once (a run walks the current, the target and every kept revision).
 */
export async function walkTree(
  top: string, get: (hash: string) => Promise<Uint8Array>, decoded?: Map<string, TreeNode>, opts: { held?: boolean } = {},
): Promise<WalkedEntry[]> {
  const out: WalkedEntry[] = []
  // Sibling directories are read side by side, at most WALK_READS nodes at a time (each is a file
  // read or a request: one after the other, they were most of a run's bookkeeping).
  let reading = 0
  const queue: (() => void)[] = []
  const limited = async (hash: string): Promise<Uint8Array> => {
    if (reading >= WALK_READS) await new Promise<void>((resolve) => queue.push(resolve))
    reading++
    try {
      return await get(hash)
    } finally {
      reading--
      queue.shift()?.()
    }
  }
  const fetchNode = async (hash: string, isTop: boolean, where: string): Promise<TreeNode> => {
    // The top directory's names are checked more strictly: cached apart.
    const key = isTop ? `top ${hash}` : hash
    const held = decoded?.get(key)
    if (held) return held
    const node = checkedNode(hash, await limited(hash), isTop, where, opts.held)
    decoded?.set(key, node)
    return node
  }
  const walkDir = async (hash: string, path: string): Promise<void> => {
    const node = await fetchNode(hash, path === '', path || '(top)')
    const entries: NodeEntry[] = []
    if (node.type === 'dir') entries.push(...node.entries)
    else if (node.type === 'dirParts') {
      for (const part of node.parts) {
        const sub = checkedPart(part, await fetchNode(part.node, path === '', `${path || '(top)'}, part from ${part.firstName}`), path || '(top)')
        const prev = entries[entries.length - 1]
        if (prev && byName(prev, sub.entries[0]!) >= 0) throw new UpswarmError('UPSWARM_E_MANIFEST', `the parts of ${path || '(top)'} overlap or are out of order`)
        entries.push(...sub.entries)
      }
    } else throw notADirectory(hash, node.type, path || '(top)')
    const subdirs: Promise<void>[] = []
    for (const e of entries) {
      const p = path ? `${path}/${e.name}` : e.name
      out.push(walkedEntry(p, e))
      if (e.kind === 'dir') subdirs.push(walkDir(e.node, p))
    }
    await Promise.all(subdirs)
  }
  await walkDir(top, '')
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}
