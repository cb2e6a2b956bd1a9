// Format-2 tree nodes in the `upswarm-blobs` object store (docs/formats.md §1.8, §5 steps 4–5;
// issue 13 item 3): each node is an object named by its SHA-256, beside the whole-file blobs, so
// the publisher uploads only the nodes the store lacks and a reader walks a release's tree by hash.
// Units: a small file's unit is its whole-file blob (same name); a large file's chunks are ranges of
// its whole-file blob (§1.7, `request(fileSha256, offset, length)`), so nothing is stored twice.
import type { ObjectStore } from '@nats-io/obj'
import { Readable } from 'node:stream'
import { UpswarmError } from '../errors.ts'
import { withRetry } from '../nats/retry.ts'
import { FileHasher, PIECE_SIZE } from '../release/hash.ts'
import type { Entry } from '../release/manifest.ts'
import { NODE_MAX_BYTES, decodeNode, nodeHash } from './tree-node.ts'
import { walkTree, type WalkedEntry } from './tree-builder.ts'
import { eachLimited } from '../parallel.ts'

/** Node uploads in flight. */
const NODE_UPLOADS = 16

/** Uploads the nodes (or other objects named by their SHA-256: deltas) the store does not hold yet; returns how many (and bytes) were new. */
export async function uploadNodes(os: ObjectStore, nodes: ReadonlyMap<string, Uint8Array>, onDone?: (done: number) => void): Promise<{ newNodes: number; newBytes: number }> {
  let newNodes = 0
  let newBytes = 0
  let done = 0
  // Each node is two round trips (lookup, put) of a few milliseconds: many in flight (issue 13 item 4).
  await eachLimited([...nodes], NODE_UPLOADS, async ([hash, bytes]) => {
    const have = await withRetry(() => os.info(hash), { attempts: 30 })
    if (!have || have.deleted || have.size !== bytes.length) {
      await withRetry(() => os.putBlob({ name: hash }, bytes), { attempts: 10 })
      newNodes++
      newBytes += bytes.length
    }
    onDone?.(++done)
  })
  return { newNodes, newBytes }
}

/**
 * Runs `use` over the bytes of object `name` as a stream. When `signal` aborts, the stream fails
 * with `stopping`; the store's reader is released however `use` ends (also when it stops early).
 * UPSWARM_E_NOT_FOUND with `notFound` when the store lacks the object.
 */
export async function withObjectStream<T>(
  os: ObjectStore, name: string, notFound: string, use: (source: Readable) => Promise<T>, signal?: AbortSignal, stopping = 'the copy was stopped',
): Promise<T> {
  const obj = await os.get(name)
  if (!obj) throw new UpswarmError('UPSWARM_E_NOT_FOUND', notFound)
  const source = Readable.fromWeb(obj.data as never)
  // The read in progress fails with this error; once it is over nobody listens, so never let it escape.
  source.on('error', () => {})
  const stop = (): void => void source.destroy(new UpswarmError('UPSWARM_E_IO', stopping))
  signal?.addEventListener('abort', stop, { once: true })
  try {
    return await use(source)
  } finally {
    signal?.removeEventListener('abort', stop)
    source.destroy()
  }
}

/** A node from the object store, checked against its name (R-VERIFY). */
export async function getNodeObject(os: ObjectStore, hash: string): Promise<Uint8Array> {
  const bytes = await withRetry(() => os.getBlob(hash), { attempts: 10 })
  if (!bytes) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `tree node ${hash} is not in the object store`)
  if (bytes.length > NODE_MAX_BYTES) throw new UpswarmError('UPSWARM_E_MANIFEST', `object ${hash} is ${bytes.length} bytes: larger than any tree node (${NODE_MAX_BYTES})`)
  if (nodeHash(bytes) !== hash) throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `object ${hash} of the object store does not hash to its name`)
  return bytes
}

/**
 * What a release's tree reaches, each node checked against its hash: its entries and every node
 * (dirs, dir parts, chunk lists), fetched with `get` (the object store, a server's disk).
 */
export async function walkReachable(top: string, get: (hash: string) => Promise<Uint8Array>): Promise<{ entries: WalkedEntry[]; nodes: Map<string, Uint8Array> }> {
  const nodes = new Map<string, Uint8Array>()
  const fetch = async (hash: string): Promise<Uint8Array> => {
    const bytes = nodes.get(hash) ?? await get(hash)
    if (nodeHash(bytes) !== hash) throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `tree node ${hash.slice(0, 16)}… does not hash to its name: refusing it`)
    nodes.set(hash, bytes)
    return bytes
  }
  const entries = await walkTree(top, fetch)
  // Chunk lists are not directories: walkTree leaves them to whoever needs the chunks.
  const lists = (hash: string, where: string): Promise<void> => fetch(hash).then(async (bytes) => {
    const node = decodeNode(bytes, { where: `chunk list ${hash.slice(0, 16)}… of ${where}` })
    if (node.type !== 'chunkList') throw new UpswarmError('UPSWARM_E_MANIFEST', `tree node ${hash.slice(0, 16)}… of ${where} is a ${node.type} node, not a chunk list`)
    if (node.level === 1) for (const c of node.chunks) await lists(c.sha256, where)
  })
  for (const e of entries) if (e.kind === 'file' && e.content?.tag === 2) await lists(e.content.list, e.path)
  return { entries, nodes }
}

/** walkReachable from the object store. */
export function walkStoredTree(os: ObjectStore, top: string): Promise<{ entries: WalkedEntry[]; nodes: Map<string, Uint8Array> }> {
  return walkReachable(top, (hash) => getNodeObject(os, hash))
}

/**
 * The format-1 entries of a walked tree (docs/formats.md §2.2, gap repair): the walk's paths, modes
 * and hashes, plus the 1 MiB piece hashes format 1 needs, read from the whole-file blobs of the
 * files larger than one piece (the tree does not carry them).
 */
export async function format1Entries(os: ObjectStore, walked: readonly WalkedEntry[]): Promise<Entry[]> {
  const out: Entry[] = []
  for (const w of walked) {
    const { content: _content, ...e } = w
    if (e.kind !== 'file' || e.size <= PIECE_SIZE) {
      out.push(e)
      continue
    }
    const obj = await withRetry(() => os.get(e.sha256), { attempts: 10 })
    if (!obj) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `blob ${e.sha256} of ${e.path} is not in the object store`)
    const hasher = new FileHasher(PIECE_SIZE)
    const reader = obj.data.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      hasher.update(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
    }
    const h = hasher.digest()
    if (h.sha256 !== e.sha256 || h.size !== e.size) throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `blob ${e.sha256} of ${e.path} in the object store does not hash to its name`)
    out.push({ ...e, ...(h.pieces ? { pieces: h.pieces } : {}) })
  }
  return out
}
