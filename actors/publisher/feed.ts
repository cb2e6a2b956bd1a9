// R-DHT-2: after a release is on the release stream, publish brings the publisher key's release
// feed up to it. A publish machine is often throw-away, so the feed is caught up from the
// servers that seed it (found through their heartbeats, dialled directly), appended to, and
// publish returns once a server holds the new blocks.
//
// The feed's content is a function of the release stream alone: the releases signed by this
// key, in stream order, each one that raises its product's revision. Every publisher appends
// exactly the next releases of that sequence, so two publishers that race, or one that repeats
// the append of a crashed one, write the same blocks with the same (deterministic Ed25519)
// signatures and never fork the feed; and a release that reached the stream but not the feed
// is appended by the next publish, before its own.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { DeliverPolicy, jetstream, type JetStreamClient } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { z } from 'zod'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import { RELEASE_READ_STREAM, RELEASE_STREAM, RELEASE_SUBJECTS, SERVER_HEARTBEATS, releaseSubject } from '../../infra/nats/names.ts'
import { isNoResponders, withRetry } from '../../infra/nats/retry.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'
import { decodeRelease, manifestSha256, type SignedRelease } from '../../infra/release/manifest.ts'
import { REV_HEADER, readReleaseChain } from '../../infra/release/release-log.ts'
import { MAX_RELEASE_BLOCK_BYTES, openFeed, type FeedEntry, type ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import type { SwarmIdentity } from '../../infra/swarm/fleet.ts'
import { SwarmTransport } from '../../infra/swarm/transport.ts'
import { HEARTBEAT_MS, HeartbeatForFeed } from '../../infra/nats/heartbeat.ts'

export const DEFAULT_SERVER_WAIT_MS = 2000
export const DEFAULT_FEED_TIMEOUT_MS = 15_000
/** Heartbeats are listened to this long at least, so that every live server is dialled. */
const LISTEN_MS = Math.round(HEARTBEAT_MS * 1.5)
/** After the first server holds the new blocks, how long the others connected get to copy them. */
const SPREAD_MS = 2000
/** Catch-up rounds when a server turns out to hold a longer feed than the one caught up from. */
const MAX_CATCH_UP_ROUNDS = 3
const STREAM_READ_MS = 5000
/** JetStream keeps the publish's message id (the manifest's SHA-256) in this header. */
const MSG_ID_HEADER = 'Nats-Msg-Id'

/** What `publish` reports about the release feed. */
export type FeedOutcome =
  /** `added`: blocks this publish appended (earlier missing releases included); `servers`: servers that hold them. */
  | { appended: true; length: number; added: number; servers: number }
  | { appended: false; reason: string }

export interface FeedPublishOptions {
  nc: NatsConnection
  key: PublisherKey
  /** The release that must end up in the feed, and its sequence in the release stream. */
  release: SignedRelease
  seq: number
  /** Feed storage; default a temporary directory removed afterwards. */
  feedDir?: string
  /** How long to listen to heartbeats for a server that seeds this key's feed. */
  serverWaitMs?: number
  /** Time limit of the catch-up and of the wait for a server to hold the new blocks. */
  timeoutMs?: number
  /** A fleet identity (issue 10 item 9): servers replicate the feed of a key that signs a private product to fleet members only. */
  swarmIdentity?: SwarmIdentity
}


/** Brings the feed up to `release`; never throws: the release stream already holds it. */
export async function publishToFeed(opts: FeedPublishOptions): Promise<FeedOutcome> {
  const temp = opts.feedDir === undefined ? await mkdtemp(join(tmpdir(), 'upswarm-feed-')) : null
  const storageDir = opts.feedDir ?? temp!
  const timeoutMs = opts.timeoutMs ?? DEFAULT_FEED_TIMEOUT_MS
  let feed: ReleaseFeed | undefined
  let transport: SwarmTransport | undefined
  let servers: ServerDialer | undefined
  try {
    feed = await openFeed({ storageDir, publisherPublicKey: opts.key.publicKey, writerKey: opts.key })
    const f = feed
    transport = new SwarmTransport({
      keyPair: opts.swarmIdentity?.keyPair ?? NoiseSecretStream.keyPair(),
      onConnection: (stream) => f.replicate(stream),
      fleet: { identity: opts.swarmIdentity ?? null, admit: 'anyone' },
    })
    servers = dialSeedingServers(opts.nc, transport, opts.key.publicKey)
    const reached = await servers.first(opts.serverWaitMs ?? DEFAULT_SERVER_WAIT_MS, timeoutMs)
    if (!reached.ok) return { appended: false, reason: reached.reason }

    await feed.update({ minPeers: 1, timeoutMs })
    let added = 0
    for (let round = 1; ; round++) {
      try {
        await appendFromStream(opts.nc, feed, opts.key.publicKey, opts.seq, timeoutMs, () => { added++ })
        break
      } catch (err) {
        const behind = isUpswarmError(err, 'UPSWARM_E_PUBLISH') && err.details?.reason === 'behind'
        if (!behind || round >= MAX_CATCH_UP_ROUNDS) throw err
        await feed.update({ minPeers: 1, timeoutMs })
      }
    }
    const { product, rev } = opts.release.manifest
    const mine = feed.releases(product).find((e) => e.rev === rev)
    if (!mine || mine.manifestSha256 !== manifestSha256(opts.release.manifest)) {
      return { appended: false, reason: `the release feed of key ${opts.key.publicKey} does not hold this release of ${product} r${rev}: ${describe(feed.latest(product))}` }
    }
    await feed.waitForRemote(feed.length, { timeoutMs })
    // One server holding the blocks is success; every server reached gets a moment to copy them.
    await servers.settled(LISTEN_MS)
    await feed.waitForRemote(feed.length, { all: true, timeoutMs: SPREAD_MS }).catch(() => {})
    return { appended: true, length: feed.length, added, servers: feed.remotesHolding(feed.length) }
  } catch (err) {
    return { appended: false, reason: `${errorMessage(err)}; the next publish appends this release too` }
  } finally {
    servers?.stop()
    await transport?.close()
    await feed?.close().catch(() => {})
    if (temp) await rm(temp, { recursive: true, force: true })
  }
}

function describe(entry: FeedEntry | undefined): string {
  return entry ? `its newest release of the product is r${entry.rev} (${entry.manifestSha256})` : 'it holds no release of the product'
}

export interface ServerDialer {
  /**
   * Resolves once a server seeding the feed is connected, or with why none was: none heard
   * within `waitMs`, or none of those heard connected within `dialMs` (a loaded machine's
   * handshakes outlast `waitMs`; giving up then would leave the feed a release behind).
   */
  first(waitMs: number, dialMs: number): Promise<{ ok: true } | { ok: false; reason: string }>
  /** Resolves once heartbeats were listened to for `listenMs` and no dial is in progress. */
  settled(listenMs: number): Promise<void>
  stop(): void
}

/**
 * Listens to the servers' heartbeats and dials every server whose heartbeat says it seeds this
 * key's feed, for as long as the publish runs: servers heard late still get the new blocks.
 */
export function dialSeedingServers(nc: NatsConnection, transport: Pick<SwarmTransport, 'dial'>, publisherKey: string): ServerDialer {
  const started = performance.now()
  const heard = new Set<string>()
  const seeding = new Set<string>()
  const dialled = new Set<string>()
  const dialling = new Set<Promise<unknown>>()
  const failures: string[] = []
  let connected = false
  let onConnected: (() => void) | null = null
  const sub = nc.subscribe(SERVER_HEARTBEATS, {
    callback: (err, msg) => {
      if (err) return
      let hb: z.infer<typeof HeartbeatForFeed>
      try {
        hb = HeartbeatForFeed.parse(msg.json())
      } catch {
        return // a server without a swarm side, or not a heartbeat
      }
      heard.add(hb.id)
      if (!hb.swarm.feeds.includes(publisherKey)) return
      seeding.add(hb.id)
      if (dialled.has(hb.swarm.publicKey)) return
      dialled.add(hb.swarm.publicKey)
      const dial = transport.dial(hb.swarm.host, hb.swarm.port, { remotePublicKey: Buffer.from(hb.swarm.publicKey, 'hex') }).then(() => {
        connected = true
        onConnected?.()
      }, (e: unknown) => {
        dialled.delete(hb.swarm.publicKey) // its next heartbeat retries
        failures.push(`server ${hb.id} at ${hb.swarm.host}:${hb.swarm.port}: ${errorMessage(e)}`)
      })
      dialling.add(dial)
      void dial.finally(() => dialling.delete(dial))
    },
  })
  return {
    async first(waitMs, dialMs) {
      const until = (ms: number): Promise<void> => new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, ms - (performance.now() - started)))
        onConnected = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      if (!connected) await until(waitMs)
      // A seeding server was heard: its dial (retried at each heartbeat) gets until dialMs.
      if (!connected && seeding.size > 0) await until(Math.max(waitMs, dialMs))
      onConnected = null
      if (connected) return { ok: true }
      const why = heard.size === 0
        ? `no repository server heartbeat within ${waitMs} ms`
        : seeding.size === 0
          ? `none of the ${heard.size} repository server(s) heard within ${waitMs} ms seeds the release feed of key ${publisherKey} yet`
          : `none of the ${seeding.size} server(s) seeding the release feed of key ${publisherKey} could be reached within ${Math.max(waitMs, dialMs)} ms` +
            (failures.length ? `; dialling failed: ${failures.slice(-3).join('; ')}` : '')
      return { ok: false, reason: `${why}; the next publish appends this release too` }
    },
    async settled(listenMs) {
      const left = listenMs - (performance.now() - started)
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left))
      await Promise.allSettled([...dialling])
    },
    stop() {
      sub.unsubscribe()
    },
  }
}

