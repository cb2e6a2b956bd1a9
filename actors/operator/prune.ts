// Issue 11 item 8, bounded storage on the server side: `upswarm prune` removes from the object
// store the blobs that only a product's oldest revisions use. The signed releases stay (the hash
// chain stays verifiable); the pruned range is recorded on PRUNE_STREAM, from which every
// repository server learns to drop its own copies and to refuse those revisions' bytes.
// Blobs are content-addressed and shared across revisions and products: a blob goes only when no
// release outside a pruned range (of any product) names it. Publishes that rely on blobs already
// in the store are kept apart by leases (infra/nats/leases.ts).
import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream'
import type { ObjectStore } from '@nats-io/obj'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import { newestRoot, type StoredRoot } from '../../infra/formats/meta-stream.ts'
import { parseRelease, verifyRelease, type SignedRelease2 } from '../../infra/formats/release.ts'
import { newestRelease2 } from '../../infra/formats/release-stream.ts'
import { productKeys, type Root } from '../../infra/formats/root.ts'
import { getNodeObject } from '../../infra/formats/tree-objects.ts'
import { addReleaseRefs } from '../../infra/formats/tree-refs.ts'
import { identityOf } from '../../infra/nats/identity.ts'
import { acquirePruneLease, type LeaseHolder } from '../../infra/nats/leases.ts'
import { BLOB_BUCKET, META_STREAM, RELEASE2_SUBJECTS, RELEASE_STREAM } from '../../infra/nats/names.ts'
import { appendPruneRecord, readPruneRecord, readPruneRecords, type PruneRecord } from '../../infra/nats/prune-records.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { isNoResponders, withRetry } from '../../infra/nats/retry.ts'
import { SignedReleaseSchema, UUID_RE, blobsOf } from '../../infra/release/manifest.ts'
import { readReleaseChain } from '../../infra/release/release-log.ts'
import { loadTrust, trustedKeys } from '../../infra/release/trust.ts'

export interface PruneOptions {
  nc: NatsConnection
  product: string
  /** Keep the newest N revisions … */
  keep?: number
  /** … or prune every revision before this one. */
  before?: number
  /** Count what would go; change nothing (no lease, no record, no deletion). */
  dryRun?: boolean
  /** Trust file naming the product's publish keys, when the root of trust on UPSWARM_META does not list it. */
  trust?: string
  /** How long to wait for publishes in flight before giving up (default 10 min). */
  maxWaitMs?: number
  onWaiting?: (publishes: LeaseHolder[]) => void
  /** Called once the set to delete is known and the record is about to be written (tests interleave here). */
  beforeDelete?: () => Promise<void>
  onProgress?: (p: { deleted: number; total: number; bytes: number }) => void
}

export interface PruneResult {
  product: string
  dryRun: boolean
  /** The product's newest revision. */
  newest: number
  /** Revisions 1 … through have (or would have) no file contents on the servers. */
  through: number
  /** What was pruned before this run (0: never). */
  previous: number
  /** Blobs of the pruned revisions still used by a kept revision of any product: they stay. */
  shared: number
  /** Blobs removed (or that a dry run would remove) from the object store, and their bytes. */
  blobs: number
  bytes: number
  /** PRUNE_STREAM sequence of the record written; null when nothing changed or on a dry run. */
  recordSeq: number | null
}

const DEFAULT_MAX_WAIT_MS = 10 * 60_000
const READ_BATCH = 256
const READ_WAIT_MS = 5000

