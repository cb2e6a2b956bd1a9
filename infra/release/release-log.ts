// The release stream of record (ARCHITECTURE §2): one subject per product, one signed release
// per message, revisions 1, 2, 3 … in stream order.
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { RELEASE_STREAM, releaseSubject } from '../nats/names.ts'
import { UpswarmError } from '../errors.ts'
import { SignedReleaseSchema, manifestSha256, type SignedRelease } from './manifest.ts'

export const REV_HEADER = 'Upswarm-Rev'

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

export async function releaseManager(nc: NatsConnection): Promise<JetStreamManager> {
  return jetstreamManager(nc)
}

export interface FollowHandle {
  stop(): Promise<void>
  /** Resolves when the follower ends (stopped, or the connection closed). */
  closed: Promise<void>
}

/**
 * R-WATCH, push not polling: an ordered consumer on the product's release subject delivers
 * every release, the last one first (deliver policy last-per-subject), then each new one as it
 * is published. The callback gets the raw signed bytes; the caller verifies them.
 */
export async function followReleases(
  nc: NatsConnection,
  product: string,
  onRelease: (bytes: Uint8Array, seq: number) => void | Promise<void>,
): Promise<FollowHandle> {
  const js = jetstream(nc)
  const consumer = await js.consumers.get(RELEASE_STREAM, {
    filter_subjects: [releaseSubject(product)],
    deliver_policy: DeliverPolicy.LastPerSubject,
  })
  const messages = await consumer.consume()
  const closed = (async () => {
    for await (const msg of messages) await onRelease(msg.data, msg.seq)
  })()
  return {
    closed,
    async stop() {
      messages.stop()
      await closed.catch(() => {})
    },
  }
}
