// The release stream of record (ARCHITECTURE §2): one subject per product, one signed release
// per message; a trusted key's releases raise the revision 1, 2, 3 … in stream order, and
// whatever else lands on the subject is skipped and reported, never believed.
import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection, Status } from '@nats-io/transport-node'
import { UpswarmError, errorMessage } from '../errors.ts'
import { jetStreamOptionsOf } from '../nats/identity.ts'
import { RELEASE_READ_STREAM, RELEASE_STREAM, releasedSubject, releaseSubject } from '../nats/names.ts'
import { SignedReleaseSchema, decodeSelfSigned, manifestSha256, type SignedRelease } from './manifest.ts'

export const REV_HEADER = 'Upswarm-Rev'
/** Set by the stream on what it republishes. */
const STREAM_SEQUENCE_HEADER = 'Nats-Sequence'
const STREAM_SUBJECT_HEADER = 'Nats-Subject'
const LIST_BATCH = 256
const LIST_WAIT_MS = 5000

export interface StoredRelease {
  seq: number
  release: SignedRelease
  manifestSha256: string
}

/** A message on a product's release subject that is not one of its releases: reported, never fatal. */
export interface SkippedMessage {
  stream: string
  seq: number
  /** junk: not a signed release; foreign: another key, another product or a forged signature; replay: a revision already passed. */
  kind: 'junk' | 'foreign' | 'replay'
  reason: string
}

/**
 * The revision of a product's newest message in the stream, 0 when it has none: from its
 * REV_HEADER, else from its manifest. A message that carries neither is an error naming it.
 */
export async function newestRevision(jsm: JetStreamManager, product: string): Promise<number> {
  const msg = await jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(product) })
  if (!msg) return 0
  const header = Number(msg.header?.get(REV_HEADER))
  if (Number.isInteger(header) && header > 0) return header
  let body: unknown
  try {
    body = msg.json()
  } catch {
    body = undefined
  }
  const parsed = SignedReleaseSchema.safeParse(body)
  if (!parsed.success) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `the newest message on ${releaseSubject(product)} (stream ${RELEASE_STREAM}, seq ${msg.seq}) is not a release`)
  }
  return parsed.data.manifest.rev
}

export interface ReleaseChain {
  /** The product's newest release (highest revision) signed by a trusted key, or null. */
  head: StoredRelease | null
  /** Sequence of the last message on the subject, whatever it holds: what the next append expects. */
  lastSeq: number
  /** The messages after the head, and those that claimed a higher revision, that are not releases of it. */
  skipped: SkippedMessage[]
}

/**
 * Issue 10 item 5 (R-VERIFY on the publisher's side): the product's newest release that verifies
 * under a trusted key. Anyone able to append to the subject can add junk, another key's releases
 * or a replay of an older genuine release; none of them moves the head, each is reported.
 *
 * Cheap on a long history: a headers-only pass lists every message with the revision its
 * `Upswarm-Rev` header claims; bodies are read only for the claimed-highest candidates (until one
 * verifies: headers are hints, never believed) and for the messages after the head.
 */