export async function prune(opts: PruneOptions): Promise<PruneResult> {
  const product = opts.product.toLowerCase()
  if (!UUID_RE.test(product)) throw new UpswarmError('UPSWARM_E_CONFIG', `prune: PRODUCT must be a UUID (got ${JSON.stringify(opts.product)})`)
  if ((opts.keep === undefined) === (opts.before === undefined)) throw new UpswarmError('UPSWARM_E_CONFIG', 'prune: give either --keep N (the newest N revisions stay) or --before REV (every revision before REV goes)')
  if (opts.keep !== undefined && opts.keep < 1) throw new UpswarmError('UPSWARM_E_CONFIG', `prune: --keep ${opts.keep}: at least the newest revision stays; give --keep 1 or more`)
  const root = await withRetry(() => newestRoot(opts.nc), { attempts: 10 })
  const trusts = await trustOf(opts, product, root)
  const { blobs: os } = await openRepository(opts.nc)

  const lease = opts.dryRun
    ? undefined
    : await acquirePruneLease(opts.nc, `prune ${product} ${opts.keep !== undefined ? `--keep ${opts.keep}` : `--before ${opts.before}`}`, {
      maxWaitMs: opts.maxWaitMs ?? DEFAULT_MAX_WAIT_MS, ...(opts.onWaiting ? { onWaiting: opts.onWaiting } : {}),
    })
  try {
    // Read once no publish relies on the store: every release appended so far is counted.
    const { head } = await withRetry(() => readReleaseChain(opts.nc, product, trusts), { attempts: 10 })
    // Format 2 (issue 15): a product may publish only there; its newest verified release counts too.
    const head2 = root?.signed.root.products[product] ? await withRetry(() => newestRelease2(opts.nc, product, { leader: true }), { attempts: 10 }) : undefined
    let newest2 = 0
    try {
      if (head2 && root) newest2 = verifyRelease(head2.text, root.signed.root, `${META_STREAM} seq ${head2.seq}`).release.rev
    } catch { /* not signed under the newest root: the format-1 chain decides */ }
    const newest = Math.max(head?.release.manifest.rev ?? 0, newest2)
    if (newest === 0) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `product ${product} has no release signed by its publish keys in ${RELEASE_STREAM} or ${META_STREAM}: nothing to prune`)
    if (opts.before !== undefined && opts.before > newest) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `prune: --before ${opts.before} would prune the newest revision r${newest} of ${product}; the newest always stays (--before ${newest} keeps only it)`)
    }
    const asked = opts.keep !== undefined ? newest - opts.keep : opts.before! - 1
    const previous = await readPruneRecord(opts.nc, product)
    const prevThrough = previous?.record.through ?? 0
    // Bytes already removed cannot come back: a range only grows.
    const through = Math.max(asked, prevThrough)

    const pruned = new Map([...((await readPruneRecords(opts.nc))?.records ?? new Map())].map(([p, r]) => [p, r.record.through]))
    pruned.set(product, through)
    const candidates = new Set<string>()
    const kept = new Set<string>()
    await references(opts.nc, product, pruned, candidates, kept)
    await references2(opts.nc, os, product, pruned, root?.signed.root, candidates, kept)
    const doomed: { sha: string; size: number }[] = []
    let shared = 0
    for (const sha of candidates) {
      if (kept.has(sha)) {
        shared++
        continue
      }
      const info = await withRetry(() => os.info(sha), { attempts: 10 })
      if (info && !info.deleted) doomed.push({ sha, size: info.size })
    }
    const bytes = doomed.reduce((n, d) => n + d.size, 0)
    const result = { product, dryRun: !!opts.dryRun, newest, through, previous: prevThrough, shared, blobs: doomed.length, bytes, recordSeq: null as number | null }
    if (opts.dryRun || (through <= 0) || (through === prevThrough && doomed.length === 0)) return result

    await opts.beforeDelete?.()
    // The record first: servers drop their copies and clients are told, even if this run dies
    // before the last deletion (running it again finishes the job).
    if (through > prevThrough) {
      const record: PruneRecord = {
        format: 1, product, through, newest, ...(opts.keep !== undefined ? { keep: opts.keep } : { before: opts.before! }),
        at: new Date().toISOString(), by: identityOf(opts.nc), blobs: doomed.length, bytes,
      }
      await stillHeld()
      result.recordSeq = await withRetry(() => appendPruneRecord(opts.nc, record, previous?.seq ?? 0), { attempts: 10 })
    }
    let done = 0
    let freed = 0
    const jsm = await jetstreamManager(opts.nc)
    for (const d of doomed) {
      if (done % 64 === 0) await stillHeld()
      await withRetry(() => os.delete(d.sha), { attempts: 10 })
      // The delete marker too: a publisher that uploads the blob again then finds no old object
      // whose chunks it would have to purge (which its permissions do not allow).
      await withRetry(() => jsm.streams.purge(`OBJ_${BLOB_BUCKET}`, { filter: objectMetaSubject(d.sha) }), { attempts: 10 })
      done++
      freed += d.size
      opts.onProgress?.({ deleted: done, total: doomed.length, bytes: freed })
    }
    return result
  } finally {
    await lease?.release()
  }

  async function stillHeld(): Promise<void> {
    if (lease && !(await lease.held())) {
      throw new UpswarmError('UPSWARM_E_CONFLICT', `the prune of ${product} lost its lease (not renewed within its lifetime: was this process paused?); stopped before deleting more. Run it again`)
    }
  }
}

/** Where the object store keeps an object's metadata: its name in padded base64url (as @nats-io/obj names it). */
function objectMetaSubject(name: string): string {
  const b64 = Buffer.from(name).toString('base64url')
  return `$O.${BLOB_BUCKET}.M.${b64}${'='.repeat((4 - (b64.length % 4)) % 4)}`
}

/** The product's publish keys: from the newest root on UPSWARM_META, else the trust file. */
async function trustOf(opts: PruneOptions, product: string, root: StoredRoot | undefined): Promise<(key: string) => boolean> {
  if (root?.signed.root.products[product]) {
    const { current, retired } = productKeys(root.signed.root, product)
    const keys = [...current, ...retired]
    return (k) => keys.includes(k)
  }
  const keys = opts.trust ? trustedKeys(await loadTrust(opts.trust), product) : undefined
  if (!keys) {
    throw new UpswarmError('UPSWARM_E_CONFIG',
      `prune: cannot tell ${product}'s releases from forgeries: the root of trust on UPSWARM_META does not list it${opts.trust ? ` and trust file ${opts.trust} does not pin it` : ''}; give --trust FILE (the servers' trust file)`)
  }
  return (k) => keys.includes(k)
}

