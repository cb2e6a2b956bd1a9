// JetStream resources of record (ARCHITECTURE §2). Idempotent: every role may call these at
// start; the first creates, the rest find them. Replicas: 3 on a cluster, fewer if it is smaller.
import { jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager, DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import { Objm, setSha256Backend, type ObjectStore } from '@nats-io/obj'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, permissionViolation } from '../errors.ts'
import { withRetry } from './retry.ts'
import {
  ALERT_STREAM, ALERT_SUBJECTS, ALERTED_SUBJECTS, BLOB_BUCKET, FLEET_STREAM, FLEET_SUBJECTS, FRESH_STREAM, FRESH_SUBJECTS, META_STREAM, META_SUBJECTS, SIGNED_SUBJECTS, PEER_BUCKET, PRUNE_STREAM, PRUNE_SUBJECTS,
  RELEASE_READ_STREAM, RELEASE_STREAM, RELEASE_SUBJECTS, RELEASED_SUBJECTS,
} from './names.ts'
import { ensureLeaseBucket } from './leases.ts'

// node:crypto hashes object-store chunks an order of magnitude faster than the pure-JS default.
setSha256Backend('native')

const DUPLICATE_WINDOW_NS = 24 * 60 * 60 * 1e9 // a retried publish within a day is deduplicated

/** How many replicas this cluster can hold: min(3, number of JetStream servers). */
export async function clusterReplicas(nc: NatsConnection): Promise<number> {
  const configured = Number(process.env.UPSWARM_REPLICAS)
  if (Number.isInteger(configured) && configured > 0) return configured
  // The INFO of a clustered server lists every member's client URL.
  const info = (nc as unknown as { info?: { connect_urls?: string[] } }).info
  const members = info?.connect_urls?.length ?? 1
  return Math.max(1, Math.min(3, members))
}

/** `upswarm.release.X` → `upswarm.released.X`, stored messages only (the release stream and a site's mirror of it). */
export const RELEASE_REPUBLISH = { src: RELEASE_SUBJECTS, dest: RELEASED_SUBJECTS }
/** `upswarm.meta.X` → `upswarm.signed.X` (docs/formats.md §1.8), stored messages only (the meta stream and a site's mirror of it). */
export const META_REPUBLISH = { src: META_SUBJECTS, dest: SIGNED_SUBJECTS }

export async function ensureReleaseStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: RELEASE_STREAM,
    subjects: [RELEASE_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: DUPLICATE_WINDOW_NS,
    max_msg_size: 8 * 1024 * 1024,
    discard: DiscardPolicy.New,
    deny_delete: true,
    deny_purge: true,
    allow_direct: true,
    republish: RELEASE_REPUBLISH,
  })
}

/** The readers' mirror of the release stream (names.ts: RELEASE_READ_STREAM). */
export async function ensureReleaseReadMirror(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: RELEASE_READ_STREAM,
    mirror: { name: RELEASE_STREAM },
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    deny_delete: true,
    deny_purge: true,
  })
}

/** Root versions (issue 10 item 7): all kept, like releases; a root is at most 1 MiB (docs/formats.md §4). */
export async function ensureMetaStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: META_STREAM,
    subjects: [META_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: DUPLICATE_WINDOW_NS,
    max_msg_size: 1024 * 1024,
    discard: DiscardPolicy.New,
    deny_delete: true,
    deny_purge: true,
    allow_direct: true,
    republish: META_REPUBLISH,
  })
}

/** Fresh statements (issue 10 item 7): the newest per product only, read with one direct get. */
export async function ensureFreshStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: FRESH_STREAM,
    subjects: [FRESH_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_msgs_per_subject: 1,
    max_msg_size: 4096,
    discard: DiscardPolicy.Old,
    allow_direct: true,
  })
}

/** Issue 11 item 8: the operators' prune records, kept forever like the releases they name. */
export async function ensurePruneStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: PRUNE_STREAM,
    subjects: [PRUNE_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_msg_size: 64 * 1024,
    discard: DiscardPolicy.New,
    deny_delete: true,
    deny_purge: true,
  })
}

export async function ensureAlertStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: ALERT_STREAM,
    subjects: [ALERT_SUBJECTS],
    // Issue 17: what it stored, sourced alerts of the sites included, for the notary.
    republish: { src: ALERT_SUBJECTS, dest: ALERTED_SUBJECTS },
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: DUPLICATE_WINDOW_NS,
    max_age: 90 * 24 * 60 * 60 * 1e9,
    // Clients write here: one cannot fill the storage every role shares (issue 10).
    max_msg_size: 64 * 1024,
    max_bytes: 1024 * 1024 * 1024,
    discard: DiscardPolicy.Old,
  })
}

