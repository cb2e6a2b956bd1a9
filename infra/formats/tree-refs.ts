// What a format-2 release keeps alive in a store (issue 15: prune of format-2 objects): the nodes its
// tree reaches (dirs, dir parts, chunk lists), the whole-file blob of every file (a large file's
// chunks are ranges of it, docs/formats.md §1.7), the delta-index nodes it names and every delta
// object they list. Counted into one set per side of a prune (pruned revisions / kept ones); a
// node already in the set is not walked again, so the revisions of a product, which share most of
// their subtrees, cost about one tree plus their differences, not one tree each.
import { UpswarmError } from '../errors.ts'
import { decodeNode, nodeHash } from './tree-node.ts'

export interface ReleaseRefs {
  /** The release's top tree node. */
  tree: string
  /** Its delta-index nodes (the release's `deltas`). */
  deltas?: readonly string[] | undefined
  /** Its pack-list node (issue 13 item 4): the list and every pack it names are kept alive by it. */
  packs?: string | undefined
}

/**
 * Adds to `into` every object `release` references, reading nodes with `get` (each checked against
 * its hash). A node missing from the store is an error: what it references cannot be told, and a
 * prune must then delete nothing rather than guess.
 */
export async function addReleaseRefs(release: ReleaseRefs, get: (hash: string) => Promise<Uint8Array>, into: Set<string>, where: string): Promise<void> {
  const read = async (hash: string, top: boolean): Promise<ReturnType<typeof decodeNode>> => {
    let bytes: Uint8Array
    try {
      bytes = await get(hash)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_NOT_FOUND', `${where}: tree node ${hash.slice(0, 16)}… cannot be read (${(err as Error).message})`, { cause: err })
    }
    if (nodeHash(bytes) !== hash) throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `${where}: tree node ${hash.slice(0, 16)}… does not hash to its name`)
    return decodeNode(bytes, { top, where: `${where}, node ${hash.slice(0, 16)}…` })
  }
  const walk = async (hash: string, top: boolean): Promise<void> => {
    if (into.has(hash)) return
    into.add(hash)
    const node = await read(hash, top)
    switch (node.type) {
      case 'dir':
        for (const e of node.entries) {
          if (e.kind === 'dir') await walk(e.node, false)
          else if (e.kind === 'file') {
            into.add(e.sha256)
            if (e.content.tag === 2) await walk(e.content.list, false)
          }
        }
        return
      case 'dirParts':
        for (const p of node.parts) await walk(p.node, false)
        return
      case 'chunkList':
        // A level-1 list names level-0 lists; a level-0 list names chunks, which are ranges of the
        // file's blob, not objects of their own.
        if (node.level === 1) for (const c of node.chunks) await walk(c.sha256, false)
        return
      case 'deltaIndex':
        for (const d of node.deltas) into.add(d.delta)
        return
      case 'packList':
        for (const p of node.packs) into.add(p.pack)
        return
    }
  }
  await walk(release.tree, true)
  for (const index of release.deltas ?? []) await walk(index, false)
  if (release.packs) await walk(release.packs, false)
}
