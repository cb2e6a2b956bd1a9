// Rollout statements on JetStream (issue 16 item 1; docs/formats.md §1.5, §1.8): every statement of
// a product on `upswarm.meta.<product>.rollout` of UPSWARM_META, kept forever, appended by the
// publisher under optimistic concurrency (expected last subject sequence), so two writers never
// both take the next `seq`. Readers verify each statement under the root they hold; whatever else
// lands on the subject is skipped and reported, never believed and never fatal.
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { UpswarmError, errorMessage } from '../errors.ts'
import { jetStreamOptionsOf } from '../nats/identity.ts'
import { META_STREAM, RELEASE_STREAM, releaseSubject, rolloutSubject, signedRolloutSubject } from '../nats/names.ts'
import { SignedReleaseSchema, manifestSha256 } from '../release/manifest.ts'
import { getMsg } from './meta-stream.ts'
import type { Root } from './root.ts'
import { verifyRollout, type Rollout } from './rollout.ts'

export interface StoredRollout {
  /** Stream sequence. */
  streamSeq: number
  text: string
  rollout: Rollout
}

export interface RolloutScan {
  /** Statements that verify under the root, in stream order. */
  statements: StoredRollout[]
  skipped: { streamSeq: number; reason: string }[]
  /** Stream sequence of the subject's last message, whatever it holds: what the next append expects. */
  lastSeq: number
}

/** Verifies one statement of `product` under `root`; throws what is wrong with it. */
export function verifyProductRollout(text: string, root: Root, product: string, where: string): Rollout {
  const { rollout } = verifyRollout(text, root, where)
  if (rollout.product !== product) throw new UpswarmError('UPSWARM_E_SIGNATURE', `${where} is a rollout statement of product ${rollout.product}, not of ${product}`)
  return rollout
}

/** Every statement of a product, message by message (`leader`: read by the stream's leader, for an append). */
export async function readRollouts(nc: NatsConnection, product: string, root: Root, leader = false): Promise<RolloutScan> {
  const jsm = await jetstreamManager(nc, { checkAPI: false, ...jetStreamOptionsOf(nc) })
  const subject = rolloutSubject(product)
  const statements: StoredRollout[] = []
  const skipped: RolloutScan['skipped'] = []
  let seq = 0
  for (;;) {
    const msg = await getMsg(jsm, META_STREAM, { seq: seq + 1, next_by_subj: subject }, leader)
    if (!msg || msg.seq <= seq) break
    seq = msg.seq
    const text = Buffer.from(msg.data).toString('utf8')
    try {
      statements.push({ streamSeq: seq, text, rollout: verifyProductRollout(text, root, product, `${META_STREAM} seq ${seq}`) })
    } catch (err) {
      skipped.push({ streamSeq: seq, reason: errorMessage(err) })
    }
  }
  return { statements, skipped, lastSeq: seq }
}

/**
 * Appends a signed statement, expecting the subject's last sequence to be `expectLastSeq`: a
 * statement appended meanwhile by someone else makes this one refused (UPSWARM_E_CONFLICT).
 */
export async function appendRollout(nc: NatsConnection, product: string, bytes: Uint8Array, expectLastSeq: number): Promise<number> {
  try {
    const ack = await jetstream(nc).publish(rolloutSubject(product), bytes, { expect: { lastSubjectSequence: expectLastSeq } })
    return ack.seq
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) {
      throw new UpswarmError('UPSWARM_E_CONFLICT', `another rollout statement of ${product} was appended to ${rolloutSubject(product)} meanwhile; run the command again (it reads the newest statement first)`, { cause: err })
    }
    throw err
  }
}

/**
 * The manifest SHA-256 of revision `rev` of a product, from the release stream (what a format-1
 * release's rollout statement names in `release`); undefined when the stream has no such revision.
 */
export async function releaseHashOf(nc: NatsConnection, product: string, rev: number): Promise<string | undefined> {
  const jsm = await jetstreamManager(nc, { checkAPI: false, ...jetStreamOptionsOf(nc) })
  let seq = 0
  for (;;) {
    const msg = await getMsg(jsm, RELEASE_STREAM, { seq: seq + 1, next_by_subj: releaseSubject(product) }, true)
    if (!msg || msg.seq <= seq) return undefined
    seq = msg.seq
    let body: unknown
    try {
      body = msg.json()
    } catch {
      continue
    }
    const parsed = SignedReleaseSchema.safeParse(body)
    if (parsed.success && parsed.data.manifest.product === product && parsed.data.manifest.rev === rev) return manifestSha256(parsed.data.manifest)
  }
}

/**
 * Follows new statements of a product as the stream republishes them (raw text; the caller
 * verifies). Only what the stream stored on the product's rollout subject is passed on, as for
 * release documents (followReleases2): a message made to look republished carries no such
 * `Nats-Subject`.
 */
export function followRollouts(nc: NatsConnection, product: string, onStatement: (text: string, streamSeq: number) => void): Subscription {
  const stored = rolloutSubject(product)
  return nc.subscribe(signedRolloutSubject(product), {
    callback: (err, msg) => {
      if (err || msg.headers?.get('Nats-Subject') !== stored) return
      onStatement(msg.string(), Number(msg.headers.get('Nats-Sequence') ?? 0))
    },
  })
}
