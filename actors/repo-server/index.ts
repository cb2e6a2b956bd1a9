// R-SERVER: one repository server. A durable JetStream consumer feeds the sync statechart;
// verified releases are served as a NATS micro service and seeded on the swarm (seed.ts); a
// heartbeat tells every proxy the server's weight, synced revisions and load, and every client
// its swarm address.
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { Service } from '@nats-io/services'
import type { NatsConnection } from '@nats-io/transport-node'
import { createActor, fromPromise, type Actor } from 'xstate'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { z } from 'zod'
import { BUSY_SHARE, busyError } from '../../infra/nats/busy.ts'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import {
  RELEASE_STREAM, REPO_SERVICE, actorEventSubject, alertSubject, repoSubject, serverConsumer, serverHeartbeat,
} from '../../infra/nats/names.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { readRoots } from '../../infra/formats/meta-stream.ts'
import { readPruneRecords } from '../../infra/nats/prune-records.ts'
import { endpoint, startService } from '../../infra/nats/service.ts'
import { SignedReleaseSchema, UUID_RE, blobsOf, decodeRelease, encodeRelease, fileEntries, manifestSha256, type SignedRelease } from '../../infra/release/manifest.ts'
import type { TrustStore } from '../../infra/release/trust.ts'
import { TokenBucket } from '../../infra/swarm/token-bucket.ts'
import { startBulkPort, type BulkPort, type ServeRange, type ServeUnits } from './bulk.ts'
import type { HostPort } from '../../infra/swarm/transport.ts'
import { formatSize, freeBytes, isDiskFull } from '../../infra/store/disk-space.ts'
import { serverSyncMachine, syncState, type PendingRelease, type SyncOutcome } from '../../machines/server-sync.machine.ts'
import { RepoStore } from './repo-store.ts'
import { startMetaSync, type MetaSync } from './meta-sync.ts'
import { withObjectStream } from '../../infra/formats/tree-objects.ts'
import { MetaRequest, NodesRequest, UNITS_MAX_BYTES, UnitsRequest, WaitMs, encodeNodesReply, replyBudget } from '../../infra/formats/meta-wire.ts'
import { startSeed, type Seed } from './seed.ts'
import type { SwarmIdentity } from '../../infra/swarm/fleet.ts'
import { MAX_RANGE } from '../../infra/repo-client.ts'
import { HEARTBEAT_MS, MAX_PARKED_SHOWN, MAX_WEIGHT, type Heartbeat } from '../../infra/nats/heartbeat.ts'

export type { Seed } from './seed.ts'
export type { Heartbeat, SwarmInfo } from '../../infra/nats/heartbeat.ts'

/** Release formats this server syncs and serves (its heartbeat's `formats`, docs/formats.md §2.2). */
export const SERVED_FORMATS = [1, 2] as const

/** How long one pull waits for a release: the longest an idle server takes to see a new pin. */
export const POLL_MS = 5000
/** How often a parked release is tried again (issue 11 item 6). */
export const PARK_RETRY_MS = 10 * 60_000
/** How often a server waiting for disk space looks at it, and after how long it tries the sync anyway. */
export const SPACE_POLL_MS = 1000
export const SPACE_RETRY_MS = 60_000
/** Room a sync keeps free beyond its blobs: the release, the state file, file system overhead. */
const SPACE_MARGIN = 64 * 1024
/** How often a release message in hand is said to be still in progress (its ack wait is 60 s). */
const KEEP_ALIVE_MS = 10_000

export interface RepoServerOptions {
  nc: NatsConnection
  id: string
  dataDir: string
  weight?: number
  heartbeatMs?: number
  /** Address the swarm listener binds and the heartbeat advertises (default 127.0.0.1; port 0 = any free port). */
  swarmHost?: string
  /** The address the heartbeat advertises when it is not swarmHost (needed when binding 0.0.0.0 / ::). */
  swarmAdvertise?: string
  swarmPort?: number
  /** HyperDHT bootstrap (parseBootstrap): with it the server announces its products' and revisions' topics. */
  bootstrap?: HostPort[]
  /** The server's fleet identity (private swarms, docs/protocol.md §5). */
  swarmIdentity?: SwarmIdentity
  /** Upload limit in bytes/s for swarm pieces, NATS range replies and the bulk port together; 0 or absent = unlimited. */
  maxUploadRate?: number
  /**
   * Issue 14 item 2: the bulk port (blob ranges over HTTPS, actors/repo-server/bulk.ts). Binds
   * bulkHost (default swarmHost, else 127.0.0.1) on bulkPort (default 0: any free port); offers
   * bulkAdvertise (default swarmAdvertise) to clients. `bulk: false` runs without it: clients
   * then fetch every range over NATS.
   */
  bulk?: boolean
  bulkHost?: string
  bulkPort?: number
  bulkAdvertise?: string
  /**
   * Issue 10 item 4, no trust on first use: each product's publisher keys, from the trust file.
   * A release signed by another key is skipped; one of a product not pinned yet is skipped and
   * examined again once the file pins the product.
   */
  trust: TrustStore
  /** Tries of one release before it is parked (default DEFAULT_SYNC_ATTEMPTS) and how often parked ones are tried again. */
  syncAttempts?: number
  parkRetryMs?: number
  /** While the disk is too full for a release: how often free space is looked at, and the longest wait before a try anyway. */
  spacePollMs?: number
  spaceRetryMs?: number
  log?: (msg: string) => void
}

