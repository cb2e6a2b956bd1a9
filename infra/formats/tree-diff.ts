// What changed between two format-2 trees, fetching only the nodes that changed (docs/formats.md
// §1.6, §4; issue 13 item 3: "an update of 1% of the files fetches metadata for the changed
// directories only"). A client holds the nodes of its installed revision; to reach a new one it
// walks both trees from the top, level by level, and descends only where a node hash differs:
// an unchanged directory — or an unchanged part of a split directory — has the same hash in both
// revisions, so nothing beneath it is fetched or read. The new tree's nodes come in one batch
// per level (the `nodes` request of §1.8 takes up to 1024 hashes); every node is checked against
// the hash its parent names before it is decoded (R-VERIFY).
import { UpswarmError } from '../errors.ts'
import { checkedNode, checkedPart, notADirectory, walkedEntry, type WalkedEntry } from './tree-builder.ts'
import type { FileContent, NodeEntry, TreeNode } from './tree-node.ts'

/** Nodes by hash: the caller's local store (the installed revision's nodes), then the network. */
export interface NodeSource {
  /** A node held locally, or undefined; checked like a fetched one unless `held` (checkedNode's). */
  local(hash: string): Promise<Uint8Array | undefined> | Uint8Array | undefined
  held?: boolean
  /** Fetches nodes by hash (one level's worth at a time); may return them in any order. */
  fetch(hashes: string[]): Promise<Map<string, Uint8Array>>
}

export type TreeChange =
  | { kind: 'added'; path: string; entry: WalkedEntry }
  | { kind: 'removed'; path: string; old: WalkedEntry }
  | { kind: 'changed'; path: string; entry: WalkedEntry; old: WalkedEntry }

export interface TreeDiff {
  /** Sorted by path, parents before children. */
  changes: TreeChange[]
  /** Every new-tree node the walk needed, by hash (the caller stores them as the new revision's). */
  nodes: Map<string, Uint8Array>
  /** What came from `fetch`: nodes, bytes and calls (one per slice of a tree level that needed any: LEVEL_SLICE directories). */
  fetched: { nodes: number; bytes: number; requests: number }
}

interface Pending {
  path: string
  old?: string
  new?: string
}

const joinPath = (dir: string, name: string): string => (dir ? `${dir}/${name}` : name)

/** Directories compared at once: their old and new nodes fit one `nodes` request (NODES_MAX_HASHES). */
const LEVEL_SLICE = 512

function sameContent(a: NodeEntry, b: NodeEntry): boolean {
  if (a.kind !== b.kind) return false
  if (a.kind === 'symlink') return a.target === (b as typeof a).target
  if (a.kind === 'dir') return a.mode === (b as typeof a).mode && a.node === (b as typeof a).node
  const f = b as typeof a
  return a.mode === f.mode && a.size === f.size && a.sha256 === f.sha256 && a.sha1 === f.sha1 && sameAddressing(a.content, f.content)
}

/** Whether two entries address their bytes alike (compared field by field: this runs for every unchanged file of a changed directory). */
function sameAddressing(a: FileContent, b: FileContent): boolean {
  if (a.tag === 0) return b.tag === 0 && a.zlen === b.zlen
  if (a.tag === 2) return b.tag === 2 && a.list === b.list && a.chunks === b.chunks
  if (b.tag !== 1 || a.chunks.length !== b.chunks.length) return false
  return a.chunks.every((ch, i) => ch.length === b.chunks[i]!.length && ch.sha256 === b.chunks[i]!.sha256 && ch.zlen === b.chunks[i]!.zlen)
}

/**
 * The changes from the tree at `oldTop` (undefined: nothing installed) to the tree at `newTop`.
 * A node whose bytes do not hash to its name, or that does not decode, is refused with the path
 * it was met at; nothing is returned then.
 */
