// The publish command: check the product is this key's (trust file, stream), scan a tree, upload
// only new blobs to the object store, append one signed release to the release stream with the
// next revision (optimistic concurrency), then bring the publisher key's release feed up to it
// (feed.ts, R-DHT-2). When the root's `formats` for the product holds 2 (docs/formats.md §2.2,
// issue 13 item 3), the same scan pass also cuts the chunks, the tree's nodes go to the object
// store beside the blobs, and the signed format-2 release is appended first (the serialization
// point), then the format-1 manifest of the same revision if `formats` holds 1.
import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import { JetStreamApiCodes, JetStreamApiError, jetstream } from '@nats-io/jetstream'
import type { ObjectStore } from '@nats-io/obj'
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, errorMessage, type ErrorCode } from '../../infra/errors.ts'
import { META_STREAM, RELEASE_STREAM, releaseSubject } from '../../infra/nats/names.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { withRetry } from '../../infra/nats/retry.ts'
import { acquirePublishLease, type LeaseHolder } from '../../infra/nats/leases.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'
import {
  UUID_RE, canonicalJson, encodeRelease, fileEntries, manifestSha256, signManifest,
  type Entry, type Manifest, type SignedRelease,
} from '../../infra/release/manifest.ts'
import { REV_HEADER, readReleaseChain, type SkippedMessage } from '../../infra/release/release-log.ts'
import { readSmall, scanTree } from '../../infra/release/scan.ts'
import { loadTrust, pinProduct, pinnedElsewhere, trustedKeys } from '../../infra/release/trust.ts'
import { newestRoot } from '../../infra/formats/meta-stream.ts'
import { productKeys } from '../../infra/formats/root.ts'
import { DEFAULT_CHUNKER, signRelease } from '../../infra/formats/release.ts'
import { appendRelease2, newestRelease2 } from '../../infra/formats/release-stream.ts'
import { buildTree } from '../../infra/formats/tree-builder.ts'
import { makeDeltas, type DeltaSet } from './deltas.ts'
import { packListNode, readPackIndex, uploadPacks, type PackIndex, type UnitSource } from '../../infra/formats/pack-objects.ts'
import { PACK_UNIT_MAX } from '../../infra/formats/pack.ts'
import type { PackRef } from '../../infra/formats/tree-node.ts'
import { mark } from '../../infra/timings.ts'
import { format1Entries, uploadNodes, walkStoredTree } from '../../infra/formats/tree-objects.ts'
import { timeString } from '../../infra/formats/envelope.ts'
import type { SwarmIdentity } from '../../infra/swarm/fleet.ts'
import { publishToFeed, type FeedOutcome } from './feed.ts'
import { createActor, fromPromise, toPromise, type ActorOptions, type AnyActorLogic } from 'xstate'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { publishMachine, type ChainRead, type Claim, type Head2, type PublishFailure, type PublishOutput, type ScannedTree } from '../../machines/publish.machine.ts'
import { eachLimited } from '../../infra/parallel.ts'

/**
 * docs/formats.md §2.2: the largest format-1 manifest a publish writes (8 MiB − 64 KiB, under the
 * streams' `max_msg_size`); past it the product must end format-1 compatibility.
 */
export const V1_MAX_BYTES = 8 * 1024 * 1024 - 64 * 1024

