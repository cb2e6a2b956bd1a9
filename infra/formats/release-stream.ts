// Format-2 releases on JetStream (docs/formats.md §1.8; issue 13 item 3): every release document
// of a product on `upswarm.meta.<product>.release.v2` of UPSWARM_META, kept forever, appended only
// by a publisher with the subject's expected last sequence — the serialization point of a publish,
// so two publishers never give out one revision twice — and with the release id as message id.
// Readers fetch a revision with a handful of direct gets (a binary search over sequences: revisions
// grow with them), never a consumer. What is not a release document on the subject is skipped and
// reported, never believed and never fatal.
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream'
import type { Status } from '@nats-io/transport-node'
import { getMsg } from './meta-stream.ts'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, errorMessage } from '../errors.ts'
import { jetStreamOptionsOf } from '../nats/identity.ts'
import { META_STREAM, release2Subject, signedRelease2Subject } from '../nats/names.ts'
import { parseRelease, type SignedRelease2 } from './release.ts'

export interface StoredRelease2 {
  seq: number
  text: string
  signed: SignedRelease2
}

function manager(nc: NatsConnection): Promise<JetStreamManager> {
  return jetstreamManager(nc, { checkAPI: false, ...jetStreamOptionsOf(nc) })
}

function stored(msg: StoredMsg, product: string): StoredRelease2 | string {
  const text = Buffer.from(msg.data).toString('utf8')
  try {
    const signed = parseRelease(text, `${META_STREAM} seq ${msg.seq}`)
    if (signed.release.product !== product) return `seq ${msg.seq} is a release of ${signed.release.product}, not of ${product}`
    return { seq: msg.seq, text, signed }
  } catch (err) {
    return errorMessage(err)
  }
}

/** The first release at or after `seq` on the product's subject (skipping what is not one), or null. */
async function releaseFrom(jsm: JetStreamManager, product: string, seq: number, leader: boolean, onSkip?: (seq: number, reason: string) => void): Promise<StoredRelease2 | null> {
  for (let at = seq; ;) {
    const msg = await getMsg(jsm, META_STREAM, { seq: at, next_by_subj: release2Subject(product) }, leader)
    if (!msg) return null
    const r = stored(msg, product)
    if (typeof r !== 'string') return r
    onSkip?.(msg.seq, r)
    at = msg.seq + 1
  }
}

/** The product's newest release document on the stream (undefined: none yet). */
export async function newestRelease2(nc: NatsConnection, product: string, opts: { leader?: boolean; onSkip?: (seq: number, reason: string) => void } = {}): Promise<StoredRelease2 | undefined> {
  const jsm = await manager(nc)
  const last = await getMsg(jsm, META_STREAM, { last_by_subj: release2Subject(product) }, !!opts.leader)
  if (!last) return undefined
  const r = stored(last, product)
  if (typeof r !== 'string') return r
  // The newest message is not a release: walk the subject for the newest one that is (rare).
  opts.onSkip?.(last.seq, r)
  let newest: StoredRelease2 | undefined
  for (let at = 1; at < last.seq;) {
    const next = await releaseFrom(jsm, product, at, !!opts.leader, opts.onSkip)
    if (!next || next.seq >= last.seq) break
    newest = next
    at = next.seq + 1
  }
  return newest
}

/**
 * Revision `rev` of a product, or undefined. Revisions grow with stream sequences, so a binary
 * search over sequences finds it in about log2(messages) direct gets.
 */
export async function readRelease2(nc: NatsConnection, product: string, rev: number): Promise<StoredRelease2 | undefined> {
  const jsm = await manager(nc)
  const last = await getMsg(jsm, META_STREAM, { last_by_subj: release2Subject(product) }, false)
  if (!last) return undefined
  let lo = 1
  let hi = last.seq
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2)
    const r = await releaseFrom(jsm, product, mid, false)
    if (!r || r.seq > hi) {
      hi = mid - 1
      continue
    }
    if (r.signed.release.rev === rev) return r
    if (r.signed.release.rev < rev) lo = r.seq + 1
    else hi = mid - 1
  }
  return undefined
}

/**
 * Appends a signed release (the publisher): it must be r1 of an empty subject or the next revision
 * of the newest release, naming it as parent. Its signatures are the readers' to check against the
 * root. The subject's expected last sequence makes a concurrent append fail instead of interleave.
 */
export async function appendRelease2(nc: NatsConnection, text: string): Promise<{ seq: number; rev: number; id: string }> {
  const next = parseRelease(text, 'the release to append')
  const { product, rev, parent } = next.release
  const jsm = await manager(nc)
  const lastMsg = await getMsg(jsm, META_STREAM, { last_by_subj: release2Subject(product) }, true)
  const tip = lastMsg ? await newestRelease2(nc, product, { leader: true }) : undefined
  // The first release on the subject names no parent and may continue a format-1 numbering
  // (docs/formats.md §2.2); every later one is the tip's successor.
  const follows = tip ? rev === tip.signed.release.rev + 1 && parent === tip.signed.id : parent === undefined
  if (!follows) {
    throw new UpswarmError('UPSWARM_E_CONFLICT',
      `release r${rev} of ${product} does not follow the stream's newest (${tip ? `r${tip.signed.release.rev}, ${tip.signed.id.slice(0, 16)}…` : 'none'}): publish from the newest release`)
  }
  try {
    const ack = await jetstream(nc, jetStreamOptionsOf(nc)).publish(release2Subject(product), text, {
      msgID: next.id, expect: { lastSubjectSequence: lastMsg?.seq ?? 0 },
    })
    return { seq: ack.seq, rev, id: next.id }
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) {
      throw new UpswarmError('UPSWARM_E_CONFLICT', `another release of ${product} was appended while r${rev} was checked; publish again from the newest release`, { cause: err })
    }
    throw err
  }
}

/**
 * Follows a product's new release documents as UPSWARM_META republishes them (the raw text: the
 * caller verifies it under its root), with a plain subscription: no consumer per follower. Only
 * what the stream stored on the product's subject is passed on (anyone may make JetStream answer
 * a request onto the republished subject, but not with this subject in `Nats-Subject`).
 * `onReconnect` runs after each reconnect of the connection, so the caller can ask for the newest
 * (a release stored while it was away was republished to nobody); `onError` gets a subscription
 * error (e.g. a permission the account does not grant), which ends the follower.
 */
export function followReleases2(nc: NatsConnection, product: string, onRelease: (text: string, streamSeq: number) => void, opts: { onReconnect?: () => void; onError?: (err: Error) => void } = {}): { stop(): void } {
  const stored = release2Subject(product)
  const sub = nc.subscribe(signedRelease2Subject(product), {
    callback: (err, msg) => {
      if (err) return opts.onError?.(err)
      if (msg.headers?.get('Nats-Subject') !== stored) return
      const seq = Number(msg.headers.get('Nats-Sequence'))
      if (Number.isSafeInteger(seq) && seq > 0) onRelease(msg.string(), seq)
    },
  })
  // nats.js types status() as a plain AsyncIterable; the object it returns can also be stopped.
  const statuses = nc.status() as AsyncIterable<Status> & { stop?: () => void }
  void (async () => {
    for await (const s of statuses) if (s.type === 'reconnect') opts.onReconnect?.()
  })()
  return {
    stop() {
      statuses.stop?.()
      sub.unsubscribe()
    },
  }
}
