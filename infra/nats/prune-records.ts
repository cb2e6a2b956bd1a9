// Issue 11 item 8: the operators' prune records (PRUNE_STREAM, docs/ops.md). A product's newest
// record says that the file contents of its revisions 1 … `through` are gone from the servers;
// `through` only grows. Only the admin (operator) identity appends; servers read.
import { createHash } from 'node:crypto'
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import { UUID_RE } from '../release/manifest.ts'
import { PRUNE_STREAM, pruneSubject } from './names.ts'

export const PruneRecordSchema = z.object({
  format: z.literal(1),
  product: z.string().regex(UUID_RE),
  /** Revisions 1 … through have no file contents on the servers any more. */
  through: z.number().int().min(1),
  /** The product's newest revision when it was pruned. */
  newest: z.number().int().min(1),
  /** What the operator asked: keep the newest N, or everything before a revision. */
  keep: z.number().int().min(1).optional(),
  before: z.number().int().min(2).optional(),
  /** ISO 8601, and the identity that pruned. */
  at: z.string().max(64),
  by: z.string().max(128),
  /** Blobs removed from the object store by this prune, and their bytes. */
  blobs: z.number().int().min(0),
  bytes: z.number().int().min(0),
})
export type PruneRecord = z.infer<typeof PruneRecordSchema>

/** Revisions 1 … through, as people read them. */
export const prunedRange = (through: number): string => (through === 1 ? 'r1' : `r1 … r${through}`)

export interface StoredPruneRecord {
  seq: number
  record: PruneRecord
}

function parse(data: Uint8Array, seq: number): PruneRecord {
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(data).toString('utf8'))
  } catch {
    json = undefined
  }
  const r = PruneRecordSchema.safeParse(json)
  if (!r.success) throw new UpswarmError('UPSWARM_E_MANIFEST', `${PRUNE_STREAM} seq ${seq} is not a prune record: ${r.error.issues.slice(0, 2).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  return r.data
}

const notFound = (err: unknown): boolean => err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.NoMessageFound)

/** The product's newest prune record, or null when it was never pruned. */
export async function readPruneRecord(nc: NatsConnection, product: string): Promise<StoredPruneRecord | null> {
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  const msg = await jsm.streams.getMessage(PRUNE_STREAM, { last_by_subj: pruneSubject(product) }).catch((err: unknown) => {
    if (notFound(err)) return null
    throw err
  })
  return msg ? { seq: msg.seq, record: parse(msg.data, msg.seq) } : null
}

/**
 * Every product's newest record, if the stream moved past `afterSeq` (null: nothing new). A
 * stream that does not exist (a cluster from before prune) holds none.
 */
export async function readPruneRecords(nc: NatsConnection, afterSeq = 0): Promise<{ lastSeq: number; records: Map<string, StoredPruneRecord> } | null> {
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  const info = await jsm.streams.info(PRUNE_STREAM, { subjects_filter: pruneSubject('*') }).catch((err: unknown) => {
    if (notFound(err)) return null
    throw err
  })
  if (!info || info.state.last_seq <= afterSeq) return null
  const records = new Map<string, StoredPruneRecord>()
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const msg = await jsm.streams.getMessage(PRUNE_STREAM, { last_by_subj: subject })
    if (!msg) continue
    const record = parse(msg.data, msg.seq)
    if (pruneSubject(record.product) === subject) records.set(record.product, { seq: msg.seq, record })
  }
  return { lastSeq: info.state.last_seq, records }
}

/** Appends a record, provided the product's newest is still `expectSeq` (0: none). */
export async function appendPruneRecord(nc: NatsConnection, record: PruneRecord, expectSeq: number): Promise<number> {
  const body = JSON.stringify(PruneRecordSchema.parse(record))
  // The message id dedups a retry of these bytes whose first ack was lost.
  const ack = await jetstream(nc).publish(pruneSubject(record.product), body, {
    msgID: createHash('sha256').update(body).digest('hex'), expect: { lastSubjectSequence: expectSeq }, timeout: 5000,
  })
  return ack.seq
}
