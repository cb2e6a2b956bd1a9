// Reading a format-2 tree without walking all of it (issue 13 items 3 and 6: an update of 1% of
// 1 000 000 files must cost what the 1% costs). `TreeReader.lookup` finds the entries of a few
// paths by descending from the top through the directories on their way, one node per level
// (a split directory: only the part that can hold the name). `eachFile` visits the files of a
// tree but skips every node a previous visit saw, so the kept revisions of a history, which share
// all but their changed directories, are read as one tree plus their differences. Every node is
// checked against the hash its parent names before it is decoded (R-VERIFY).
import { checkedNode, checkedPart, notADirectory, walkedEntry, type WalkedEntry } from './tree-builder.ts'
import type { NodeEntry, TreeNode } from './tree-node.ts'

export type NodeGetter = (hash: string) => Promise<Uint8Array>

const joinPath = (dir: string, name: string): string => (dir ? `${dir}/${name}` : name)
const nameOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

export class TreeReader {
  private readonly get: NodeGetter
  /** Whether `get` gives only nodes a store checked (checkedNode's `held`). */
  private readonly held: boolean
  /** Decoded nodes by hash (the top directory's apart: its names are checked more strictly). */
  private readonly decoded = new Map<string, TreeNode>()

  constructor(get: NodeGetter, opts: { held?: boolean } = {}) {
    this.get = get
    this.held = !!opts.held
  }

  private async node(hash: string, top: boolean, where: string): Promise<TreeNode> {
    const key = top ? `top ${hash}` : hash
    const held = this.decoded.get(key)
    if (held) return held
    const node = checkedNode(hash, await this.get(hash), top, where, this.held)
    this.decoded.set(key, node)
    return node
  }

  /** The entry named `name` in the directory at node `hash`. */
  private async find(hash: string, top: boolean, where: string, name: string): Promise<NodeEntry | undefined> {
    const n = await this.node(hash, top, where)
    if (n.type === 'dir') return n.entries.find((e) => e.name === name)
    if (n.type !== 'dirParts') throw notADirectory(hash, n.type, where)
    // Parts are in name order: the one that can hold `name` is the last whose first name is not after it.
    let part: (typeof n.parts)[number] | undefined
    for (const p of n.parts) {
      if (nameOrder(p.firstName, name) > 0) break
      part = p
    }
    if (!part) return undefined
    const sub = checkedPart(part, await this.node(part.node, top, `${where}, part from ${part.firstName}`), where)
    return sub.entries.find((e) => e.name === name)
  }

  /** The entry at `path` in the tree whose top node is `top`, or undefined when the tree has none. */
  async lookup(top: string, path: string): Promise<WalkedEntry | undefined> {
    const names = path.split('/')
    let hash = top
    for (let i = 0; i < names.length; i++) {
      const where = i === 0 ? '(top)' : names.slice(0, i).join('/')
      const e = await this.find(hash, i === 0, where, names[i]!)
      if (!e) return undefined
      if (i === names.length - 1) return walkedEntry(path, e)
      if (e.kind !== 'dir') return undefined
      hash = e.node
    }
    return undefined
  }

  /**
   * Calls `visit` for every file of the tree at `top` that lies in a node not in `seen`, and adds
   * the nodes it read to `seen`. With one `seen` across calls, each node is read once.
   */
  async eachFile(top: string, seen: Set<string>, visit: (path: string, e: Extract<NodeEntry, { kind: 'file' }>) => void): Promise<void> {
    const dirs: { hash: string; path: string }[] = [{ hash: top, path: '' }]
    while (dirs.length > 0) {
      const { hash, path } = dirs.pop()!
      if (seen.has(hash)) continue
      seen.add(hash)
      const where = path || '(top)'
      // Read, used and dropped: a walk of a whole tree must not hold every node.
      const n = this.decoded.get(path === '' ? `top ${hash}` : hash) ?? checkedNode(hash, await this.get(hash), path === '', where, this.held)
      const lists: NodeEntry[][] = []
      if (n.type === 'dir') lists.push(n.entries)
      else if (n.type === 'dirParts') {
        for (const part of n.parts) {
          if (seen.has(part.node)) continue
          seen.add(part.node)
          lists.push(checkedPart(part, checkedNode(part.node, await this.get(part.node), path === '', `${where}, part from ${part.firstName}`, this.held), where).entries)
        }
      } else throw notADirectory(hash, n.type, where)
      for (const entries of lists) {
        for (const e of entries) {
          if (e.kind === 'file') visit(joinPath(path, e.name), e)
          else if (e.kind === 'dir') dirs.push({ hash: e.node, path: joinPath(path, e.name) })
        }
      }
    }
  }
}