export interface PublishOptions {
  nc: NatsConnection
  src: string
  product: string
  key: PublisherKey
  label?: string
  /**
   * Trust file (issue 10 item 4): a product not in it is pinned to this key before anything is
   * written; a product pinned to other keys is refused.
   */
  trust?: string
  /**
   * Issue 10 item 9: mark the product private in the trust file (needs `trust`) before anything is
   * written, so servers reading that file never serve its first release to outsiders.
   */
  private?: boolean
  /** The fleet identity the release feed is pushed with: needed when the key signs a private product (servers replicate its feed to members only). */
  swarmIdentity?: SwarmIdentity
  /** Release feed storage; default a temporary directory, removed afterwards. */
  feedDir?: string
  /** Write the release stream only (the feed is brought up to date by the next publish). */
  skipFeed?: boolean
  /** How long to listen to server heartbeats for one that seeds the feed (default 2000 ms). */
  serverWaitMs?: number
  /** Time limit of the feed catch-up and of a server's copy of the new blocks (default 15 s). */
  feedTimeoutMs?: number
  onProgress?: (p: { phase: 'scan' | 'upload' | 'deltas' | 'feed'; done: number; total?: number; bytes: number }) => void
  /** An XState inspection observer for the publish's actor (live inspection, issue 12). */
  inspect?: ActorOptions<AnyActorLogic>['inspect']
  /** Issue 11 item 8: a prune is running; the publish waits for it before it checks the blobs. */
  onWaitingForPrune?: (prune: LeaseHolder) => void
  /** Called after the blobs are in the store and before the release is appended (tests interleave here). */
  beforeAppend?: () => Promise<void>
  /** Format 2 with 1: called between the format-2 append and the format-1 one (tests fail here to leave a gap). */
  betweenAppends?: () => Promise<void>
  /** The format-1 manifest cap (default V1_MAX_BYTES; tests lower it). */
  v1MaxBytes?: number
}

export interface PublishResult {
  product: string
  rev: number
  label: string | null
  /** The format-1 manifest's hash; null when the product publishes format 2 only. */
  manifestSha256: string | null
  files: number
  bytes: number
  newBlobs: number
  newBytes: number
  /** Format 2: the release (its id, revision, stream sequence, top tree node) and the nodes uploaded. */
  release2?: { id: string; rev: number; seq: number; tree: string; nodes: number; newNodes: number }
  /**
   * Issue 15: the deltas the format-2 release names (count, their bytes, the bytes of the files they
   * stand for), or `deltaWarning` when they could not be made (clients then fetch changed files whole).
   */
  deltas?: { count: number; bytes: number; targetBytes: number; indexes: number; uploaded: number }
  deltaWarning?: string
  /** The release formats this publish wrote (the root's `formats` for the product; [1] without a root). */
  formats: number[]
  /** True when the tree equals the newest release: nothing new was appended. */
  unchanged: boolean
  /** The format-1 release; undefined when the product publishes format 2 only. */
  release?: SignedRelease
  /** Messages on the product's subject that are not its releases (junk, other keys, replays): skipped. */
  skipped: SkippedMessage[]
  /** True when this publish pinned the product to its key in the trust file. */
  pinned: boolean
  /**
   * The release feed: appended (the feed holds this release and a server holds the feed up to
   * `length`; `added` blocks were appended, earlier missing releases included) or why not.
   */
  feed: FeedOutcome
}

const wrongLastSequence = (err: unknown): boolean =>
  err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence

/** The publish statechart (machines/publish.machine.ts) wired to JetStream, the tree and the feed. */
function wiredPublishMachine(opts: PublishOptions, product: string, os: ObjectStore, lease: { current?: Awaited<ReturnType<typeof acquirePublishLease>> }) {
  const js = jetstream(opts.nc)
  const wants = (claim: Claim, format: number): boolean => (claim.formats ?? [1]).includes(format)
  /** This publish emits format 2 (learnt by the scan, from the claim). */
  let formats2 = false
  /** Issue 13 item 4: format 2 only, so small units go into packs (format-1 servers need each blob as an object). */
  let packed = false
  /** The packs of the newest format-2 release, read once (what is stored already; deltas' bases). */
  let previousPacks: Promise<PackIndex> | undefined
  const packIndex = (): Promise<PackIndex> => (previousPacks ??= (async () => {
    const stored2 = await withRetry(() => newestRelease2(opts.nc, product, { leader: true }), { attempts: 30 })
    return readPackIndex(os, stored2?.signed.release.packs)
  })())
  const deltaCache = new Map<string, DeltaSet>()
  // A lease lost (this process paused past its lifetime) may have let a prune delete blobs this
  // release names: append nothing.
  const checkLease = async (): Promise<void> => {
    if (lease.current && !(await lease.current.held())) {
      throw new UpswarmError('UPSWARM_E_PUBLISH', `the publish of ${product} lost its lease on the blob store (not renewed in time: was this process paused?), so a prune may have removed blobs it relies on; nothing was appended. Run the publish again`)
    }
  }
  // The message id dedups a retry of these exact bytes; the expected last subject sequence (of
  // the last message, junk included) makes two publishers racing for revision N fail all but
  // one, so a revision number is never used twice.
  const append1 = (release: SignedRelease, lastSeq: number) => withRetry(
    () => js.publish(releaseSubject(product), encodeRelease(release), {
      msgID: manifestSha256(release.manifest),
      expect: { lastSubjectSequence: lastSeq },
      headers: revHeaders(release.manifest.rev),
      timeout: 5000,
    }),
    { attempts: 30, retryable: (err) => !wrongLastSequence(err) },
  )
  return publishMachine.provide({
    actors: {
      claim: fromPromise(() => claimProduct(opts, product)),
      // docs/formats.md §1.7: with format 2 the chunks are cut in the same read pass as the hashes.
      scan: fromPromise(async ({ input }: { input: { claim: Claim } }): Promise<ScannedTree> => {
        const v2 = wants(input.claim, 2)
        formats2 = v2
        packed = v2 && !wants(input.claim, 1)
        const scanned = await scanTree(opts.src, {
          ...(v2 ? { chunker: DEFAULT_CHUNKER } : {}),
          onProgress: (p) => opts.onProgress?.({ phase: 'scan', done: p.files, bytes: p.bytes }),
        })
        if (!v2) return scanned
        const tree2 = buildTree(scanned.entries.map((e) => (e.kind === 'file' && scanned.chunks.has(e.path) ? { ...e, chunks: scanned.chunks.get(e.path)! } : e)), DEFAULT_CHUNKER)
        return { ...scanned, tree2 }
      }),
      // Issue 11 item 8: from the check of which blobs the store holds until the release naming them
      // is appended, a lease keeps any prune from deleting them (infra/nats/leases.ts); the publish
      // releases it when it ends, whichever way.
      upload: fromPromise(async ({ input }: { input: { tree: ScannedTree } }) => {
        lease.current ??= await acquirePublishLease(opts.nc, `publish ${product}`, opts.onWaitingForPrune ? { onWaiting: opts.onWaitingForPrune } : {})
        if (packed) {
          mark('publish: scanned')
          const previous = await packIndex()
          mark('publish: previous packs read')
          // The nodes as objects of their own and the packs are independent: side by side.
          const [{ packs, newPacks, blobs }, nodes] = await Promise.all([
            uploadPacked(os, previous, input.tree.entries, input.tree.files, input.tree.tree2!.nodes, opts.onProgress).finally(() => mark('publish: packs uploaded')),
            uploadNodes(os, input.tree.tree2!.nodes).finally(() => mark('publish: nodes uploaded')),
          ])
          return { ...blobs, newNodes: nodes.newNodes, packs, newPacks }
        }
        const blobs = await uploadBlobs(os, input.tree.entries, input.tree.files, opts.onProgress)
        if (!input.tree.tree2) return blobs
        const nodes = await uploadNodes(os, input.tree.tree2.nodes)
        return { ...blobs, newNodes: nodes.newNodes }
      }),
      // Issue 10 item 5: numbered from the newest release that verifies under a trusted key;
      // junk, other keys' releases and replays on the subject are skipped and reported.
      readChain: fromPromise(async ({ input }): Promise<ChainRead> => {
        const chain = await withRetry(() => readReleaseChain(opts.nc, product, (k) => input.claim.keys.includes(k)), { attempts: 30 })
        const head = chain.head
        const v2 = wants(input.claim, 2)
        const stored2 = v2 ? await withRetry(() => newestRelease2(opts.nc, product, { leader: true }), { attempts: 30 }) : undefined
        const head2: Head2 | undefined = stored2 && {
          rev: stored2.signed.release.rev, id: stored2.signed.id, seq: stored2.seq, tree: stored2.signed.release.tree,
          ...(stored2.signed.release.label !== undefined ? { label: stored2.signed.release.label } : {}),
          ...(stored2.signed.release.v1 ? { v1: stored2.signed.release.v1 } : {}),
        }
        // docs/formats.md §2.2: the format-2 head names the format-1 manifest of its revision, and
        // the release stream's head is the revision before it: a publish died between the appends.
        const gap = !!(head2?.v1 && head?.manifestSha256 !== head2.v1 && (head?.release.manifest.rev ?? 0) === head2.rev - 1)
        const mineIsHead = !!(input.mine && head && head.manifestSha256 === manifestSha256(input.mine.manifest))
        const mine2IsHead = !!(input.mine2 && head2 && head2.id === input.mine2.id)
        const label = opts.label ?? undefined
        return {
          head,
          lastSeq: chain.lastSeq,
          skipped: chain.skipped,
          ...(head2 ? { head2 } : {}),
          gap,
          headIsOurs: v2 ? mine2IsHead && !gap && (!wants(input.claim, 1) || mineIsHead) : mineIsHead,
          headSameContent: v2
            ? !!(head2 && !gap && input.tree.tree2 && head2.tree === input.tree.tree2.top && head2.label === label && (!wants(input.claim, 1) || (head && head.manifestSha256 === head2.v1)))
            : !!(head && sameContent(head.release.manifest, input.tree.entries, opts.label)),
        }
      }),
      // docs/formats.md §2.2, gap repair: the format-1 manifest the format-2 head names, derived from
      // its tree in the object store (the same fields, the same bytes: ed25519 is deterministic).
      repair: fromPromise(async ({ input: { chain } }: { input: { chain: ChainRead } }) => {
        const head2 = chain.head2!
        const stored2 = (await newestRelease2(opts.nc, product, { leader: true }))!
        const r = stored2.signed.release
        const { entries } = await walkStoredTree(os, r.tree)
        const release = signManifest({
          format: 1, product, rev: r.rev, ...(r.label !== undefined ? { label: r.label } : {}), createdAt: r.createdAt, pieceSize: PIECE_SIZE,
          ...(chain.head ? { parent: chain.head.manifestSha256 } : {}), entries: await format1Entries(os, entries),
        }, opts.key)
        if (manifestSha256(release.manifest) !== head2.v1) {
          throw new UpswarmError('UPSWARM_E_PUBLISH',
            `format-2 release r${r.rev} of ${product} names format-1 manifest ${head2.v1}, which the release stream lacks, and the manifest derived from its tree is ${manifestSha256(release.manifest)}: ` +
            `cannot repair the gap; format-1 clients stay at r${chain.head?.release.manifest.rev ?? 0} until it is`)
        }
        await checkLease()
        await append1(release, chain.lastSeq)
      }),
      sign: fromPromise(async ({ input }: { input: { rev: number; parent: string | undefined; tree: ScannedTree } }) => {
        const release = signManifest({
          format: 1,
          product,
          rev: input.rev,
          ...(opts.label ? { label: opts.label } : {}),
          // Whole seconds, as the format-2 release of the same revision says (gap repair derives it).
          createdAt: input.tree.tree2 ? timeString(Date.now()) : new Date().toISOString(),
          pieceSize: PIECE_SIZE,
          ...(input.parent ? { parent: input.parent } : {}),
          entries: input.tree.entries,
        }, opts.key)
        // docs/formats.md §2.2: refused before anything is appended, never at the stream's limit.
        const size = encodeRelease(release).length
        const cap = opts.v1MaxBytes ?? V1_MAX_BYTES
        if (size > cap) {
          const files = fileEntries(release.manifest).length
          throw new UpswarmError('UPSWARM_E_PUBLISH',
            `product ${product} still publishes format 1 for format-1 clients; at ${files.toLocaleString('en-US').replace(/,/g, ' ')} files it cannot ` +
            `(its manifest would be ${size} bytes, over the ${cap}-byte cap): end format-1 compatibility first: \`upswarm root edit … --formats ${product}=2\` (clients of releases before format 2 then stay where they are)`,
            { details: { product, files, bytes: size, cap } })
        }
        return release
      }),
      // Issue 15: computed once per previous release (a lost race that reads the same head reuses them).
      encodeDeltas: fromPromise(async ({ input }: { input: { head2: Head2 | undefined; tree: ScannedTree } }) => {
        const key = input.head2?.tree ?? ''
        const cached = deltaCache.get(key)
        if (cached) return cached
        const made = await makeDeltas({
          os, previousTree: input.head2?.tree, tree: input.tree.tree2!, files: input.tree.files,
          ...(packed ? { packs: await packIndex() } : {}),
          onProgress: (done, total) => opts.onProgress?.({ phase: 'deltas', done, total, bytes: 0 }),
        })
        deltaCache.set(key, made)
        return made
      }),
      sign2: fromPromise(async ({ input }) => {
        const tree2 = input.tree.tree2!
        const createdAtMs = input.v1 ? Date.parse(input.v1.manifest.createdAt) : Date.now()
        // docs/formats.md §2.2: the first format-2 release names no parent, whatever its revision.
        const parent = input.head2 && input.head2.rev === input.rev - 1 ? input.head2.id : undefined
        if (input.head2 && !parent) {
          throw new UpswarmError('UPSWARM_E_PUBLISH', `format-2 release r${input.rev} of ${product} cannot follow the format-2 head r${input.head2.rev}: revisions r${input.head2.rev + 1}…r${input.rev - 1} were published without format 2`)
        }
        // Issue 13 item 4: the pack list is a node like the tree's, stored before the release names it.
        const list = packListNode(input.packs)
        if (list) await uploadNodes(os, new Map([[list.hash, list.bytes]]))
        const { bytes, id } = signRelease({
          product, rev: input.rev, ...(parent ? { parent } : {}), ...(opts.label !== undefined ? { label: opts.label } : {}),
          createdAtMs, root: input.claim.rootVersion ?? 1, tree: tree2.top, stats: tree2.stats, chunker: { ...DEFAULT_CHUNKER },
          ...(input.v1 ? { v1: manifestSha256(input.v1.manifest) } : {}), ...(input.deltas.length ? { deltas: input.deltas } : {}),
          ...(list ? { packs: list.hash } : {}),
        }, [opts.key])
        return { text: bytes.toString('utf8'), id, rev: input.rev }
      }),
      // docs/formats.md §2.2: the format-2 subject is the serialization point.
      append2: fromPromise(async ({ input }) => {
        await opts.beforeAppend?.()
        await checkLease()
        const ack = await withRetry(() => appendRelease2(opts.nc, input.release.text), { attempts: 30, retryable: (err) => !(err instanceof UpswarmError) })
        return { seq: ack.seq }
      }),
      append: fromPromise(async ({ input }: { input: { release: SignedRelease; lastSeq: number } }) => {
        // With format 2 the format-2 release was appended just before: tests may fail here to leave a gap.
        if (formats2) await opts.betweenAppends?.()
        else await opts.beforeAppend?.()
        await checkLease()
        const ack = await append1(input.release, input.lastSeq)
        return { seq: ack.seq }
      }),
      // An unchanged tree still brings the feed up to the newest release: that repairs it too.
      feed: fromPromise(async ({ input }: { input: { release: SignedRelease; seq: number } }): Promise<FeedOutcome> => opts.skipFeed
        ? { appended: false, reason: 'skipped on request (--no-feed); the next publish appends this release to the feed' }
        // Servers hand the feed of a key that signs a private product to fleet members only: without
        // an identity no server would replicate it, and waiting the feed timeout to learn so helps nobody.
        : opts.private === true && !opts.swarmIdentity
          ? { appended: false, reason: `product ${product} is private: servers replicate its key's release feed to fleet members only, and this publish has no fleet identity (--swarm-identity); the next publish with one appends this release too` }
          : publishToFeed({
            nc: opts.nc,
            key: opts.key,
            release: input.release,
            seq: input.seq,
            ...(opts.feedDir !== undefined ? { feedDir: opts.feedDir } : {}),
            ...(opts.serverWaitMs !== undefined ? { serverWaitMs: opts.serverWaitMs } : {}),
            ...(opts.feedTimeoutMs !== undefined ? { timeoutMs: opts.feedTimeoutMs } : {}),
            ...(opts.swarmIdentity ? { swarmIdentity: opts.swarmIdentity } : {}),
          })),
    },
    // appendRelease2 says UPSWARM_E_CONFLICT when another release took the revision first.
    guards: { raced: (_, error: unknown) => wrongLastSequence(error) || (error instanceof UpswarmError && error.code === 'UPSWARM_E_CONFLICT') },
  })
}

