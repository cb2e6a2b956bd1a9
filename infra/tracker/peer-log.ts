// The tracker registry's writes as they sit in the KV bucket `upswarm-peers` (issue 14 item 5).
// Each flush of an instance (once per second) is one or a few *batches*: a key
// `batch.<instance>.<seq>` whose value holds every peer key the instance changed since its last
// flush, each once with its newest value or as removed. A burst of 10 000 new peers is then ~3
// replicated stream writes instead of 10 000, which is what let the tracker keep up (with one
// write per peer, the cluster storing them took the tracker's core: 8 900 announces/s instead of
// 37 000 with the writes held back; docs/decisions.md, "The tracker writes its changes as
// batches").
//
// An instance deletes its batch once every record in it is past its end: a peer's record ends
// when the peer expires, a removal when every earlier record of the key has expired (its time
// plus the TTL). So the bucket holds about one TTL of an instance's batches; those of an instance
// that died stay until the bucket's max age and are read as expired.
//
// Keys written by an earlier version, one per peer (`<product>.<peerId>`, `ih.<hash>.<peerId>`),
// are still read. Info-hash mappings (`map.<hash>`) stay keys of their own: few, and longer-lived.
import { z } from 'zod'
import type { KV } from '@nats-io/kv'
import { storedPeerSchema } from './schema.ts'

/** The batch format version; a reader skips batches of a version it does not know. */
export const BATCH_FORMAT = 1
/** A batch's size bound: flushes larger than it are split (the cluster's max_payload is 8 MiB). */
export const BATCH_MAX_BYTES = 1024 * 1024
const PREFIX = 'batch.'

export const batchKey = (instance: string, seq: number): string => `${PREFIX}${instance}.${seq}`
/** A key filter for every batch of one instance. */
export const batchesOf = (instance: string): string => `${PREFIX}${instance}.>`
export const isBatchKey = (key: string): boolean => key.startsWith(PREFIX)
/** The instance that wrote a batch key. */
export const batchInstance = (key: string): string => key.slice(PREFIX.length, key.indexOf('.', PREFIX.length))

/** One change of a peer key: its new value, or its removal at time `removed`. */
export type PeerRecord = { key: string; peer: object } | { key: string; removed: number }

const recordSchema = z.union([
  z.object({ k: z.string().min(1).max(300), p: z.record(z.string(), z.unknown()) }),
  z.object({ k: z.string().min(1).max(300), d: z.number() }),
])
const batchSchema = z.object({ v: z.number().int(), r: z.array(z.unknown()) })

/** Encodes `records` as batches of at most BATCH_MAX_BYTES each (a record is never split). */
export function encodeBatches(records: Iterable<PeerRecord>): Buffer[] {
  const out: Buffer[] = []
  const head = `{"v":${BATCH_FORMAT},"r":[`
  let parts: string[] = []
  let bytes = head.length + 2
  const close = (): void => {
    if (parts.length > 0) out.push(Buffer.from(`${head}${parts.join(',')}]}`))
    parts = []
    bytes = head.length + 2
  }
  for (const r of records) {
    const json = 'peer' in r ? `{"k":${JSON.stringify(r.key)},"p":${JSON.stringify(r.peer)}}` : `{"k":${JSON.stringify(r.key)},"d":${r.removed}}`
    const size = Buffer.byteLength(json) + 1
    if (parts.length > 0 && bytes + size > BATCH_MAX_BYTES) close()
    parts.push(json)
    bytes += size
  }
  close()
  return out
}

/**
 * The records of one batch, in the order written; `undefined` for a batch that is not JSON, of
 * another format version, or not a batch at all. A malformed record is skipped, the rest kept.
 */
export function decodeBatch(bytes: Uint8Array): PeerRecord[] | undefined {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    return undefined
  }
  const batch = batchSchema.safeParse(value)
  if (!batch.success || batch.data.v !== BATCH_FORMAT) return undefined
  const out: PeerRecord[] = []
  for (const raw of batch.data.r) {
    const r = recordSchema.safeParse(raw)
    if (!r.success) continue
    out.push('p' in r.data ? { key: r.data.k, peer: r.data.p } : { key: r.data.k, removed: r.data.d })
  }
  return out
}

/**
 * The peers the bucket holds now, key → stored peer, as a fresh instance rebuilds them: batches
 * and the per-peer keys of earlier versions in stream order, the newest record of a key winning
 * (`at` against a removal's time), expired peers left out. For tests and operators' tools; the
 * registry itself applies the same records as the watch delivers them.
 */
export async function readBucketPeers(kv: KV, now = Date.now()): Promise<Map<string, z.infer<typeof storedPeerSchema>>> {
  const peers = new Map<string, z.infer<typeof storedPeerSchema>>()
  const removedAt = new Map<string, number>()
  const put = (key: string, value: unknown): void => {
    const p = storedPeerSchema.safeParse(value)
    if (!p.success) return
    const current = peers.get(key)
    if ((current && current.at >= p.data.at) || p.data.at <= (removedAt.get(key) ?? -1)) return
    peers.set(key, p.data)
  }
  const remove = (key: string, at: number): void => {
    const current = peers.get(key)
    if (current && current.at <= at) peers.delete(key)
    removedAt.set(key, Math.max(at, removedAt.get(key) ?? -1))
  }
  const status = await kv.status()
  if (status.values === 0) return peers
  const watch = await kv.watch({ key: '>' })
  for await (const e of watch) {
    if (e.key.startsWith('map.')) {
      // the reverse index, not a peer
    } else if (isBatchKey(e.key)) {
      if (e.operation === 'PUT') {
        for (const r of decodeBatch(e.value) ?? []) {
          if ('peer' in r) put(r.key, r.peer)
          else remove(r.key, r.removed)
        }
      }
    } else if (e.operation === 'PUT') {
      let value: unknown
      try {
        value = e.json()
      } catch {
        value = undefined
      }
      put(e.key, value)
    } else remove(e.key, e.created.getTime())
    if (e.delta === 0) break
  }
  watch.stop()
  for (const [key, p] of peers) if (p.expires <= now) peers.delete(key)
  return peers
}