/**
 * Appends to the feed the releases of the stream that belong in it and are not there yet, up
 * to stream sequence `untilSeq`, in stream order (the rule in the file header).
 */
async function appendFromStream(nc: NatsConnection, feed: ReleaseFeed, publisherKey: string, untilSeq: number, waitMs: number, onAppended: () => void): Promise<void> {
  const started = performance.now()
  const js = jetstream(nc)
  const startSeq = (await streamSeqOf(nc, feed.releases().at(-1), publisherKey)) + 1
  if (startSeq > untilSeq) return
  const consumer = await withRetry(() => js.consumers.get(RELEASE_READ_STREAM, {
    filter_subjects: RELEASE_SUBJECTS,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: startSeq,
  }), { attempts: 10 })
  try {
    for (let seq = startSeq - 1; seq < untilSeq;) {
      const msg = await withRetry(() => consumer.next({ expires: STREAM_READ_MS }), { attempts: 10, retryable: isNoResponders })
      if (!msg) {
        // The readers' stream is a mirror: on a loaded cluster it can lag the release just acked.
        if (performance.now() - started < waitMs) continue
        throw new UpswarmError('UPSWARM_E_TIMEOUT', `the release stream's mirror ${RELEASE_READ_STREAM} did not deliver sequence ${seq + 1} (up to ${untilSeq}) within ${Math.round(performance.now() - started)} ms`)
      }
      seq = msg.seq
      if (msg.data.byteLength > MAX_RELEASE_BLOCK_BYTES) continue
      let release: SignedRelease
      try {
        release = decodeRelease(msg.data, publisherKey, `release stream seq ${msg.seq}`)
      } catch {
        continue // another key's release, or one no reader would accept
      }
      if (release.manifest.rev <= (feed.latest(release.manifest.product)?.rev ?? 0)) continue
      if ((await feed.append(msg.data)).appended) onAppended()
    }
  } finally {
    await consumer.delete().catch(() => {})
  }
}