/** One publish: runs the statechart to its end; a failure is the UpswarmError its phase gave. */
export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const product = opts.product.toLowerCase()
  if (!UUID_RE.test(product)) throw new UpswarmError('UPSWARM_E_CONFIG', `--product must be a UUID (got ${JSON.stringify(opts.product)})`)
  // Every JetStream call is retried: during a node loss the cluster re-elects leaders for seconds.
  const { blobs: os } = await openRepository(opts.nc)
  const lease: { current?: Awaited<ReturnType<typeof acquirePublishLease>> } = {}
  const actor = createActor(wiredPublishMachine(opts, product, os, lease), { input: { product }, ...(opts.inspect ? { inspect: opts.inspect } : inspection()) })
  actor.on('publish.phase', (e) => {
    if (e.phase === 'feeding') opts.onProgress?.({ phase: 'feed', done: 0, bytes: 0 })
  })
  actor.start()
  actor.send({ type: 'publish.start' })
  let out: PublishOutput
  try {
    out = await toPromise(actor)
  } finally {
    await lease.current?.release()
  }
  if (out.outcome === 'failed') throw publishError(out.failure!, product)
  const { tree, claim, uploaded } = out as Required<PublishOutput>
  const { release, release2 } = out
  const files = tree.entries.filter((e) => e.kind === 'file')
  const rev = release2?.rev ?? release!.manifest.rev
  const feed: FeedOutcome = out.feed ?? { appended: false, reason: `product ${product} publishes format 2 only: its releases go to the format-2 release stream, not to the format-1 feed` }
  return {
    product,
    rev,
    label: opts.label ?? (release?.manifest.rev === rev ? release.manifest.label : undefined) ?? null,
    manifestSha256: release && release.manifest.rev === rev ? manifestSha256(release.manifest) : null,
    files: files.length,
    bytes: files.reduce((n, e) => n + (e.kind === 'file' ? e.size : 0), 0),
    newBlobs: out.appended ? uploaded.newBlobs : 0,
    newBytes: out.appended ? uploaded.newBytes : 0,
    ...(release2 && tree.tree2 ? { release2: { id: release2.id, rev: release2.rev, seq: release2.seq, tree: tree.tree2.top, nodes: tree.tree2.stats.nodes, newNodes: out.appended ? uploaded.newNodes ?? 0 : 0 } } : {}),
    ...(out.deltas?.deltas && out.appended ? { deltas: { count: out.deltas.deltas, bytes: out.deltas.deltaBytes, targetBytes: out.deltas.targetBytes, indexes: out.deltas.indexes.length, uploaded: out.deltas.uploaded } } : {}),
    ...(out.deltaWarning && out.appended ? { deltaWarning: out.deltaWarning } : {}),
    formats: claim.formats ?? [1],
    unchanged: !out.appended,
    ...(release ? { release } : {}),
    skipped: out.skipped,
    pinned: claim.pinned,
    feed,
  }
}