/** Calls `each` with every message of `stream` (on `filter`), oldest first, up to its last sequence now. */
async function readWhole(nc: NatsConnection, stream: string, filter: string | undefined, each: (msg: JsMsg) => Promise<void> | void): Promise<void> {
  const jsm = await jetstreamManager(nc)
  const { state } = await jsm.streams.info(stream, filter ? { subjects_filter: filter } : undefined)
  const until = state.last_seq
  // Filtered: as many messages as the stream holds on those subjects now (later ones are not needed).
  const wanted = filter ? Object.values(state.subjects ?? {}).reduce((n, c) => n + c, 0) : state.messages
  if (wanted === 0) return
  let seen = 0
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All, ...(filter ? { filter_subjects: [filter] } : {}) })
  let last = 0
  let noResponders = 0
  try {
    while (last < until && seen < wanted) {
      let got = 0
      // The consumer's subjects may not have reached every node yet: a first pull can find no responder.
      const batch = await withRetry(() => consumer.fetch({ max_messages: READ_BATCH, expires: READ_WAIT_MS }), { attempts: 10, retryable: isNoResponders })
      try {
        for await (const msg of batch) {
          got++
          last = msg.seq
          if (msg.seq > until) break
          seen++
          await each(msg)
          if (seen >= wanted) break
        }
      } catch (err) {
        if (got > 0 || !isNoResponders(err) || ++noResponders > 10) throw err
        await new Promise((r) => setTimeout(r, 100 * noResponders))
        continue
      }
      if (got === 0) {
        throw new UpswarmError('UPSWARM_E_TIMEOUT', `${stream} did not deliver past seq ${last} within ${READ_WAIT_MS} ms; nothing was pruned`)
      }
    }
  } catch (err) {
    throw err instanceof UpswarmError ? err : new UpswarmError('UPSWARM_E_NATS', `cannot read ${stream} to count blob references: ${errorMessage(err)}`, { cause: err })
  } finally {
    await consumer.delete().catch(() => {})
  }
}

/**
 * Reads every message of the release stream itself (only admin prunes, and admin may read it;
 * the readers' mirror can lag behind the sequence just looked up): the blobs of `product`'s pruned revisions (candidates) and the blobs
 * every other release names (kept). A message that is not a release names nothing; a release of
 * another key or a forgery counts as kept (keeping too much is safe, deleting too much is not).
 */
async function references(nc: NatsConnection, product: string, pruned: Map<string, number>, candidates: Set<string>, kept: Set<string>): Promise<void> {
  await readWhole(nc, RELEASE_STREAM, undefined, (msg) => {
    let json: unknown
    try {
      json = msg.json()
    } catch {
      return
    }
    const r = SignedReleaseSchema.safeParse(json)
    if (!r.success) return
    const { product: p, rev } = r.data.manifest
    const into = rev <= (pruned.get(p) ?? 0) ? (p === product ? candidates : null) : kept
    if (into) for (const sha of blobsOf(r.data.manifest).keys()) into.add(sha)
  })
}

/**
 * Format 2 (issue 15): every release document on UPSWARM_META, its tree walked in the object
 * store (tree-refs.ts). A pruned revision of `product` counts only when it verifies under the
 * newest root; anything else that parses counts as kept, and a kept tree that cannot be walked
 * stops the prune before anything is deleted.
 */
async function references2(nc: NatsConnection, os: ObjectStore, product: string, pruned: Map<string, number>, root: Root | undefined, candidates: Set<string>, kept: Set<string>): Promise<void> {
  const docs: { text: string; seq: number }[] = []
  await readWhole(nc, META_STREAM, RELEASE2_SUBJECTS, (msg) => {
    docs.push({ text: Buffer.from(msg.data).toString('utf8'), seq: msg.seq })
  })
  const get = (hash: string): Promise<Uint8Array> => getNodeObject(os, hash)
  for (const { text, seq } of docs) {
    const where = `${META_STREAM} seq ${seq}`
    let signed: SignedRelease2
    try {
      signed = parseRelease(text, where)
    } catch {
      continue // not a release document: names nothing
    }
    const { product: p, rev } = signed.release
    let into: Set<string> | null = rev <= (pruned.get(p) ?? 0) ? (p === product ? candidates : null) : kept
    if (into === candidates) {
      try {
        if (!root) throw new Error('no root')
        verifyRelease(text, root, where)
      } catch {
        into = kept
      }
    }
    if (!into) continue
    try {
      await addReleaseRefs({ tree: signed.release.tree, deltas: signed.release.deltas, packs: signed.release.packs }, get, into, `r${rev} of ${p} (${where})`)
    } catch (err) {
      // A revision pruned before: part of its tree is gone already, and what is gone needs no count.
      if (into === candidates && isUpswarmError(err, 'UPSWARM_E_NOT_FOUND')) continue
      throw err
    }
  }
}
