// The publisher's deltas (docs/formats.md §1.6 delta-index nodes, §1.7; issue 15 items 1, 3): for
// every file a release adds or changes, made while both revisions are at hand —
//   - a binary delta from the file at the same path in the previous format-2 release (codec 3,
//     infra/formats/delta.ts), when it is smaller than what follows;
//   - the file alone compressed with brotli (base = the zero hash), when that saves ≥ 10%.
// Each is an object of `upswarm-blobs` named by its SHA-256 (servers copy it like a blob, clients
// and peers fetch it by hash), listed in delta-index nodes that the release names in `deltas`. A
// client picks the cheapest one whose base it holds, else fetches the whole file; whatever it
// rebuilds is checked against the signed SHA-1 and SHA-256 (R-VERIFY).
import type { ObjectStore } from '@nats-io/obj'
import { readFile } from 'node:fs/promises'
import { UpswarmError } from '../../infra/errors.ts'
import { DELTA_MAX_BYTES, NO_BASE, UPSWARM_DELTA_CODEC, encodeDelta } from '../../infra/formats/delta.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { diffTrees } from '../../infra/formats/tree-diff.ts'
import { getNodeObject, uploadNodes } from '../../infra/formats/tree-objects.ts'
import { DELTA_INDEX_MAX, encodeNode, nodeHash, type DeltaRef } from '../../infra/formats/tree-node.ts'
import type { BuiltTree } from '../../infra/formats/tree-builder.ts'
import { withRetry } from '../../infra/nats/retry.ts'
import { readPackedUnits, uploadPacks, type PackIndex, type UnitSource } from '../../infra/formats/pack-objects.ts'
import { PACK_TARGET_BYTES, PACK_UNIT_MAX } from '../../infra/formats/pack.ts'
import type { PackRef } from '../../infra/formats/tree-node.ts'

/** Compression must save at least this fraction to be offered (else the raw file is as good). */
const MIN_SAVING = 0.1
/** Files smaller than this go whole: a delta's framing would eat what it saves. */
const MIN_FILE = 512
/**
 * A first release offers compressed copies of files from this size on only: it lists every file,
 * and an object per small file would cost its publish more (one object store round trip each)
 * than first installs gain.
 */
const MIN_FILE_FIRST = 16 * 1024
/** Probe for incompressible data: compressing this much first tells whether the rest is worth it. */
const PROBE = 64 * 1024

export interface DeltaSet {
  /** Delta-index node hashes for the release's `deltas`, sorted by first target. */
  indexes: string[]
  /** Delta objects listed (new or already stored). */
  deltas: number
  /** Their bytes, and the bytes of the targets they stand for. */
  deltaBytes: number
  targetBytes: number
  /** Objects uploaded by this publish. */
  uploaded: number
  /** The packs holding the deltas (with `packs` in the options). */
  packs?: PackRef[]
}

export interface DeltaOptions {
  os: ObjectStore
  /** The previous format-2 release's tree (the bases), if any. */
  previousTree: string | undefined
  tree: BuiltTree
  /** Path in the release → file on disk. */
  files: Map<string, string>
  onProgress?: (done: number, total: number) => void
  /**
   * Issue 13 item 4 (format 2 only): the previous release's packs. Bases are read from them when
   * they are not objects of their own, and the deltas go into new packs instead of one object each.
   */
  packs?: PackIndex
}

async function readObject(os: ObjectStore, sha256: string, size: number): Promise<Buffer | undefined> {
  const bytes = await withRetry(() => os.getBlob(sha256), { attempts: 10 })
  if (!bytes || bytes.length !== size || sha256Hex(bytes) !== sha256) return undefined
  return Buffer.from(bytes)
}

/** A delta as an object named by its SHA-256 (uploadNodes: only when the store lacks it). */
async function putObject(os: ObjectStore, bytes: Buffer): Promise<{ sha256: string; uploaded: boolean }> {
  const sha256 = sha256Hex(bytes)
  return { sha256, uploaded: (await uploadNodes(os, new Map([[sha256, bytes]]))).newNodes === 1 }
}

/** Whether brotli is worth running on the whole file (a 64 KiB probe of incompressible data says no). */
function compressible(target: Buffer): boolean {
  if (target.length <= PROBE) return true
  const probe = encodeDelta(undefined, target.subarray(0, PROBE))
  return probe.length < PROBE * (1 - MIN_SAVING)
}

/**
 * The deltas of a release over `previousTree`. A first release (no previous tree) has only
 * compressed copies, of its files of at least MIN_FILE_FIRST bytes: first installs are most of a
 * fleet's bytes (docs/decisions.md).
 */
