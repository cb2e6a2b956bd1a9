// The publish command: scan a tree, upload only new blobs to the object store, append one
// signed release to the release stream with the next revision (optimistic concurrency), then
// bring the publisher key's release feed up to it (feed.ts, R-DHT-2).
import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { ObjectStore } from '@nats-io/obj'
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import { releaseSubject } from '../../infra/nats/names.ts'
import { openRepository } from '../../infra/nats/resources.ts'
import { withRetry } from '../../infra/nats/retry.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'
import {
  UUID_RE, canonicalJson, encodeRelease, fileEntries, manifestSha256, signManifest,
  type Entry, type Manifest, type SignedRelease,
} from '../../infra/release/manifest.ts'
import { lastRelease, REV_HEADER } from '../../infra/release/release-log.ts'
import { scanTree } from '../../infra/release/scan.ts'
import { publishToFeed, type FeedOutcome } from './feed.ts'

export interface PublishOptions {
  nc: NatsConnection
  src: string
  product: string
  key: PublisherKey
  label?: string
  /** Release feed storage; default a temporary directory, removed afterwards. */
  feedDir?: string
  /** Write the release stream only (the feed is brought up to date by the next publish). */
  skipFeed?: boolean
  /** How long to listen to server heartbeats for one that seeds the feed (default 2000 ms). */
  serverWaitMs?: number
  /** Time limit of the feed catch-up and of a server's copy of the new blocks (default 15 s). */
  feedTimeoutMs?: number
  onProgress?: (p: { phase: 'scan' | 'upload' | 'feed'; done: number; total?: number; bytes: number }) => void
}

export interface PublishResult {
  product: string
  rev: number
  label: string | null
  manifestSha256: string
  files: number
  bytes: number
  newBlobs: number
  newBytes: number
  /** True when the tree equals the newest release: nothing new was appended. */
  unchanged: boolean
  release: SignedRelease
  /**
   * The release feed: appended (the feed holds this release and a server holds the feed up to
   * `length`; `added` blocks were appended, earlier missing releases included) or why not.
   */
  feed: FeedOutcome
}

const MAX_REV_ATTEMPTS = 20
const WRONG_LAST_SEQUENCE = /wrong last sequence|10071/i

export async function publish(opts: PublishOptions): Promise<PublishResult> {
  const product = opts.product.toLowerCase()
  if (!UUID_RE.test(product)) throw new UpswarmError('UPSWARM_E_CONFIG', `--product must be a UUID (got ${JSON.stringify(opts.product)})`)
  // Every JetStream call is retried: during a node loss the cluster re-elects leaders for seconds.
  const { blobs: os } = await openRepository(opts.nc)
  const { entries, files } = await scanTree(opts.src, {
    onProgress: (p) => opts.onProgress?.({ phase: 'scan', done: p.files, bytes: p.bytes }),
  })
  const fileList = entries.filter((e) => e.kind === 'file')
  const bytes = fileList.reduce((n, e) => n + (e.kind === 'file' ? e.size : 0), 0)

  const { newBlobs, newBytes } = await uploadBlobs(os, entries, files, opts.onProgress)

  const jsm = await jetstreamManager(opts.nc)
  const js = jetstream(opts.nc)
  let mine: SignedRelease | undefined
  for (let attempt = 1; attempt <= MAX_REV_ATTEMPTS; attempt++) {
    const last = await withRetry(() => lastRelease(jsm, product), { attempts: 30 })
    if (mine && last && last.manifestSha256 === manifestSha256(mine.manifest)) return result(mine, last.seq, true)
    if (last && sameContent(last.release.manifest, entries, opts.label)) return result(last.release, last.seq, false)
    const rev = (last?.release.manifest.rev ?? 0) + 1
    mine = signManifest({
      format: 1,
      product,
      rev,
      ...(opts.label ? { label: opts.label } : {}),
      createdAt: new Date().toISOString(),
      pieceSize: PIECE_SIZE,
      ...(last ? { parent: last.manifestSha256 } : {}),
      entries,
    }, opts.key)
    const sha = manifestSha256(mine.manifest)
    try {
      // The message id dedups a retry of these exact bytes; the expected last subject sequence
      // makes two publishers racing for revision N fail all but one.
      const ack = await withRetry(
        () => js.publish(releaseSubject(product), encodeRelease(mine!), {
          msgID: sha,
          expect: { lastSubjectSequence: last?.seq ?? 0 },
          headers: revHeaders(rev),
          timeout: 5000,
        }),
        { attempts: 30, retryable: (err) => !WRONG_LAST_SEQUENCE.test(errorMessage(err)) },
      )
      // A duplicate ack means an earlier attempt of ours already stored these exact bytes.
      return result(mine, ack.seq, true)
    } catch (err) {
      if (WRONG_LAST_SEQUENCE.test(errorMessage(err))) continue // someone else took rev N: re-read, try N+1
      throw new UpswarmError('UPSWARM_E_PUBLISH', `cannot append revision ${rev} of ${product} to the release stream: ${errorMessage(err)}`, { cause: err })
    }
  }
  throw new UpswarmError('UPSWARM_E_PUBLISH', `gave up after ${MAX_REV_ATTEMPTS} concurrent publishes of ${product} raced this one; retry`)

  async function result(release: SignedRelease, seq: number, appended: boolean): Promise<PublishResult> {
    // An unchanged tree still brings the feed up to the newest release: that repairs it too.
    opts.onProgress?.({ phase: 'feed', done: 0, bytes: 0 })
    const feed: FeedOutcome = opts.skipFeed
      ? { appended: false, reason: 'skipped on request (--no-feed); the next publish appends this release to the feed' }
      : await publishToFeed({
        nc: opts.nc,
        key: opts.key,
        release,
        seq,
        ...(opts.feedDir !== undefined ? { feedDir: opts.feedDir } : {}),
        ...(opts.serverWaitMs !== undefined ? { serverWaitMs: opts.serverWaitMs } : {}),
        ...(opts.feedTimeoutMs !== undefined ? { timeoutMs: opts.feedTimeoutMs } : {}),
      })
    return {
      product,
      rev: release.manifest.rev,
      label: release.manifest.label ?? null,
      manifestSha256: manifestSha256(release.manifest),
      files: fileEntries(release.manifest).length,
      bytes,
      newBlobs: appended ? newBlobs : 0,
      newBytes: appended ? newBytes : 0,
      unchanged: !appended,
      release,
      feed,
    }
  }
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
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const [sha, { size, abs }] = todo[next++]!
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
    }
  }
  await Promise.all([worker(), worker()])
  return { newBlobs, newBytes }
}
