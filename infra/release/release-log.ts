// The release stream of record (ARCHITECTURE §2): one subject per product, one signed release
// per message, revisions 1, 2, 3 … in stream order.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection, Status } from '@nats-io/transport-node'
import { RELEASE_STREAM, releasedSubject, releaseSubject } from '../nats/names.ts'
import { SignedReleaseSchema, manifestSha256, type SignedRelease } from './manifest.ts'

export const REV_HEADER = 'Upswarm-Rev'
/** Set by the stream on what it republishes. */
const STREAM_SEQUENCE_HEADER = 'Nats-Sequence'

export interface StoredRelease {
  seq: number
  release: SignedRelease
  manifestSha256: string
}

/** The newest release of a product in the stream, or null when it has none. */
export async function lastRelease(jsm: JetStreamManager, product: string): Promise<StoredRelease | null> {
  let msg
  try {
    msg = await jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(product) })
  } catch (err) {
    if (/no message found|not found|10037/i.test((err as Error).message)) return null
    throw err
  }
  if (!msg) return null
  const release = SignedReleaseSchema.parse(msg.json())
  return { seq: msg.seq, release, manifestSha256: manifestSha256(release.manifest) }
}

export async function releaseManager(nc: NatsConnection): Promise<JetStreamManager> {
  return jetstreamManager(nc)
}

export interface FollowHandle {
  stop(): Promise<void>
  /** Resolves when the follower ends (stopped, or the connection closed). */
  closed: Promise<void>
}

/**
 * R-WATCH, push not polling: the newest release of the product first (a direct read of the
 * stream), then each one the stream stores, as the stream republishes it on
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
  const sub = nc.subscribe(releasedSubject(product))
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  const newest = async (): Promise<{ data: Uint8Array; seq: number } | null> =>
    jsm.direct.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(product) })
  let delivered = 0
  // One delivery at a time, in stream order: the subscription and the re-reads after reconnects share it.
  let queue = Promise.resolve()
  const deliver = (data: Uint8Array, seq: number): Promise<void> => {
    queue = queue.then(async () => {
      if (seq <= delivered) return
      delivered = seq
      await onRelease(data, seq)
    })
    return queue
  }
  const first = await newest()
  if (first) void deliver(first.data, first.seq)
  // nats.js types status() as a plain AsyncIterable; the object it returns can also be stopped.
  const statuses = nc.status() as AsyncIterable<Status> & { stop?: () => void }
  void (async () => {
    for await (const s of statuses) {
      if (s.type !== 'reconnect') continue
      const latest = await newest().catch(() => null)
      if (latest) await deliver(latest.data, latest.seq)
    }
  })()
  const closed = (async () => {
    for await (const msg of sub) {
      const seq = Number(msg.headers?.get(STREAM_SEQUENCE_HEADER))
      if (Number.isInteger(seq)) await deliver(msg.data, seq)
    }
    await queue
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