/** The failed phase's error as it was thrown when it already says what and where, else one naming the phase. */
function publishError(f: PublishFailure, product: string): UpswarmError {
  if (f.cause instanceof UpswarmError && f.message === f.cause.message) return f.cause
  const bare = f.message === errorMessage(f.cause)
  return new UpswarmError(f.code as ErrorCode, bare ? `the publish of ${product} failed while ${f.phase}: ${f.message}` : f.message, { cause: f.cause })
}

/**
 * Issue 10 item 4, before anything is written: the keys whose releases count as this product's.
 * A product pinned in the trust file must be pinned to this key. A product pinned nowhere must not
 * belong to another key already (its newest verified release in the stream); with a trust file it
 * is then pinned to this key, so servers reading the same file trust its first release.
 */
async function claimProduct(opts: PublishOptions, product: string): Promise<Claim> {
  const own = opts.key.publicKey
  if (opts.private && !opts.trust) throw new UpswarmError('UPSWARM_E_CONFIG', `a private product is marked in a trust file: publish ${product} with a trust file`)
  // Issue 10 item 7: a product in the root of trust is the root's; its current publish keys sign,
  // and its retired keys' releases still count for numbering (they are the history).
  const stored = await withRetry(() => newestRoot(opts.nc), { attempts: 10 })
  if (stored?.signed.root.products[product]) {
    const { current, retired } = productKeys(stored.signed.root, product)
    if (!current.includes(own)) {
      throw new UpswarmError('UPSWARM_E_CONFIG',
        `key ${own} is not a publish key of product ${product} in root version ${stored.signed.root.version} (${META_STREAM}); ` +
        `its publish keys are ${current.join(', ')}. Rotate this key in with \`upswarm root edit --rotate\` first.`, { details: { product, keys: current } })
    }
    // Servers that read a key-pinning trust file (format 1/2) learn the product from it as before;
    // one pinned to another key refuses, naming the file (the operator moves it to format 3).
    const file = opts.trust ? await loadTrust(opts.trust, { missingOk: true }) : undefined
    const pinned = opts.trust && !file?.root ? (await pinProduct(opts.trust, product, own, { private: opts.private === true })).pinned : false
    // docs/formats.md §2.2: the root decides which formats the product's releases are written in.
    const formats = stored.signed.root.products[product]!.formats ?? [1]
    return { keys: [...current, ...retired], pinned, formats, rootVersion: stored.signed.root.version }
  }
  const keys = opts.trust ? trustedKeys(await loadTrust(opts.trust, { missingOk: true }), product) : undefined
  if (keys) {
    if (!keys.includes(own)) throw pinnedElsewhere(product, keys, `trust file ${opts.trust}`)
    if (opts.private && opts.trust) await pinProduct(opts.trust, product, own, { private: true })
    return { keys, pinned: false }
  }
  const { head } = await withRetry(() => readReleaseChain(opts.nc, product, () => true), { attempts: 30 })
  if (head && head.release.publicKey !== own) {
    throw new UpswarmError('UPSWARM_E_CONFIG',
      `product ${product}'s newest verified release (r${head.release.manifest.rev}, ${RELEASE_STREAM} seq ${head.seq}) is signed by key ` +
      `${head.release.publicKey}, not by this key ${own}; refusing to publish. If both keys are the publisher's, list them under the product in a trust file (--trust).`,
      { details: { product, keys: [head.release.publicKey] } })
  }
  const pinned = opts.trust ? (await pinProduct(opts.trust, product, own, { private: opts.private === true })).pinned : false
  return { keys: [own], pinned }
}

