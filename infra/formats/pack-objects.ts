// Packs in the `upswarm-blobs` object store (docs/formats.md §1.9; issue 13 item 4): the
// publisher's side. One object per small file cost a publish a lookup and a put each (~450 puts/s
// here whatever the concurrency, and the lookups' "not found" errors on top); a pack of thousands
// of units is one put. What a release names is a pack-list node (type 4) of the packs holding its
// small units: the packs the previous release listed that still hold one of this release's units,
// and the new ones.
import type { ObjectStore } from '@nats-io/obj'
import { UpswarmError } from '../errors.ts'
import { withRetry } from '../nats/retry.ts'
import { groupsOf } from '../batches.ts'
import { sha256Hex } from '../release/hash.ts'
import { PACK_MAX_UNITS, PACK_TARGET_BYTES, PackReader, packHeader, type PackUnit } from './pack.ts'
import { encodeNode, decodeNode, nodeHash, PACK_LIST_MAX, type PackRef } from './tree-node.ts'
import { getNodeObject, withObjectStream } from './tree-objects.ts'
import { eachLimited } from '../parallel.ts'

/** Packs uploaded at once: each streams its chunks one acknowledged publish after the other. */
const PACK_UPLOADS = 3
/** Object store chunks of a pack: 1 MiB messages rather than the default 128 KiB (fewer messages to replicate and ack). */
const PACK_CHUNK_BYTES = 1024 * 1024

/** A unit to pack: its name, length and how to read its bytes (checked against both when read). */
export interface UnitSource extends PackUnit {
  read: () => Promise<Buffer>
  /** Named in the error when what is read is not what was announced. */
  what: string
}

/** Which pack holds each unit, from the headers of the packs a pack-list node names. */
export interface PackIndex {
  refs: Map<string, PackRef>
  unitPack: Map<string, string>
}

/** The packs a pack-list node names (checked against its hash). */
export async function readPackList(os: ObjectStore, hash: string): Promise<PackRef[]> {
  const node = decodeNode(await getNodeObject(os, hash), { where: `pack list ${hash.slice(0, 16)}…` })
  if (node.type !== 'packList') throw new UpswarmError('UPSWARM_E_MANIFEST', `node ${hash.slice(0, 16)}… is a ${node.type} node, not a pack list`)
  return node.packs
}

/** Streams a pack from the object store through a PackReader; `headerOnly` stops once the index is in. */
async function streamPack(os: ObjectStore, pack: string, reader: PackReader, headerOnly: boolean): Promise<void> {
  await withRetry(() => withObjectStream(os, pack, `pack ${pack} is not in the object store`, async (source) => {
    for await (const chunk of source) {
      await reader.push(chunk as Buffer)
      if (headerOnly && reader.headerDone) return
    }
    await reader.end()
  }), { attempts: 5, retryable: (err) => !(err instanceof UpswarmError) })
}

/** The unit index of the packs `hash` lists: one partial read per pack (its header). */
export async function readPackIndex(os: ObjectStore, hash: string | undefined): Promise<PackIndex> {
  const index: PackIndex = { refs: new Map(), unitPack: new Map() }
  if (!hash) return index
  for (const ref of await readPackList(os, hash)) {
    const reader = new PackReader(ref.pack, 'the object store')
    await streamPack(os, ref.pack, reader, true)
    index.refs.set(ref.pack, ref)
    for (const u of reader.units!) index.unitPack.set(u.sha256, ref.pack)
  }
  return index
}

/** Units out of the packs that hold them (each pack read once, every unit verified), e.g. a delta's base. */
export async function readPackedUnits(os: ObjectStore, index: PackIndex, wanted: Iterable<string>): Promise<Map<string, Buffer>> {
  const byPack = new Map<string, Set<string>>()
  for (const sha of wanted) {
    const pack = index.unitPack.get(sha)
    if (pack) byPack.set(pack, (byPack.get(pack) ?? new Set()).add(sha))
  }
  const out = new Map<string, Buffer>()
  for (const [pack, shas] of byPack) {
    const reader = new PackReader(pack, 'the object store', (u, bytes) => {
      if (shas.has(u.sha256)) out.set(u.sha256, Buffer.from(bytes))
    })
    await streamPack(os, pack, reader, false)
  }
  return out
}