/**
 * Issue 16 item 3: the newest fleet report of each client (one message per subject). Clients
 * write here, so each message is small and the whole bounded; a client silent for 30 days leaves.
 */
export async function ensureFleetStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  await ensureStream(jsm, {
    name: FLEET_STREAM,
    subjects: [FLEET_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_msgs_per_subject: 1,
    max_msg_size: 4096,
    max_bytes: 256 * 1024 * 1024,
    max_age: 30 * 24 * 60 * 60 * 1e9,
    discard: DiscardPolicy.Old,
    allow_direct: true,
  })
}

/** Creates a stream, or brings one an earlier version made up to what later ones added. */
export async function ensureStream(jsm: JetStreamManager, config: Parameters<JetStreamManager['streams']['add']>[0]): Promise<void> {
  let have
  try {
    have = (await jsm.streams.info(config.name!)).config
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err
    try {
      await jsm.streams.add(config)
    } catch (err) {
      // Another role created it between our info and add.
      await jsm.streams.info(config.name!).catch(() => { throw err })
    }
    return
  }
  // A stream made by an earlier version lacks what later ones added (direct reads, republish).
  if (config.republish && (!have.republish || !have.allow_direct)) {
    await jsm.streams.update(config.name!, { ...have, allow_direct: true, republish: config.republish })
  }
}

/** The blob bucket; created only when missing (only the admin identity may create it). */
export async function openBlobStore(nc: NatsConnection, replicas: number): Promise<ObjectStore> {
  const objm = new Objm(nc)
  try {
    return await objm.open(BLOB_BUCKET)
  } catch (err) {
    if (permissionViolation(err)) throw err
    return objm.create(BLOB_BUCKET, { replicas, storage: StorageType.File })
  }
}

/**
 * The tracker's registry. In memory (replicated, not fsynced): peers are soft state that every peer
 * announces again within its interval, and a file-backed stream with `sync_interval: always`
 * stored ~1 400 writes/s here (issue 14 item 5). An existing bucket keeps the storage it was made with.
 */
export async function openPeerBucket(nc: NatsConnection, replicas: number, ttlMs: number): Promise<KV> {
  const kvm = new Kvm(nc)
  return kvm.create(PEER_BUCKET, { replicas, ttl: ttlMs, history: 1, storage: StorageType.Memory })
}

/** Creates every resource of record; called by `up` and by the test harness once. */
export async function ensureResources(nc: NatsConnection, replicas?: number): Promise<{ replicas: number }> {
  const r = replicas ?? (await clusterReplicas(nc))
  // A cluster that just started may not place R3 assets until every peer has joined the meta
  // group ("no suitable peers for placement"): retry for a while.
  return withRetry(async () => {
    const jsm = await jetstreamManager(nc)
    await ensureReleaseStream(jsm, r)
    await ensureReleaseReadMirror(jsm, r)
    await ensureAlertStream(jsm, r)
    await ensureMetaStream(jsm, r)
    await ensureFreshStream(jsm, r)
    await ensurePruneStream(jsm, r)
    await ensureFleetStream(jsm, r)
    await openBlobStore(nc, r)
    await ensureLeaseBucket(nc, r)
    return { replicas: r }
  }, { attempts: 40, maxDelayMs: 500 })
}

/**
 * What a role (publisher, server) needs of the resources of record, opened without creating
 * anything: only the admin identity creates streams and buckets (`upswarm up` does, as admin).
 */
const NOT_FOUND_ASKS = 4

export async function openRepository(nc: NatsConnection): Promise<{ replicas: number; blobs: ObjectStore }> {
  const replicas = await clusterReplicas(nc)
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  let notFoundAsks = 0
  try {
    // "Not found" is final only after a few asks (~1.5 s): right after the stream is made, or while a
    // new meta leader applies its log, the cluster can answer 404 for a stream that exists.
    await withRetry(() => jsm.streams.info(RELEASE_STREAM), { attempts: 30, retryable: (err) => !(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) || notFoundAsks++ < NOT_FOUND_ASKS })
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `the release stream ${RELEASE_STREAM} does not exist on this cluster: \`upswarm up\` creates it, or an admin identity once`, { cause: err })
    }
    throw err
  }
  return { replicas, blobs: await withRetry(() => openBlobStore(nc, replicas), { attempts: 30 }) }
}