export interface RepoServer {
  id: string
  store: RepoStore
  actor: Actor<typeof serverSyncMachine>
  /** The format-2 side: its store and sync actor (docs/formats.md §5 step 5). */
  meta: MetaSync
  seed: Seed
  /** The bulk port (issue 14 item 2), unless started with `bulk: false`. */
  bulk: BulkPort | undefined
  heartbeat(): Heartbeat
  /** Requests and errors per endpoint of its NATS service, as the service counts them (issue 16 item 5: metrics). */
  serviceStats(): Promise<Array<{ name: string; num_requests: number; num_errors: number }>>
  close(): Promise<void>
}

/** A release message being handled: from the durable consumer, or fetched again once its product is pinned. */
interface InHand {
  data: Uint8Array
  /** Tells JetStream the copy is still going (no-op for a message fetched again). */
  working(): void
  /** The message is done with: `awaitingPin` names its product when it was skipped for want of a pin. */
  done(outcome: 'synced' | 'rejected' | 'parked', awaitingPin: string | null): Promise<void>
}

const Product = z.string().regex(UUID_RE)
const Rev = z.number().int().min(1)
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/)
/** A client's name for one range request, to withdraw it by (issue 14). */
const Ticket = z.string().regex(/^[A-Za-z0-9_-]{8,32}$/)
const Cancel = z.object({ ticket: Ticket })
/** Withdrawals remembered for requests that have not arrived yet (the oldest forgotten first). */
const MAX_EARLY_WITHDRAWALS = 4096
/** Pieces whose copies a server counts before it starts counting afresh. */
const MAX_PIECES_COUNTED = 100_000