function revHeaders(rev: number): MsgHdrs {
  const h = headers()
  h.set(REV_HEADER, String(rev))
  return h
}

function sameContent(manifest: Manifest, entries: Entry[], label: string | undefined): boolean {
  return (manifest.label ?? undefined) === (label ?? undefined) && canonicalJson(manifest.entries) === canonicalJson(entries)
}

async function uploadBlobs(
  os: ObjectStore,
  entries: Entry[],
  files: Map<string, string>,
  onProgress: PublishOptions['onProgress'],
): Promise<{ newBlobs: number; newBytes: number }> {
  const unique = new Map<string, { size: number; abs: string }>()
  for (const e of entries) if (e.kind === 'file' && !unique.has(e.sha256)) unique.set(e.sha256, { size: e.size, abs: files.get(e.path)! })
  const todo = [...unique.entries()]
  let newBlobs = 0
  let newBytes = 0
  let done = 0
  await eachLimited(todo, 2, async ([sha, { size, abs }]) => {
    const have = await withRetry(() => os.info(sha), { attempts: 30 })
    if (!have || have.deleted || have.size !== size) {
      await withRetry(async () => {
        const info = await os.put({ name: sha }, Readable.toWeb(createReadStream(abs, { highWaterMark: 128 * 1024 })) as ReadableStream<Uint8Array>)
        if (info.size !== size) throw new UpswarmError('UPSWARM_E_PUBLISH', `upload of ${abs} stored ${info.size} bytes, expected ${size}: the file changed during publish`)
      }, { attempts: 10, retryable: (err) => !(err instanceof UpswarmError) })
      newBlobs++
      newBytes += size
    }
    done++
    onProgress?.({ phase: 'upload', done, total: todo.length, bytes: newBytes })
  })
  return { newBlobs, newBytes }
}