/**
 * The stream sequence of the release of a feed entry, or 0 (read from the start) for an empty
 * feed or one whose newest release is not found in the stream.
 */
async function streamSeqOf(nc: NatsConnection, entry: FeedEntry | undefined, publisherKey: string): Promise<number> {
  if (!entry) return 0
  // Junk or another key's release on that product's subject is skipped (issue 10 item 5): it
  // must not stop the feed of this key's other products.
  const { head } = await withRetry(() => readReleaseChain(nc, entry.product, (k) => k === publisherKey), { attempts: 10 })
  if (!head) return 0
  if (head.release.manifest.rev === entry.rev) return head.manifestSha256 === entry.manifestSha256 ? head.seq : 0
  return findRevSeq(jetstream(nc), entry.product, entry.rev, entry.manifestSha256)
}

/**
 * Scans a product's subject, headers only, for the first message of revision `rev` carrying
 * `sha` as its message id (other messages on the subject may claim the same revision).
 */
async function findRevSeq(js: JetStreamClient, product: string, rev: number, sha: string): Promise<number> {
  const consumer = await withRetry(() => js.consumers.get(RELEASE_READ_STREAM, {
    filter_subjects: releaseSubject(product),
    deliver_policy: DeliverPolicy.All,
    headers_only: true,
  }), { attempts: 10 })
  try {
    for (;;) {
      const msg = await withRetry(() => consumer.next({ expires: STREAM_READ_MS }), { attempts: 10, retryable: isNoResponders })
      if (!msg) return 0
      if (Number(msg.headers?.get(REV_HEADER)) === rev && msg.headers?.get(MSG_ID_HEADER) === sha) return msg.seq
      if (msg.info.pending === 0) return 0
    }
  } finally {
    await consumer.delete().catch(() => {})
  }
}