export async function startRepoServer(opts: RepoServerOptions): Promise<RepoServer> {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(opts.id)) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `server id must be 1-64 letters, digits, - or _ (got ${JSON.stringify(opts.id)})`)
  }
  const { nc, id } = opts
  const log = opts.log ?? (() => {})
  const weight = opts.weight ?? 1
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `server ${id}: weight must be an integer from 0 to ${MAX_WEIGHT} (got ${weight})`)
  }
  const store = new RepoStore(opts.dataDir)
  await store.open()
  // A trust file that pins a root (format 3) takes rotations from UPSWARM_META (issue 10 item 7).
  opts.trust.followRoots((from) => readRoots(nc, from))
  const { blobs: os } = await openRepository(nc)
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  const durable = serverConsumer(id)
  const inHand = new Map<number, InHand>()
  /** Releases just refused because their product is not pinned: stream sequence → product. */
  const unpinned = new Map<number, string>()
  const counters = { inflight: 0, requests: 0, bytesServed: 0, bytesServedBulk: 0, rangesWithdrawn: 0, rangesBusy: 0 }
  const startedAt = new Date().toISOString()
  const uploads = new TokenBucket(opts.maxUploadRate ?? 0)
  /**
   * Issue 14: `bytes` (a range, a batch) whose turn of the upload limit would come later than 80%
   * of what its client waits is answered busy at once, with the wait, rather than left to time out
   * in the queue (the client would count this slow server as a failed one).
   */
  const refuseIfBusy = (bytes: number, waitMs: number | undefined): void => {
    if (waitMs === undefined) return
    const queuedMs = uploads.queuedSeconds(bytes) * 1000
    if (queuedMs <= waitMs * BUSY_SHARE) return
    counters.rangesBusy++
    throw busyError(id, queuedMs, waitMs)
  }
  /** Disk writes in progress: close() waits for them, so nothing writes to the data dir after it. */
  const writing = new Set<Promise<unknown>>()
  const whileWriting = <A, T>(fn: (args: A) => Promise<T>) => (args: A): Promise<T> => {
    const p = fn(args)
    writing.add(p)
    p.then(() => writing.delete(p), () => writing.delete(p))
    return p
  }
  // Assigned before the sync actor starts, the only user of it below.
  let seed!: Seed
  /** The release the server cannot sync for want of disk space, shown by the heartbeat (and `stats`). */
  let stalled: NonNullable<Heartbeat['stalled']> | null = null

  const machine = serverSyncMachine.provide({
    actions: {
      beat: () => publishHeartbeat(),
      keepAlive: ({ context }) => { if (context.pending) inHand.get(context.pending.seq)?.working() },
    },
    actors: {
      // A server (re)starts from what its own disk holds: a wiped server replays everything.
      prepareConsumer: fromPromise<void, { serverId: string }>(async () => {
        const config = {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          max_ack_pending: 1,
          ack_wait: 60_000_000_000,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: store.lastSeq + 1,
        }
        const existing = await jsm.consumers.info(RELEASE_STREAM, durable).catch(() => null)
        if (existing && existing.ack_floor.stream_seq !== store.lastSeq) await jsm.consumers.delete(RELEASE_STREAM, durable)
        if (!existing || existing.ack_floor.stream_seq !== store.lastSeq) await jsm.consumers.add(RELEASE_STREAM, config)
      }),
      nextRelease: fromPromise<PendingRelease | null, { serverId: string }>(async () => {
        await followPrunes()
        // A release skipped because its product was not pinned goes first once the trust file
        // pins the product, before the newer releases the same publish may have appended.
        const again = (await nextNowPinned()) ?? (await nextParkedDue())
        if (again) return again
        const consumer = await js.consumers.get(RELEASE_STREAM, durable)
        const msg = await consumer.next({ expires: POLL_MS })
        if (!msg) return null
        return pending(msg.seq, msg.data, {
          data: msg.data,
          working: () => msg.working(),
          async done(outcome, awaitingPin) {
            if (outcome === 'parked') {
              msg.term() // parked on the server's own disk; the retry schedule fetches it again
            } else if (outcome === 'rejected') {
              await store.markSkipped(msg.seq, awaitingPin ?? undefined)
              msg.term()
            } else {
              if (store.lastSeq < msg.seq) await store.markSkipped(msg.seq)
              await msg.ackAck()
            }
          },
        })
      }),
      syncRelease: fromPromise<SyncOutcome, { release: PendingRelease }>(whileWriting(async ({ input: { release }, signal }) => {
        const msg = inHand.get(release.seq)
        if (!msg) throw new UpswarmError('UPSWARM_E_IO', `release message ${release.seq} is no longer in hand`)
        const where = `release stream seq ${release.seq}`
        const claimed = SignedReleaseSchema.safeParse(safeJson(msg.data))
        if (!claimed.success) return { permanent: true as const, reason: `${where} is not a signed release manifest; skipped` }
        const { manifest: { product, rev }, publicKey } = claimed.data
        // Issue 10 item 4: the product's keys come from the trust file, never from the first
        // release seen. A broken trust file throws here: a retry, not a lost release.
        const refusal = await opts.trust.refusal(product, publicKey, rev)
        if (refusal) {
          if (!(await opts.trust.keysFor(product))) unpinned.set(release.seq, product)
          return { permanent: true as const, reason: `${where} (product ${product} r${rev}, key ${publicKey}) skipped: ${refusal}` }
        }
        let signed
        try {
          signed = decodeRelease(msg.data, publicKey, where)
        } catch (err) {
          return { permanent: true as const, reason: errorMessage(err) }
        }
        // Issue 10 item 5: a revision this server holds is never replaced by another manifest.
        const held = store.release(product, rev)
        if (held && held.sha !== manifestSha256(signed.manifest)) {
          return { permanent: true as const, reason: `${where} (product ${product} r${rev}, key ${publicKey}) skipped: revision ${rev} already exists with manifest ${held.sha}` }
        }
        // R-DHT-2: seed the pinned key's feed from now on, so a publisher can reach it while the blobs copy.
        void seed.seedFeed(signed.publicKey)
        // Held already (a replay after a restart): nothing to copy. An older revision not held
        // yet (skipped until its product was pinned) is synced like any other.
        if (held) return { permanent: false as const }
        // Issue 11 item 8: a pruned revision's manifest is kept (the chain stays verifiable), its
        // blobs are not copied: the object store no longer has them. Looked up on every try, so a
        // copy that failed because its blobs were being pruned ends as a manifest at the next one.
        await followPrunes()
        if (store.isPruned(product, rev)) {
          await store.markSynced(release.seq, encodeRelease(signed), signed)
          return { permanent: false as const }
        }
        // Issue 11 item 8: a release that does not fit is not started (nothing half-copied); one
        // that runs out of space half-way keeps only whole, verified blobs (BlobStore.put removes
        // its temporary file) and no record of the release. Either way the server waits for space.
        const what = `${product} r${rev} (seq ${release.seq})`
        const room = await roomFor(signed.manifest, msg.data.length)
        if (room.needed > room.free) return { permanent: false as const, noSpace: { needed: room.needed, reason: noSpaceReason(what, room) } }
        try {
          await copyAndRecord(release, signed, signal)
          // Recorded: the stall is over from this moment (the heartbeat must not say otherwise).
          if (stalled?.seq === release.seq) stalled = null
        } catch (err) {
          if (!isDiskFull(err) || signal.aborted) throw err
          const now = await roomFor(signed.manifest, msg.data.length)
          return { permanent: false as const, noSpace: { needed: now.needed, reason: `${noSpaceReason(what, now)}; the copy ran out of space: ${errorMessage(err)}` } }
        }
        return { permanent: false as const }
      })),
      checkSpace: fromPromise<boolean, { release: PendingRelease; needed: number }>(async ({ input: { needed } }) => (await freeBytes(store.dir)) >= needed),
      acknowledge: fromPromise<void, { release: PendingRelease; outcome: 'synced' | 'rejected' | 'parked'; reason?: string }>(whileWriting(async ({ input: { release, outcome, reason } }) => {
        const msg = inHand.get(release.seq)
        inHand.delete(release.seq)
        if (outcome === 'parked') {
          await store.markParked({ seq: release.seq, product: release.product, rev: release.rev, reason: reason ?? 'unknown', at: new Date().toISOString() })
          await alertAdmins(release, { type: 'release.parked', reason: reason ?? 'unknown' })
        } else {
          await store.unpark(release.seq)
        }
        const awaitingPin = unpinned.get(release.seq) ?? null
        unpinned.delete(release.seq)
        await msg?.done(outcome, awaitingPin)
      })),
    },
  })

  /** Copies the release's missing blobs into the store, verified, then records the release as synced. */
  async function copyAndRecord(release: PendingRelease, signed: SignedRelease, signal: AbortSignal): Promise<void> {
    for (const [sha, size] of blobsOf(signed.manifest)) {
      if (await store.blobs.has(sha)) continue
      signal.throwIfAborted()
      await copyBlob(sha, size, `object store (release seq ${release.seq})`, signal, `blob ${sha} of ${signed.manifest.product} r${signed.manifest.rev}`)
    }
    signal.throwIfAborted()
    await store.markSynced(release.seq, encodeRelease(signed), signed)
  }

  /** One blob from the object store into the server's store, checked against its hash and size. */
  async function copyBlob(sha: string, size: number, where: string, signal: AbortSignal, what = `blob ${sha}`): Promise<void> {
    await withObjectStream(os, sha, `${what} is not in the object store yet`, (source) => store.blobs.put(sha, source, where, size), signal, `server ${id} is stopping`)
  }

  /**
   * What syncing a release still needs on the store's file system (blobs not held yet, the
   * release, a margin), and what is free. Counting every blob as new is the bound: when that
   * fits, no blob is looked up (a release of many files would cost a stat each).
   */
  async function roomFor(manifest: SignedRelease['manifest'], releaseBytes: number): Promise<{ needed: number; free: number; blobs: number }> {
    const free = await freeBytes(store.dir)
    const all = blobsOf(manifest)
    const base = SPACE_MARGIN + 2 * releaseBytes
    let needed = base + [...all.values()].reduce((n, size) => n + size, 0)
    let blobs = all.size
    if (needed <= free) return { needed, free, blobs }
    needed = base
    blobs = 0
    for (const [sha, size] of all) {
      if (await store.blobs.has(sha)) continue
      needed += size
      blobs++
    }
    return { needed, free, blobs }
  }

  function noSpaceReason(what: string, room: { needed: number; free: number; blobs: number }): string {
    return `server ${id}: not enough free space (ENOSPC) in ${store.dir} to sync ${what}: it needs about ${formatSize(room.needed)} ` +
      `(${room.blobs} blobs not held yet), ${formatSize(room.free)} are free; nothing of it is kept half-written. ` +
      `Free some space there: the server waits and syncs it once it fits`
  }

  const actor = createActor(machine, {
    input: {
      serverId: id, heartbeatMs: opts.heartbeatMs ?? HEARTBEAT_MS, keepAliveMs: KEEP_ALIVE_MS,
      spacePollMs: opts.spacePollMs ?? SPACE_POLL_MS, spaceRetryMs: opts.spaceRetryMs ?? SPACE_RETRY_MS,
      ...(opts.syncAttempts ? { maxAttempts: opts.syncAttempts } : {}),
    },
    ...inspection(),
  })
  actor.on('release.parked', (e) => log(`parked release seq ${e.seq} (${e.product} r${e.rev}); going on with the next releases: ${e.reason}`))
  actor.on('release.synced', (e) => log(`synced ${e.product} r${e.rev} (seq ${e.seq})`))
  actor.on('release.rejected', (e) => log(`rejected release seq ${e.seq}: ${e.reason}`))
  actor.on('sync.failed', (e) => log(`sync of seq ${e.seq} failed, will retry: ${e.reason}`))
  actor.on('sync.noSpace', (e) => {
    log(`waiting for disk space: ${e.reason}`)
    const first = stalled?.seq !== e.seq
    stalled = { product: e.product, rev: e.rev, seq: e.seq, reason: e.reason.slice(0, 300), since: first ? new Date().toISOString() : stalled!.since, needed: e.needed }
    // Once per stalled release: the administrators must free space (R-STATUS-3 alert stream).
    if (first) void alertAdmins(e, { type: 'sync.no-space', reason: e.reason, needed: e.needed })
  })
  for (const done of ['release.synced', 'release.rejected', 'release.parked'] as const) actor.on(done, () => { stalled = null })
  // A note per sync state change, not per heartbeat or keep-alive (docs/ops.md).
  let noted = ''
  actor.subscribe({
    next: (snap) => {
      const state = syncState(snap.value)
      if (state === noted) return
      noted = state
      nc.publish(actorEventSubject('repo-server', id), JSON.stringify({ state, synced: store.synced }))
    },
    error: (err) => log(`sync actor failed: ${errorMessage(err)}`),
  })

  // docs/formats.md §5 step 5: the format-2 releases, from the server's own consumer of UPSWARM_META.
  const meta2 = await startMetaSync({
    nc, id, dataDir: opts.dataDir, blobs: store.blobs, os, trust: opts.trust, log,
    copyBlob: (sha, size, where, signal) => copyBlob(sha, size, where, signal),
    prunedThrough: async (product) => (await readPruneRecords(nc))?.records.get(product)?.record.through ?? 0,
  }).catch((err: unknown) => {
    // Loading the held trees read their nodes through the store's cached handles.
    store.blobs.closeHandles()
    throw err
  })
  meta2.actor.on('release2.synced', () => publishHeartbeat())

  // Issue 14: ranges waiting for their turn, by the client's ticket, and the subject their
  // clients withdraw them on (a plain message: nothing answers it).
  const tickets = new Map<string, AbortController>()
  /** Ranges sent, by blob and offset: the ones sent least often take their turn first. */
  const copiesSent = new Map<string, number>()
  // Withdrawals that came before their request (another route through the cluster), kept a while.
  const early = new Set<string>()
  const withdrawable = (ticket: string): AbortController => {
    const c = new AbortController()
    tickets.get(ticket)?.abort() // a ticket reused: the older request is withdrawn
    tickets.set(ticket, c)
    if (early.delete(ticket)) c.abort()
    return c
  }
  const cancels = nc.subscribe(repoSubject(id, 'cancel'), {
    callback: (err, msg) => {
      if (err) return
      const parsed = Cancel.safeParse(safeJson(msg.data))
      if (!parsed.success) return
      const waiting = tickets.get(parsed.data.ticket)
      if (waiting) return waiting.abort()
      if (early.size >= MAX_EARLY_WITHDRAWALS) early.delete(early.values().next().value!)
      early.add(parsed.data.ticket)
    },
  })

  /**
   * One range of a blob, for the NATS `range` request and the bulk port alike. Issue 14: the range
   * waits for its turn of the upload budget before it is read — the piece this server has sent
   * least often first, so first copies of every piece spread through the swarm while later copies
   * wait — and a client that got the piece elsewhere meanwhile withdraws it (`signal`): dropped unsent.
   */
  const serveRange: ServeRange = async ({ sha256, offset, length, waitMs, signal, into }) => {
    const size = await store.blobs.size(sha256)
    if (size === undefined) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `server ${id} has no blob ${sha256}`)
    if (offset >= size && !(offset === 0 && size === 0)) {
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `range offset ${offset} is beyond the end of blob ${sha256} (${size} bytes)`)
    }
    const n = Math.min(length, size - offset)
    const piece = `${sha256}:${offset}`
    refuseIfBusy(n, waitMs)
    try {
      await uploads.takeInTurn(n, signal, () => copiesSent.get(piece) ?? 0)
    } catch (err) {
      if (!signal?.aborted) throw err
      counters.rangesWithdrawn++
      throw new UpswarmError('UPSWARM_E_CANCELLED', `range ${offset}+${n} of blob ${sha256} withdrawn by its client before server ${id} sent it`)
    }
    if (copiesSent.size >= MAX_PIECES_COUNTED) copiesSent.clear()
    copiesSent.set(piece, (copiesSent.get(piece) ?? 0) + 1)
    const bytes = await store.blobs.readRange(sha256, offset, n, into)
    counters.bytesServed += bytes.length
    return bytes
  }
  // Issue 13 item 4: small units by the batch, in the order asked until the reply would pass
  // NODES_MAX_REPLY; what is not held is left out. Over NATS (`units`) and the bulk port alike.
  const serveUnits: ServeUnits = async ({ hashes, waitMs, signal }) => {
    const take: [string, number][] = []
    const fits = replyBudget(hashes.length)
    let i = 0
    for (; i < hashes.length; i++) {
      const size = await store.blobs.size(hashes[i]!)
      if (size === undefined || size > UNITS_MAX_BYTES) continue
      if (!fits(size)) break
      take.push([hashes[i]!, size])
    }
    const total = take.reduce((n, [, size]) => n + size, 0)
    refuseIfBusy(total, waitMs)
    try {
      await uploads.takeInTurn(total, signal)
    } catch (err) {
      if (!signal?.aborted) throw err
      throw new UpswarmError('UPSWARM_E_CANCELLED', `a batch of ${take.length} units withdrawn by its client before server ${id} sent it`)
    }
    const found = await store.blobs.readWhole(take)
    const bytes = encodeNodesReply(found, hashes.slice(i))
    counters.bytesServed += bytes.length
    return bytes
  }
  const bulk = opts.bulk === false ? undefined : await startBulkPort({
    id, dataDir: opts.dataDir, host: opts.bulkHost ?? opts.swarmHost ?? '127.0.0.1', port: opts.bulkPort ?? 0,
    ...((opts.bulkAdvertise ?? opts.swarmAdvertise) ? { advertiseHost: (opts.bulkAdvertise ?? opts.swarmAdvertise)! } : {}),
    maxRange: MAX_RANGE,
    serve: (req) => tracked(async () => {
      const bytes = await serveRange(req)
      counters.bytesServedBulk += bytes.length
      return bytes
    }),
    serveUnits: (req) => tracked(async () => {
      const bytes = await serveUnits(req)
      counters.bytesServedBulk += bytes.length
      return bytes
    }),
    log,
  }).catch(async (err: unknown) => {
    meta2.close()
    cancels.unsubscribe()
    store.blobs.closeHandles()
    throw err
  })

  const service: Service = await startService(nc, {
    name: REPO_SERVICE,
    version: '1.0.0',
    description: `upswarm repository server ${id}`,
    metadata: { id, weight: String(weight) },
    endpoints: {
      revs: endpoint(repoSubject(id, 'revs'), z.object({ product: Product }), ({ product }) => tracked(async () => {
          const revs = store.revisions(product)
          const pruned = store.pruned[product]
          return { product, server: id, latest: revs.at(-1)?.rev ?? 0, revs, ...(pruned ? { pruned } : {}) }
        })),
      manifest: endpoint(repoSubject(id, 'manifest'), z.object({ product: Product, rev: Rev }),
        ({ product, rev }) => tracked(async () => syncedRelease(product, rev).bytes)),
      sha1s: endpoint(repoSubject(id, 'sha1s'), z.object({ product: Product, rev: Rev }), ({ product, rev }) => tracked(async () => {
          const { release, sha } = syncedRelease(product, rev)
          return { product, rev, manifestSha256: sha, files: fileEntries(release.manifest).map((e) => ({ path: e.path, sha1: e.sha1 })) }
        })),
      // docs/formats.md §1.8: signed documents as received, and tree nodes by hash.
      meta: endpoint(repoSubject(id, 'meta'), MetaRequest, (req) => tracked(() => meta2.meta(req))),
      nodes: endpoint(repoSubject(id, 'nodes'), NodesRequest, (req) => tracked(async () => {
        const bytes = await meta2.nodes(req)
        counters.bytesServed += bytes.length
        return bytes
      })),
      // Issue 13 item 4: small units by the batch (a first install of many small files), in the
      // order asked until the reply would pass NODES_MAX_REPLY; what is not held is left out.
      units: endpoint(repoSubject(id, 'units'), UnitsRequest, (req) => tracked(() => serveUnits(req))),
      range: endpoint(repoSubject(id, 'range'),
        z.object({
          sha256: Hex64, offset: z.number().int().min(0), length: z.number().int().min(1).max(MAX_RANGE), ticket: Ticket.optional(),
          // How long the client waits for this answer (issue 14): never let it time out in the queue.
          waitMs: WaitMs.optional(),
        }),
        ({ sha256, offset, length, ticket, waitMs }) => tracked(async () => {
          // Registered before anything is awaited: a withdrawal that follows the request is seen.
          const withdrawn = ticket ? withdrawable(ticket) : undefined
          try {
            return await serveRange({ sha256, offset, length, ...(waitMs !== undefined ? { waitMs } : {}), ...(withdrawn ? { signal: withdrawn.signal } : {}) })
          } finally {
            if (ticket && tickets.get(ticket) === withdrawn) tickets.delete(ticket)
          }
        })),
      // Issue 14 item 2: where and how to fetch ranges over the bulk port (infra/http/bulk-wire.ts).
      bulk: endpoint(repoSubject(id, 'bulk'), z.object({}), () => tracked(async () => {
        if (!bulk) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `server ${id} has no bulk port (started with bulk: false)`)
        return bulk.offer()
      })),
    },
  }).catch(async (err: unknown) => {
    // Nothing started here outlives a failed start: the bulk port and the follows are closed.
    await bulk?.close()
    meta2.close()
    cancels.unsubscribe()
    store.blobs.closeHandles()
    throw err
  })

  function pending(seq: number, data: Uint8Array, hand: InHand): PendingRelease {
    let product = ''
    let rev = 0
    const release = SignedReleaseSchema.safeParse(safeJson(data))
    // Malformed: syncRelease will reject it with the reason.
    if (release.success) ({ product, rev } = release.data.manifest)
    inHand.set(seq, hand)
    return { seq, product, rev }
  }

  /**
   * Issue 11 items 6 and 8 (R-STATUS-3): the administrators learn of a parked release, or of one
   * waiting for disk space, on the alert stream. Best effort: the park is on disk and the park or
   * the stall in every heartbeat whatever happens here.
   */
  async function alertAdmins(release: PendingRelease, body: { type: 'release.parked' | 'sync.no-space'; reason: string; needed?: number }): Promise<void> {
    const alert = { ...body, server: id, product: release.product, rev: release.rev, seq: release.seq, at: new Date().toISOString() }
    await js.publish(alertSubject(release.product || 'unknown', id), JSON.stringify(alert))
      .catch((err: unknown) => log(`cannot alert the administrators (${body.type}) of release seq ${release.seq}: ${errorMessage(err)}`))
  }

  /** A parked release whose retry is due, fetched again from the stream (oldest first). */
  async function nextParkedDue(): Promise<PendingRelease | null> {
    const due = store.parked.find((p) => Date.now() - Date.parse(p.at) >= (opts.parkRetryMs ?? PARK_RETRY_MS) && !inHand.has(p.seq))
    if (!due) return null
    const stored = await jsm.streams.getMessage(RELEASE_STREAM, { seq: due.seq }).catch(() => null)
    if (!stored) {
      log(`parked release seq ${due.seq} (${due.product} r${due.rev}) is no longer in the stream; forgetting it`)
      await store.unpark(due.seq)
      return null
    }
    log(`trying parked release seq ${due.seq} (${due.product} r${due.rev}) again`)
    return pending(due.seq, stored.data, { data: stored.data, working: () => {}, async done() {} })
  }

  /** The oldest release skipped for want of a pin whose product the trust file pins now, fetched again. */
  async function nextNowPinned(): Promise<PendingRelease | null> {
    const awaiting = store.awaitingPin
    for (const product of await opts.trust.pinnedAmong(Object.keys(awaiting))) {
      const seq = awaiting[product]![0]!
      const stored = await jsm.streams.getMessage(RELEASE_STREAM, { seq })
      if (!stored) {
        log(`release stream seq ${seq} (product ${product}), skipped until its product was pinned, is no longer in the stream`)
        await store.examined(product, seq)
        continue
      }
      log(`examining release stream seq ${seq} again: product ${product} is pinned now`)
      return pending(seq, stored.data, {
        data: stored.data,
        working: () => {},
        async done(_outcome, awaitingPin) {
          // Unpinned again meanwhile: it keeps waiting; otherwise it has had its examination.
          if (!awaitingPin) await store.examined(product, seq)
        },
      })
    }
    return null
  }

  /**
   * Issue 11 item 8: takes up the prune records appended since the last look (one STREAM.INFO
   * when nothing changed) and drops the blobs that only pruned revisions used.
   */
  async function followPrunes(): Promise<void> {
    const fresh = await readPruneRecords(nc, store.pruneSeq)
    if (!fresh) return
    const ranges = Object.fromEntries([...fresh.records].map(([p, { record }]) => [p, { through: record.through, at: record.at }]))
    const dropped = await store.applyPrunes(ranges, fresh.lastSeq, (isPruned, candidates, kept) => meta2.store.references(isPruned, candidates, kept))
    await meta2.store.markPruned(Object.fromEntries(Object.entries(store.pruned).map(([p, r]) => [p, r.through])), dropped.removed)
    seed.pruned(Object.fromEntries(Object.entries(ranges).map(([p, r]) => [p, r.through])), dropped.removed)
    for (const [p, r] of Object.entries(ranges)) log(`prune record: ${p} r1 … r${r.through} pruned at ${r.at}`)
    if (dropped.removed.length > 0) log(`dropped ${dropped.removed.length} blobs (${dropped.bytes} bytes) that only pruned revisions used`)
  }

  function syncedRelease(product: string, rev: number) {
    const found = store.release(product, rev)
    if (!found) throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `server ${id} has no synced revision ${rev} of ${product}`)
    return found
  }

  async function tracked<T>(fn: () => Promise<T>): Promise<T> {
    counters.requests++
    counters.inflight++
    try {
      return await fn()
    } catch (err) {
      if (!isUpswarmError(err)) log(`request failed: ${errorMessage(err)}`)
      throw err
    } finally {
      counters.inflight--
    }
  }

  try {
    seed = await startSeed({
      store,
      dataDir: opts.dataDir,
      host: opts.swarmHost ?? '127.0.0.1',
      port: opts.swarmPort ?? 0,
      ...(opts.swarmAdvertise ? { advertiseHost: opts.swarmAdvertise } : {}),
      ...(opts.bootstrap ? { bootstrap: opts.bootstrap } : {}),
      ...(opts.swarmIdentity ? { swarmIdentity: opts.swarmIdentity } : {}),
      uploadBucket: uploads,
      trust: opts.trust,
      log,
    })
  } catch (err) {
    meta2.close()
    cancels.unsubscribe()
    await service.stop().catch(() => {})
    await bulk?.close()
    store.blobs.closeHandles()
    throw err
  }

  const parkedInfo = (): Heartbeat['parked'] => store.parked.slice(-MAX_PARKED_SHOWN).map(({ product, rev, seq, reason, at }) => ({ product, rev, seq, reason: reason.slice(0, 300), at }))
  const prunedInfo = (): Record<string, number> => Object.fromEntries(Object.entries(store.pruned).map(([p, r]) => [p, r.through]))
  const heartbeat = (): Heartbeat => ({
    id, weight, synced: store.synced, ...counters, startedAt, swarm: seed.info(), parked: parkedInfo(), pruned: prunedInfo(), ...(stalled ? { stalled } : {}),
    formats: [...SERVED_FORMATS], synced2: meta2.store.synced,
  })
  // Sent by the machine's heartbeat region on its clock, and at once when what it says changes.
  const publishHeartbeat = (): void => nc.publish(serverHeartbeat(id), JSON.stringify(heartbeat()))
  actor.on('release.synced', (e) => {
    seed.synced(e.product, e.rev)
    publishHeartbeat()
  })
  // Proxies (and so `stats`) learn of a stall at once, not at the next beat.
  actor.on('sync.noSpace', () => publishHeartbeat())
  actor.start()

  return {
    id,
    store,
    actor,
    meta: meta2,
    seed,
    bulk,
    heartbeat,
    serviceStats: async () => (await service.stats()).endpoints ?? [],
    async close() {
      try {
        actor.send({ type: 'stop' })
        actor.stop() // aborts a blob copy in progress
        meta2.close()
        cancels.unsubscribe()
        for (const c of tickets.values()) c.abort()
        await service.stop().catch(() => {})
        await bulk?.close()
        await seed.close()
        await Promise.allSettled([...writing])
      } finally {
        // The read handles the store keeps for serving ranges and units: closed, not left to the
        // garbage collector (which closes a lost handle with a warning, whenever it runs), also
        // when a step above failed.
        store.blobs.closeHandles()
      }
    },
  }
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return undefined
  }
}