/**
 * Uploads `units` as packs of about PACK_TARGET_BYTES (sorted by hash, so the same units make the
 * same packs and a publish run again skips the packs it stored before). Each unit is read while its
 * pack streams, a few ahead, and checked against its length and hash.
 */
export async function uploadPacks(os: ObjectStore, units: readonly UnitSource[], onDone?: (units: number, bytes: number) => void): Promise<{ refs: PackRef[]; newPacks: number; newBytes: number }> {
  const sorted = [...new Map(units.map((u) => [u.sha256, u])).values()].sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0))
  const groups = groupsOf(sorted, (u) => u.length, PACK_TARGET_BYTES, PACK_MAX_UNITS)
  const refs: PackRef[] = []
  let newPacks = 0
  let newBytes = 0
  let unitsDone = 0
  let bytesDone = 0
  await eachLimited(groups, PACK_UPLOADS, async (g) => {
    const header = packHeader(g)
    refs.push({ pack: header.id, bytes: header.bytesTotal, units: g.length })
    const have = await withRetry(() => os.info(header.id), { attempts: 30 })
    if (!have || have.deleted || have.size !== header.bytesTotal) {
      await withRetry(async () => {
        const info = await os.put({ name: header.id, options: { max_chunk_size: PACK_CHUNK_BYTES } }, packStream(header.bytes, g) /* g is sorted and unique: the header's order */)
        if (info.size !== header.bytesTotal) throw new UpswarmError('UPSWARM_E_PUBLISH', `pack ${header.id} stored ${info.size} bytes, expected ${header.bytesTotal}`)
      }, { attempts: 10, retryable: (err) => !(err instanceof UpswarmError) })
      newPacks++
      newBytes += header.bytesTotal
    }
    unitsDone += g.length
    bytesDone += header.bytesTotal
    onDone?.(unitsDone, bytesDone)
  })
  return { refs, newPacks, newBytes }
}

/** A pack's bytes as a web stream: the header, then each unit as read (READ_AHEAD reads in flight). */
function packStream(header: Buffer, units: UnitSource[]): ReadableStream<Uint8Array> {
  const READ_AHEAD = 16
  const pending: Promise<Buffer>[] = []
  let issued = 0
  const issue = (): void => {
    while (issued < units.length && pending.length < READ_AHEAD) {
      const u = units[issued++]!
      const p = u.read().then((b) => {
        if (b.length !== u.length || sha256Hex(b) !== u.sha256) throw new UpswarmError('UPSWARM_E_PUBLISH', `${u.what} changed while it was published (it no longer has the size and SHA-256 the scan found); publish again`)
        return b
      })
      p.catch(() => {}) // read in turn below; a failure ahead of its turn must not go unhandled meanwhile
      pending.push(p)
    }
  }
  let sentHeader = false
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sentHeader) {
        sentHeader = true
        controller.enqueue(header)
        issue()
        return
      }
      const p = pending.shift()
      if (!p) {
        controller.close()
        return
      }
      const b = await p
      issue()
      controller.enqueue(b)
    },
  })
}

/** The pack-list node of `refs` (sorted, each once) and its hash; several packs lists would need levels: refused past PACK_LIST_MAX. */
export function packListNode(refs: Iterable<PackRef>): { hash: string; bytes: Buffer } | undefined {
  const sorted = [...new Map([...refs].map((r) => [r.pack, r])).values()].sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : 0))
  if (sorted.length === 0) return undefined
  if (sorted.length > PACK_LIST_MAX) throw new UpswarmError('UPSWARM_E_PUBLISH', `a release's units are in ${sorted.length} packs; a pack list names at most ${PACK_LIST_MAX}`)
  const bytes = encodeNode({ type: 'packList', packs: sorted })
  return { hash: nodeHash(bytes), bytes }
}