export async function readReleaseChain(nc: NatsConnection, product: string, trusts: (publicKey: string) => boolean): Promise<ReleaseChain> {
  const jsm = await jetstreamManager(nc)
  const last = await jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(product) })
  if (!last) return { head: null, lastSeq: 0, skipped: [] }
  const count = await subjectCount(nc, product)
  const newest = judge(last.data, last.seq, product, trusts)
  // Revisions 1 … N each take one message of the subject, so a subject of exactly N messages
  // ending in a trusted rN holds nothing else: the common case costs two requests.
  if ('release' in newest && newest.release.manifest.rev === count) return { head: newest, lastSeq: last.seq, skipped: [] }
  const listed = await listSubject(nc, product, last.seq, count)
  const skipped = new Map<number, SkippedMessage>()
  const read = async (seq: number): Promise<StoredRelease | null> => {
    const msg = seq === last.seq ? last : await jsm.streams.getMessage(RELEASE_STREAM, { seq })
    const verdict = msg ? judge(msg.data, seq, product, trusts) : { kind: 'junk' as const, reason: 'the message is gone' }
    if ('release' in verdict) return verdict
    skipped.set(seq, { stream: RELEASE_STREAM, seq, ...verdict })
    return null
  }

  let head: StoredRelease | null = null
  const candidates = listed.filter((m) => m.claimedRev > 0).sort((a, b) => b.claimedRev - a.claimedRev || a.seq - b.seq)
  for (const c of candidates) {
    const found = await read(c.seq)
    if (found && found.release.manifest.rev === c.claimedRev) {
      head = found
      break
    }
  }
  for (const m of listed) {
    if (m.seq <= (head?.seq ?? 0) || skipped.has(m.seq)) continue
    const found = await read(m.seq)
    if (!found) continue
    const newest = head?.release.manifest.rev ?? 0
    if (found.release.manifest.rev > newest) {
      head = found // a genuine release whose header understated its revision
    } else {
      const kind = found.release.manifest.rev === newest && found.manifestSha256 === head!.manifestSha256 ? 'the same release again' : 'an older release'
      skipped.set(m.seq, {
        stream: RELEASE_STREAM, seq: m.seq, kind: 'replay',
        reason: `${kind} (r${found.release.manifest.rev}); revision ${found.release.manifest.rev} already exists and the newest is r${newest}`,
      })
    }
  }
  return { head, lastSeq: last.seq, skipped: [...skipped.values()].sort((a, b) => a.seq - b.seq) }
}

async function subjectCount(nc: NatsConnection, product: string): Promise<number> {
  const subject = releaseSubject(product)
  const { state } = await (await jetstreamManager(nc)).streams.info(RELEASE_STREAM, { subjects_filter: subject })
  return state.subjects?.[subject] ?? 0
}

/** Every message of the product's subject up to `untilSeq`: its sequence and the revision its header claims (0: none). */
async function listSubject(nc: NatsConnection, product: string, untilSeq: number, count: number): Promise<{ seq: number; claimedRev: number }[]> {
  const subject = releaseSubject(product)
  const consumer = await jetstream(nc).consumers.get(RELEASE_READ_STREAM, {
    filter_subjects: [subject],
    deliver_policy: DeliverPolicy.All,
    headers_only: true,
  })
  const out: { seq: number; claimedRev: number }[] = []
  try {
    // Bounded pulls of exactly the messages there are, not an open-ended subscription: while a
    // node is lost, a pull that gets nothing ends in a timeout the caller retries.
    while (out.length < count && (out.at(-1)?.seq ?? 0) < untilSeq) {
      const before = out.length
      for await (const msg of await consumer.fetch({ max_messages: Math.min(LIST_BATCH, count - out.length), expires: LIST_WAIT_MS })) {
        const claimed = Number(msg.headers?.get(REV_HEADER))
        out.push({ seq: msg.seq, claimedRev: Number.isSafeInteger(claimed) && claimed > 0 ? claimed : 0 })
      }
      if (out.length === before) {
        throw new UpswarmError('UPSWARM_E_TIMEOUT', `${RELEASE_STREAM} did not list ${subject} past seq ${out.at(-1)?.seq ?? 0} within ${LIST_WAIT_MS} ms`)
      }
    }
  } finally {
    await consumer.delete().catch(() => {})
  }
  return out.filter((m) => m.seq <= untilSeq)
}

