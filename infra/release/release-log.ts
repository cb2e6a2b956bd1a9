// The release stream of record (ARCHITECTURE §2): one subject per product, one signed release
// per message, revisions 1, 2, 3 … in stream order.
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { RELEASE_STREAM, releaseSubject } from '../nats/names.ts'
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

export async function releaseManager(nc: NatsConnection): Promise<JetStreamManager> {
  return jetstreamManager(nc)
}
