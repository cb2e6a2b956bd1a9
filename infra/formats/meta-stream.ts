// Roots and fresh statements on JetStream (issue 10 item 7; docs/formats.md §1.8): every root
// version on `upswarm.meta.root` of UPSWARM_META, kept forever; the newest fresh statement per
// product on `upswarm.fresh.<product>` of UPSWARM_FRESH. Whatever else lands on the root subject
// is skipped and reported, never believed and never fatal.
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, errorMessage } from '../errors.ts'
import { jetStreamOptionsOf } from '../nats/identity.ts'
import { FRESH_STREAM, META_STREAM, ROOT_SUBJECT, freshSubject } from '../nats/names.ts'
import { FRESH_MAX_BYTES } from './fresh.ts'
import { parseEnvelope } from './envelope.ts'
import { parseRoot, verifyNextRoot, verifyPinnedRoot, type SignedRoot } from './root.ts'
import { UUID_RE } from '../release/manifest.ts'

export interface StoredRoot {
  seq: number
  text: string
  signed: SignedRoot
}

/** A message on the root subject that is not a root, or not the chain's next link. */
export interface SkippedRoot {
  seq: number
  reason: string
}

export interface RootScan {
  /** Every message that parses as a root, in stream order. */
  roots: StoredRoot[]
  skipped: SkippedRoot[]
  /** Sequence of the subject's last message, whatever it holds: what the next append expects. */
  lastSeq: number
}

export type Query = { seq: number; next_by_subj: string } | { last_by_subj: string }

/** null for "no such message", whichever way the client says it. */
export async function getMsg(jsm: JetStreamManager, stream: string, query: Query, leader: boolean): ReturnType<JetStreamManager['direct']['getMessage']> {
  try {
    // Appends read through the stream's leader (a replica may lag); readers take any replica.
    return leader ? await jsm.streams.getMessage(stream, query as never) : await jsm.direct.getMessage(stream, query)
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null
    throw err
  }
}

/** Walks the root subject message by message (a handful of roots in a fleet's life). */
async function scanRoots(nc: NatsConnection, leader: boolean): Promise<RootScan> {
  const jsm = await jetstreamManager(nc, { checkAPI: false, ...jetStreamOptionsOf(nc) })
  const roots: StoredRoot[] = []
  const skipped: SkippedRoot[] = []
  let seq = 0
  for (;;) {
    const msg = await getMsg(jsm, META_STREAM, { seq: seq + 1, next_by_subj: ROOT_SUBJECT }, leader)
    if (!msg || msg.seq <= seq) break
    seq = msg.seq
    const text = Buffer.from(msg.data).toString('utf8')
    try {
      roots.push({ seq, text, signed: parseRoot(text, `${META_STREAM} seq ${seq}`) })
    } catch (err) {
      skipped.push({ seq, reason: errorMessage(err) })
    }
  }
  return { roots, skipped, lastSeq: seq }
}

/**
 * The chain the stream holds: from its first root that verifies under its own keys, each next
 * version signed by the old and the new root keys. Off-chain roots are skipped and reported.
 */
export function chainOf(scan: RootScan): { chain: StoredRoot[]; skipped: SkippedRoot[] } {
  const chain: StoredRoot[] = []
  const skipped = [...scan.skipped]
  for (const r of scan.roots) {
    const where = `${META_STREAM} seq ${r.seq}`
    try {
      const tip = chain.at(-1)
      if (tip) verifyNextRoot(tip.signed.root, r.signed, where)
      else verifyPinnedRoot(r.signed, where)
      chain.push(r)
    } catch (err) {
      skipped.push({ seq: r.seq, reason: errorMessage(err) })
    }
  }
  return { chain, skipped: skipped.sort((a, b) => a.seq - b.seq) }
}

/**
 * The root documents on the stream with a version ≥ `fromVersion`, as received (text), in stream
 * order. The reader verifies them against what it trusts (TrustStore.acceptRoots).
 */
export async function readRoots(nc: NatsConnection, fromVersion: number, onSkip?: (s: SkippedRoot) => void): Promise<string[]> {
  const scan = await scanRoots(nc, false)
  for (const s of scan.skipped) onSkip?.(s)
  return scan.roots.filter((r) => r.signed.root.version >= fromVersion).map((r) => r.text)
}

/**
 * Appends a root (`upswarm root push`, `up`): it must be the next version of the stream's
 * newest valid root, signed by a threshold of the old and of its own root keys (or, on an empty
 * stream, by its own). Published with the subject's expected last sequence, so two writers never
 * interleave: the loser is refused and told to look again.
 */
export async function appendRoot(nc: NatsConnection, text: string, where = 'the root to push'): Promise<{ seq: number; version: number }> {
  const next = parseRoot(text, where)
  const scan = await scanRoots(nc, true)
  const tip = chainOf(scan).chain.at(-1)
  if (tip) verifyNextRoot(tip.signed.root, next, where)
  else verifyPinnedRoot(next, where)
  try {
    const ack = await jetstream(nc).publish(ROOT_SUBJECT, text, { expect: { lastSubjectSequence: scan.lastSeq } })
    return { seq: ack.seq, version: next.root.version }
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) {
      throw new UpswarmError('UPSWARM_E_CONFLICT', `another root was appended to ${ROOT_SUBJECT} while root version ${next.root.version} was checked; read the stream again (upswarm root show) and edit from its newest root`, { cause: err })
    }
    throw err
  }
}

/** The newest valid root on the stream, or undefined when it holds none. */
export async function newestRoot(nc: NatsConnection): Promise<StoredRoot | undefined> {
  return chainOf(await scanRoots(nc, false)).chain.at(-1)
}

/** The newest fresh statement of a product, as received; undefined when there is none. */
export async function readFresh(nc: NatsConnection, product: string): Promise<string | undefined> {
  const jsm = await jetstreamManager(nc, { checkAPI: false, ...jetStreamOptionsOf(nc) })
  const msg = await getMsg(jsm, FRESH_STREAM, { last_by_subj: freshSubject(product) }, false)
  return msg ? Buffer.from(msg.data).toString('utf8') : undefined
}

/** Publishes a fresh statement on its product's subject (the notary). Its signature is the reader's to check. */
export async function appendFresh(nc: NatsConnection, text: string): Promise<{ seq: number; product: string }> {
  const env = parseEnvelope(text, 'fresh', 'the fresh statement to append', FRESH_MAX_BYTES, [])
  const product = env.signed.product
  if (typeof product !== 'string' || !UUID_RE.test(product)) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `the fresh statement to append names no product (${JSON.stringify(product)})`)
  }
  const ack = await jetstream(nc).publish(freshSubject(product), text)
  return { seq: ack.seq, product }
}