function judge(bytes: Uint8Array, seq: number, product: string, trusts: (publicKey: string) => boolean):
  StoredRelease | { kind: 'junk' | 'foreign'; reason: string } {
  const where = `${RELEASE_STREAM} seq ${seq}`
  let claimed
  try {
    claimed = SignedReleaseSchema.parse(JSON.parse(Buffer.from(bytes).toString('utf8')))
  } catch {
    return { kind: 'junk', reason: `not a signed release manifest (${bytes.byteLength} bytes)` }
  }
  const { manifest, publicKey } = claimed
  if (manifest.product !== product) return { kind: 'foreign', reason: `a release of another product (${manifest.product} r${manifest.rev})` }
  if (!trusts(publicKey)) return { kind: 'foreign', reason: `r${manifest.rev} signed by key ${publicKey}, which is not trusted for ${product}` }
  let release
  try {
    release = decodeSelfSigned(bytes, where)
  } catch (err) {
    return { kind: 'foreign', reason: `r${manifest.rev} naming key ${publicKey} does not verify: ${errorMessage(err)}` }
  }
  return { seq, release, manifestSha256: manifestSha256(release.manifest) }
}

export interface FollowHandle {
  stop(): Promise<void>
  /** Resolves when the follower ends (stopped, or the connection closed). */
  closed: Promise<void>
}

/**
 * R-WATCH, push not polling: the newest release of the product first (read by the stream's
 * leader), then each one the stream stores, as the stream republishes it on
 * `upswarm.released.<product>` with its sequence. A plain subscription: a fleet of watchers
 * holds no consumer on the cluster, and a client identity needs no consumer API (issue 10).
 * After a reconnect the newest release is read again, so a gap never hides the newest.
 * The callback gets the raw signed bytes; the caller verifies them.
 */
export async function followReleases(
  nc: NatsConnection,
  product: string,
  onRelease: (bytes: Uint8Array, seq: number) => void | Promise<void>,
): Promise<FollowHandle> {
  const subject = releaseSubject(product)
  const sub = nc.subscribe(releasedSubject(product))
  // nats.js types status() as a plain AsyncIterable; the object it returns can also be stopped.
  const statuses = nc.status() as AsyncIterable<Status> & { stop?: () => void }
  let delivered = 0
  let failure: unknown
  // One delivery at a time, in stream order: the subscription and the re-reads share it. A
  // failing callback ends the follower (`closed` rejects with its error).
  let queue = Promise.resolve()
  const deliver = (data: Uint8Array, seq: number): Promise<void> => {
    queue = queue.then(async () => {
      if (failure !== undefined || seq <= delivered) return
      delivered = seq
      try {
        await onRelease(data, seq)
      } catch (err) {
        failure = err
        sub.unsubscribe()
      }
    })
    return queue
  }
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false, ...jetStreamOptionsOf(nc) })
    // A read by the stream's leader, sent after the subscription on the same connection: the
    // interest reaches the leader before the read does, so a release stored after the read is
    // republished to us, and one stored before it is what the read returns. (A direct read may
    // be answered by a replica that lags.)
    const newest = async (): Promise<{ data: Uint8Array; seq: number } | null> =>
      jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: subject }).catch((err: unknown) => {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null
        throw err
      })
    await nc.flush()
    const first = await newest()
    if (first) void deliver(first.data, first.seq)
    void (async () => {
      for await (const s of statuses) {
        if (s.type !== 'reconnect') continue
        const latest = await newest().catch(() => null)
        if (latest) void deliver(latest.data, latest.seq)
      }
    })()
  } catch (err) {
    statuses.stop?.()
    sub.unsubscribe()
    throw err
  }
  const closed = (async () => {
    for await (const msg of sub) {
      // Only what the stream stored on this product's subject: anyone may make JetStream answer
      // a request onto this subject, but not with this product's subject in Nats-Subject.
      if (msg.headers?.get(STREAM_SUBJECT_HEADER) !== subject) continue
      const seq = Number(msg.headers.get(STREAM_SEQUENCE_HEADER))
      if (Number.isSafeInteger(seq) && seq > 0) void deliver(msg.data, seq)
    }
    await queue
    statuses.stop?.()
    if (failure !== undefined) throw failure
  })()
  return {
    closed,
    async stop() {
      statuses.stop?.()
      sub.unsubscribe()
      await closed.catch(() => {})
    },
  }
}