/**
 * Issue 13 item 4 (format 2 only): the release's small units go into packs. A unit one of the
 * previous release's packs holds is stored already (that pack stays listed); the others are packed
 * anew; a file over PACK_UNIT_MAX is an object of its own, as before.
 */
async function uploadPacked(
  os: ObjectStore,
  previous: PackIndex,
  entries: Entry[],
  files: Map<string, string>,
  nodes: ReadonlyMap<string, Uint8Array>,
  onProgress: PublishOptions['onProgress'],
): Promise<{ packs: PackRef[]; newPacks: number; blobs: { newBlobs: number; newBytes: number } }> {
  const used = new Set<string>()
  const toPack = new Map<string, UnitSource>()
  /** A unit one of the previous packs holds keeps that pack listed; any other is packed anew (once). */
  const place = (u: UnitSource): boolean => {
    const held = previous.unitPack.get(u.sha256)
    if (held) used.add(held)
    if (held || toPack.has(u.sha256)) return false
    toPack.set(u.sha256, u)
    return true
  }
  // The tree's nodes are packed too (they stay objects of their own as well, for the walks of the
  // publisher and of prune): a server then reads a release's whole tree from the packs it copied
  // instead of one object store request per node.
  for (const [hash, bytes] of nodes) place({ sha256: hash, length: bytes.length, what: `tree node ${hash}`, read: async () => Buffer.from(bytes) })
  let fileUnits = 0
  const large: Entry[] = []
  for (const e of entries) {
    if (e.kind !== 'file') continue
    if (e.size > PACK_UNIT_MAX) large.push(e)
    else {
      const abs = files.get(e.path)!
      if (place({ sha256: e.sha256, length: e.size, what: abs, read: async () => readSmall(abs, e.size) })) fileUnits++
    }
  }
  const blobs = await uploadBlobs(os, large, files, onProgress)
  const total = toPack.size
  const put = await uploadPacks(os, [...toPack.values()], (done, bytes) => onProgress?.({ phase: 'upload', done, total, bytes }))
  return {
    packs: [...[...used].map((p) => previous.refs.get(p)!), ...put.refs],
    newPacks: put.newPacks,
    blobs: { newBlobs: blobs.newBlobs + fileUnits, newBytes: blobs.newBytes + put.newBytes },
  }
}