export async function diffTrees(oldTop: string | undefined, newTop: string, source: NodeSource): Promise<TreeDiff> {
  const changes: TreeChange[] = []
  const nodes = new Map<string, Uint8Array>()
  const fetched = { nodes: 0, bytes: 0, requests: 0 }
  // The nodes of the level being compared (cleared after each level).
  const decoded = new Map<string, TreeNode>()
  const raw = new Map<string, Uint8Array>()

  /** Makes every node in `want` (hash → where, top) available: local first, then one fetch. */
  const load = async (want: Map<string, { where: string; top: boolean; newSide: boolean }>): Promise<void> => {
    const missing: string[] = []
    for (const [hash, w] of want) {
      if (decoded.has(hash)) {
        if (w.newSide) nodes.set(hash, raw.get(hash)!)
        continue
      }
      // (A node an earlier slice fetched is checked again, not fetched again.)
      const bytes = nodes.get(hash) ?? (await source.local(hash))
      if (bytes) {
        decoded.set(hash, checkedNode(hash, bytes, w.top, w.where, source.held))
        raw.set(hash, bytes)
        if (w.newSide) nodes.set(hash, bytes)
      } else missing.push(hash)
    }
    if (missing.length === 0) return
    fetched.requests++
    const got = await source.fetch(missing)
    for (const hash of missing) {
      const bytes = got.get(hash)
      const w = want.get(hash)!
      if (!bytes) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `tree node ${hash.slice(0, 16)}… (${w.where}) was not sent`)
      decoded.set(hash, checkedNode(hash, bytes, w.top, w.where))
      raw.set(hash, bytes)
      nodes.set(hash, bytes)
      fetched.nodes++
      fetched.bytes += bytes.byteLength
    }
  }

  // A directory is one dir node or a dir-parts node over dir nodes; parts with the same hash on
  // both sides hold the same entries, so only the other parts are loaded and compared.
  const entriesOf = async (pairs: Pending[]): Promise<Map<Pending, { old: NodeEntry[]; new: NodeEntry[] }>> => {
    const want = new Map<string, { where: string; top: boolean; newSide: boolean }>()
    const ask = (hash: string | undefined, path: string, newSide: boolean): void => {
      if (!hash) return
      const prev = want.get(hash)
      if (!prev || (newSide && !prev.newSide)) want.set(hash, { where: path || '(top)', top: path === '', newSide })
    }
    for (const p of pairs) {
      ask(p.old, p.path, false)
      ask(p.new, p.path, true)
    }
    await load(want)
    // Second round: the parts of split directories, minus those both sides share.
    const partWant = new Map<string, { where: string; top: boolean; newSide: boolean }>()
    const partsOf = (hash: string | undefined): string[] => {
      const n = hash ? decoded.get(hash)! : undefined
      return n?.type === 'dirParts' ? n.parts.map((x) => x.node) : []
    }
    const shared = new Map<Pending, Set<string>>()
    for (const p of pairs) {
      const oldParts = new Set(partsOf(p.old))
      const newParts = partsOf(p.new)
      const both = new Set(newParts.filter((h) => oldParts.has(h)))
      shared.set(p, both)
      for (const h of oldParts) if (!both.has(h)) partWant.set(h, partWant.get(h) ?? { where: `${p.path || '(top)'}, a part`, top: p.path === '', newSide: false })
      for (const h of newParts) if (!both.has(h)) partWant.set(h, { where: `${p.path || '(top)'}, a part`, top: p.path === '', newSide: true })
    }
    await load(partWant)
    const out = new Map<Pending, { old: NodeEntry[]; new: NodeEntry[] }>()
    const flatten = (hash: string | undefined, skip: Set<string>, path: string): NodeEntry[] => {
      if (!hash) return []
      const n = decoded.get(hash)!
      if (n.type === 'dir') return n.entries
      if (n.type !== 'dirParts') throw notADirectory(hash, n.type, path || '(top)')
      const entries: NodeEntry[] = []
      for (const part of n.parts) {
        if (skip.has(part.node)) continue
        entries.push(...checkedPart(part, decoded.get(part.node)!, path || '(top)').entries)
      }
      return entries
    }
    for (const p of pairs) out.set(p, { old: flatten(p.old, shared.get(p)!, p.path), new: flatten(p.new, shared.get(p)!, p.path) })
    return out
  }

  let level: Pending[] = oldTop === newTop ? [] : [{ path: '', old: oldTop, new: newTop }]
  while (level.length > 0) {
    const next: Pending[] = []
    // A level is compared a slice at a time, whose nodes are dropped once compared (issue 13 item
    // 6): one file changed in each of 10 000 directories made the leaf level 20 000 nodes, two
    // million decoded entries held at once, the largest part of the update's memory.
    for (let from = 0; from < level.length; from += LEVEL_SLICE) {
      for (const [p, { old, new: now }] of await entriesOf(level.slice(from, from + LEVEL_SLICE))) {
        const olds = new Map(old.map((e) => [e.name, e]))
        for (const e of now) {
          const path = joinPath(p.path, e.name)
          const o = olds.get(e.name)
          olds.delete(e.name)
          if (o && sameContent(o, e)) continue
          if (o && o.kind === e.kind) {
            if (e.kind === 'dir') {
              if ((o as typeof e).mode !== e.mode) changes.push({ kind: 'changed', path, entry: walkedEntry(path, e), old: walkedEntry(path, o) })
              next.push({ path, old: (o as typeof e).node, new: e.node })
            } else changes.push({ kind: 'changed', path, entry: walkedEntry(path, e), old: walkedEntry(path, o) })
            continue
          }
          if (o) {
            changes.push({ kind: 'removed', path, old: walkedEntry(path, o) })
            if (o.kind === 'dir') next.push({ path, old: o.node })
          }
          changes.push({ kind: 'added', path, entry: walkedEntry(path, e) })
          if (e.kind === 'dir') next.push({ path, new: e.node })
        }
        for (const [, o] of olds) {
          const path = joinPath(p.path, o.name)
          changes.push({ kind: 'removed', path, old: walkedEntry(path, o) })
          if (o.kind === 'dir') next.push({ path, old: o.node })
        }
      }
      // A slice's nodes are not needed below it, nor by the next slice.
      decoded.clear()
      raw.clear()
    }
    level = next
  }
  // Parents before children; a path removed and added again (a file became a directory) keeps
  // the removal first, as the order it was found in.
  changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return { changes, nodes, fetched }
}