export async function makeDeltas(opts: DeltaOptions): Promise<DeltaSet> {
  const { os, tree } = opts
  const diff = await diffTrees(opts.previousTree, tree.top, {
    local: (hash) => tree.nodes.get(hash),
    fetch: async (hashes) => new Map(await Promise.all(hashes.map(async (h) => [h, await getNodeObject(os, h)] as const))),
  })
  const refs = new Map<string, DeltaRef>()
  const out: DeltaSet = { indexes: [], deltas: 0, deltaBytes: 0, targetBytes: 0, uploaded: 0 }
  const min = opts.previousTree ? MIN_FILE : MIN_FILE_FIRST
  // Packed: deltas wait in memory and go out a pack at a time (PACK_TARGET_BYTES).
  const waiting: UnitSource[] = []
  let waitingBytes = 0
  const packRefs: PackRef[] = []
  const flush = async (): Promise<void> => {
    if (!waiting.length) return
    const put = await uploadPacks(os, waiting.splice(0))
    waitingBytes = 0
    packRefs.push(...put.refs)
    out.uploaded += put.newPacks
  }
  const store = async (bytes: Buffer): Promise<{ sha256: string; uploaded: boolean }> => {
    if (!opts.packs || bytes.length > PACK_UNIT_MAX) return putObject(os, bytes)
    const sha256 = sha256Hex(bytes)
    waiting.push({ sha256, length: bytes.length, what: `delta ${sha256}`, read: () => Promise.resolve(bytes) })
    waitingBytes += bytes.length
    if (waitingBytes >= PACK_TARGET_BYTES) await flush()
    return { sha256, uploaded: false }
  }
  // Bases the previous release packed: read from their packs, all at once, before the loop.
  const packedBases = opts.packs
    ? await readPackedUnits(os, opts.packs, diff.changes.flatMap((c) => (c.kind === 'changed' && c.old.kind === 'file' && c.entry.kind === 'file' && c.old.sha256 !== c.entry.sha256 && c.entry.size >= MIN_FILE ? [c.old.sha256] : [])))
    : new Map<string, Buffer>()
  const work = diff.changes.filter((c) => c.kind !== 'removed' && c.entry.kind === 'file' && c.entry.size >= min && c.entry.size <= DELTA_MAX_BYTES)
  let done = 0
  for (const c of work) {
    if (c.kind === 'removed' || c.entry.kind !== 'file') continue
    const e = c.entry
    const abs = opts.files.get(e.path)
    if (!abs) continue
    const target = await readFile(abs)
    if (target.length !== e.size || sha256Hex(target) !== e.sha256) {
      throw new UpswarmError('UPSWARM_E_PUBLISH', `${abs} changed while it was published (it no longer has the size and SHA-256 the scan found); publish again`)
    }
    const offer = async (base: string, bytes: Buffer): Promise<void> => {
      if (refs.has(`${e.sha256}:${base}`)) return
      const put = await store(bytes)
      refs.set(`${e.sha256}:${base}`, { target: e.sha256, base, delta: put.sha256, length: bytes.length, codec: UPSWARM_DELTA_CODEC })
      out.deltas++
      out.deltaBytes += bytes.length
      out.targetBytes += e.size
      if (put.uploaded) out.uploaded++
    }
    let best = e.size * (1 - MIN_SAVING)
    if (compressible(target)) {
      const z = encodeDelta(undefined, target)
      if (z.length < best) {
        await offer(NO_BASE, z)
        best = z.length
      }
    }
    const old = c.kind === 'changed' ? c.old : undefined
    if (old?.kind === 'file' && old.sha256 !== e.sha256 && old.size > 0 && old.size <= DELTA_MAX_BYTES) {
      const base = packedBases.get(old.sha256) ?? await readObject(os, old.sha256, old.size)
      if (base) {
        const d = encodeDelta(base, target)
        if (d.length < best) await offer(old.sha256, d)
      }
    }
    opts.onProgress?.(++done, work.length)
  }
  await flush()
  if (opts.packs) out.packs = packRefs
  // §1.6: sorted by target, then base; ≤ DELTA_INDEX_MAX entries per node, nodes in target order.
  const sorted = [...refs.values()].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : a.base < b.base ? -1 : a.base > b.base ? 1 : 0))
  const nodes = new Map<string, Buffer>()
  for (let i = 0; i < sorted.length; i += DELTA_INDEX_MAX) {
    const bytes = encodeNode({ type: 'deltaIndex', deltas: sorted.slice(i, i + DELTA_INDEX_MAX) })
    const hash = nodeHash(bytes)
    nodes.set(hash, bytes)
    out.indexes.push(hash)
  }
  if (out.indexes.length > 256) throw new UpswarmError('UPSWARM_E_PUBLISH', `${sorted.length} deltas need ${out.indexes.length} delta-index nodes; a release names at most 256`)
  await uploadNodes(os, nodes)
  return out
}
