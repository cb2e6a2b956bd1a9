// Chunk reuse (issue 15 item 1; docs/formats.md §1.7): a format-2 file larger than the chunker's
// `whole` is listed as content-defined chunks (inline, or in chunk-list nodes). The updater cuts
// the copy's own version of the file with the same chunker; every chunk it already holds is copied
// from there, and only the others are fetched, as ranges of the new file's blob, each checked
// against its chunk hash on arrival. It works from ANY installed revision (no delta chain needed),
// and for files too large for publish-time deltas. The file made is checked whole against the
// signed SHA-1 and SHA-256 before it is kept (R-VERIFY).
import { open } from 'node:fs/promises'
import { chunkFile, type ChunkerParams } from '../../infra/formats/fastcdc.ts'
import { checkedNode, walkTree } from '../../infra/formats/tree-builder.ts'
import type { ChunkRef, FileContent } from '../../infra/formats/tree-node.ts'
import { UpswarmError } from '../../infra/errors.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import type { RunSession } from './run-session.ts'
import { writeAll } from '../../infra/store/durable.ts'

/** The target release's revision, top tree node and chunker (from its signed release document). */
export interface ChunkTarget { rev: number; tree: string; chunker: ChunkerParams }

/** Where a chunk this copy holds lies. */
interface LocalChunk { file: string; offset: number }

export interface ChunkPlan {
  chunks: ChunkRef[]
  /** Chunk SHA-256 → where this copy holds it. */
  local: Map<string, LocalChunk>
  /** Bytes to fetch: the chunks not held. */
  missing: number
  /** Chunks to fetch. */
  fetches: number
}

export class ChunkReuse {
  private contents: Promise<Map<string, FileContent>> | undefined
  private changed: Map<string, FileContent> | undefined

  /**
   * How the target tree addresses the bytes of content `sha256` (its entry's `content`), from the
   * tree's held nodes; undefined for content the target revision does not have (e.g. an older
   * revision's file the history store keeps).
   */
  private async contentOf(session: RunSession, sha256: string, tree: string): Promise<FileContent | undefined> {
    // The run's tree diff names each changed file with its content: no walk of the whole tree for
    // them (issue 15 item 4: the walk was a tenth of a small update's run). Same bytes, same chunks.
    this.changed ??= new Map((session.changes ?? []).flatMap((c) => (c.kind !== 'removed' && c.entry.kind === 'file' && c.entry.content ? [[c.entry.sha256, c.entry.content] as const] : [])))
    const changed = this.changed.get(sha256)
    if (changed) return changed.tag !== 0 ? changed : undefined
    this.contents ??= (async () => {
      const out = new Map<string, FileContent>()
      const get = async (h: string): Promise<Uint8Array> => (await session.wc.trees.node(h)) ?? session.releases2.fetchOne(h)
      for (const e of await walkTree(tree, get)) if (e.kind === 'file' && e.content && e.content.tag !== 0) out.set(e.sha256, e.content)
      return out
    })()
    return (await this.contents).get(sha256)
  }

  /** The chunks of a file entry's content, chunk-list nodes read locally or fetched (each checked against its name). */
  private async chunksOf(session: RunSession, content: FileContent, where: string): Promise<ChunkRef[]> {
    if (content.tag === 1) return content.chunks
    if (content.tag !== 2) return []
    const node = async (h: string): Promise<ChunkRef[] & { level?: number }> => {
      const bytes = (await session.wc.trees.node(h)) ?? (await session.releases2.fetchOne(h))
      const n = checkedNode(h, bytes, false, `chunk list of ${where}`)
      if (n.type !== 'chunkList') throw new UpswarmError('UPSWARM_E_MANIFEST', `${where}: node ${h.slice(0, 16)}… is a ${n.type} node, not a chunk list`)
      return Object.assign(n.chunks, { level: n.level })
    }
    const top = await node(content.list)
    if (top.level === 0) return top
    const out: ChunkRef[] = []
    for (const l of top) {
      const sub = await node(l.sha256)
      if (sub.level !== 0) throw new UpswarmError('UPSWARM_E_MANIFEST', `${where}: a level-1 chunk list names another level-1 list`)
      out.push(...sub)
    }
    return out
  }

  /** The chunks of `entry`'s content in the target tree; undefined when it is not chunked there. */
  async listOf(session: RunSession, entry: { path: string; sha256: string }, target: ChunkTarget): Promise<ChunkRef[] | undefined> {
    const content = await this.contentOf(session, entry.sha256, target.tree)
    return content ? this.chunksOf(session, content, `${entry.path} of r${target.rev}`) : undefined
  }

  /**
   * What fetching `path` by chunks would cost, reusing the chunks of `bases` (files this copy holds
   * that may share content: the installed version of the same path); undefined when the target is
   * not chunked or nothing can be reused.
   */
  async plan(session: RunSession, entry: { path: string; sha256: string }, target: ChunkTarget, bases: string[]): Promise<ChunkPlan | undefined> {
    const { rev, tree, chunker } = target
    if (bases.length === 0) return undefined
    const content = await this.contentOf(session, entry.sha256, tree)
    if (!content) return undefined
    const chunks = await this.chunksOf(session, content, `${entry.path} of r${rev}`)
    if (chunks.length < 2) return undefined
    const local = new Map<string, LocalChunk>()
    for (const file of bases) {
      const cut = await chunkFile(file, chunker).catch(() => undefined)
      let offset = 0
      for (const c of cut?.chunks ?? []) {
        if (!local.has(c.sha256)) local.set(c.sha256, { file, offset })
        offset += c.length
      }
    }
    let missing = 0
    let fetches = 0
    let reused = 0
    for (const c of chunks) {
      if (local.has(c.sha256)) reused++
      else {
        missing += c.length
        fetches++
      }
    }
    return reused === 0 ? undefined : { chunks, local, missing, fetches }
  }

  /**
   * Writes the file into `out` in order: held chunks copied from their file (checked against
   * their hash too: a base may change under the run), the others fetched with `range` and checked.
   * Returns the bytes fetched.
   */
  async write(plan: ChunkPlan, out: string, range: (offset: number, length: number, sha256: string) => Promise<Uint8Array>, signal: AbortSignal, digest?: (bytes: Uint8Array) => void): Promise<number> {
    const fh = await open(out, 'w')
    const handles = new Map<string, Awaited<ReturnType<typeof open>>>()
    let at = 0
    let fetched = 0
    try {
      for (const c of plan.chunks) {
        signal.throwIfAborted()
        const held = plan.local.get(c.sha256)
        let bytes: Uint8Array | undefined
        if (held) {
          let h = handles.get(held.file)
          if (!h) handles.set(held.file, (h = await open(held.file, 'r')))
          const buf = Buffer.allocUnsafe(c.length)
          const { bytesRead } = await h.read(buf, 0, c.length, held.offset)
          if (bytesRead === c.length && sha256Hex(buf) === c.sha256) bytes = buf
        }
        if (!bytes) {
          bytes = await range(at, c.length, c.sha256)
          fetched += bytes.length
        }
        digest?.(bytes)
        await writeAll(fh, bytes)
        at += c.length
      }
    } finally {
      await fh.close()
      for (const h of handles.values()) await h.close()
    }
    return fetched
  }
}
