// Changed bytes only (issue 15 items 1, 5; docs/formats.md §1.6 delta-index nodes, §1.7 chunks):
// a format-2 release names delta-index nodes; for a file to fetch, the updater picks the cheapest
// of: a listed delta whose base this copy holds — the installed file at any path (its hash known
// from the plan's facts), or a blob of the local history store —, the compressed file alone, or
// (a file larger than the chunker's `whole`) the chunks its installed version shares plus the
// chunks it lacks (chunks.ts: works from any older revision, no delta chain); and makes the file. What it rebuilds is committed to the history store only if its size,
// SHA-1 and SHA-256 are the signed ones (R-VERIFY); a delta that fails anywhere is discarded with
// a warning and the file is fetched whole, so nothing half-written is ever kept.
import { createHash } from 'node:crypto'
import { open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { NO_BASE, UPSWARM_DELTA_CODEC, applyDelta, bytesBase, fileBase, type DeltaBase } from '../../infra/formats/delta.ts'
import { checkedNode } from '../../infra/formats/tree-builder.ts'
import type { ChunkRef, DeltaRef } from '../../infra/formats/tree-node.ts'
import type { SignedRelease2 } from '../../infra/formats/release.ts'
import { errorMessage, toUpswarmError } from '../../infra/errors.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'
import type { FetchedBlob } from '../../infra/release/source.ts'
import { ChunkReuse, type ChunkPlan, type ChunkTarget } from './chunks.ts'
import type { RunSession } from './run-session.ts'
import { writeAll } from '../../infra/store/durable.ts'

export interface DeltaStats { files: number; bytes: number; fileBytes: number; failed: number; chunked: number }

/** A base this copy holds for a delta: a file, or a blob's bytes from a history pack. */
interface HeldBase {
  /** For messages. */
  what: string
  open(): Promise<DeltaBase & { close(): Promise<void> }>
}

export class DeltaIndex {
  /** Target SHA-256 → the deltas that make it. */
  private readonly byTarget = new Map<string, DeltaRef[]>()
  readonly stats: DeltaStats = { files: 0, bytes: 0, fileBytes: 0, failed: 0, chunked: 0 }
  private readonly chunks = new ChunkReuse()
  /** The format-2 release the run installs (aim). */
  private target: ChunkTarget | undefined
  /** Deltas this run used, kept in the history store for peers while their revision is current. */
  readonly kept = new Set<string>()
  /** Planned path → what was on disk there. */
  private tasks: Map<string, string | undefined> | undefined
  /** SHA-256 → a working-copy file that had it when the run was planned. */
  private local: Map<string, string> | undefined

  get size(): number {
    return this.byTarget.size
  }

  /** Whether the release lists a delta (or a compressed copy) that makes this file. */
  hasDeltaFor(sha256: string): boolean {
    return this.byTarget.has(sha256)
  }

  /**
   * Loads the delta-index nodes `release` names: held under .upswarm/nodes, else fetched with the
   * tree's `nodes` request, each checked against its name. A failure leaves the index empty (the
   * files are then fetched whole) and is reported by the caller as a warning.
   */
  /** The format-2 release a run installs: chunk reuse reads its tree and chunker (read once, not per file). */
  aim(release: SignedRelease2): void {
    const { rev, tree, chunker } = release.release
    this.target = { rev, tree, chunker }
  }

  /**
   * A file's chunk list in the release the run installs (a source that checks pieces by chunks
   * needs it: ReleaseSource.piecesByChunks); undefined outside a format-2 run or for a file the
   * tree does not chunk.
   */
  chunkList(session: RunSession, entry: { path: string; sha256: string }): Promise<ChunkRef[] | undefined> {
    return this.target ? this.chunks.listOf(session, entry, this.target) : Promise.resolve(undefined)
  }

  async load(session: RunSession, release: SignedRelease2): Promise<void> {
    const hashes = release.release.deltas ?? []
    if (hashes.length === 0) return
    const wc = session.wc
    const missing: string[] = []
    const bytes = new Map<string, Uint8Array>()
    for (const h of hashes) {
      const held = await wc.trees.node(h)
      if (held) bytes.set(h, held)
      else missing.push(h)
    }
    if (missing.length > 0) {
      const src = session.opts.source
      if (!src?.nodes) return
      const got = await src.nodes(wc.config.product, missing)
      const fresh = new Map<string, Uint8Array>()
      for (const h of missing) {
        const b = got.get(h)
        if (!b) throw toUpswarmError(undefined, 'UPSWARM_E_NOT_FOUND', `delta index ${h.slice(0, 16)}… of r${release.release.rev} was not sent`)
        bytes.set(h, b)
        fresh.set(h, b)
      }
      session.releases2.fetched.nodes += fresh.size
      session.releases2.fetched.bytes += [...fresh.values()].reduce((n, b) => n + b.length, 0)
      session.releases2.fetched.requests++
      // Checked before they are kept.
      for (const [h, b] of fresh) checkedNode(h, b, false, `delta index of r${release.release.rev}`)
      await wc.trees.putNodes(fresh)
    }
    for (const [h, b] of bytes) {
      const node = checkedNode(h, b, false, `delta index of r${release.release.rev}`)
      if (node.type !== 'deltaIndex') throw toUpswarmError(undefined, 'UPSWARM_E_MANIFEST', `r${release.release.rev} names ${h.slice(0, 16)}… as a delta index; it is a ${node.type} node`)
      for (const d of node.deltas) {
        // §1.6: an unknown codec is skipped, not refused.
        if (d.codec !== UPSWARM_DELTA_CODEC) continue
        const list = this.byTarget.get(d.target)
        if (list) list.push(d)
        else this.byTarget.set(d.target, [d])
      }
    }
  }

  /** Where this copy holds content `sha256`, to read as a base; undefined when it does not. */
  private async baseFile(session: RunSession, sha256: string): Promise<HeldBase | undefined> {
    if (!this.local) {
      this.local = new Map()
      for (const t of session.plan?.tasks ?? []) {
        const l = t.facts.local
        if (l?.kind === 'file' && !this.local.has(l.sha256)) this.local.set(l.sha256, join(session.wc.layout.root, t.path))
      }
      // Unchanged files of the installed revision are not tasks: the base revision names them.
      for (const e of session.base.values()) if (e.kind === 'file' && !this.local.has(e.sha256)) this.local.set(e.sha256, join(session.wc.layout.root, e.path))
    }
    const history = session.wc.history
    if (await history.has(sha256)) {
      const packed = await history.packed(sha256)
      if (packed) return { what: `blob ${sha256.slice(0, 16)}… of the history store`, open: async () => bytesBase(packed) }
      const path = history.path(sha256)
      return { what: path, open: () => fileBase(path) }
    }
    const path = this.local.get(sha256)
    return path === undefined ? undefined : { what: path, open: () => fileBase(path) }
  }

  /** Files this copy holds whose chunks a new version of `entry` may share: its installed version (on disk, else in history). */
  private async chunkBases(session: RunSession, entry: FileEntry): Promise<string[]> {
    const out: string[] = []
    this.tasks ??= new Map((session.plan?.tasks ?? []).map((t) => [t.path, t.facts.local?.kind]))
    if (this.tasks.get(entry.path) === 'file') out.push(join(session.wc.layout.root, entry.path))
    else {
      const old = session.base.get(entry.path)
      // A packed one (a small file, under a chunk's size) has no chunks worth planning around.
      const history = session.wc.history
      if (old?.kind === 'file' && (await history.has(old.sha256)) && !history.packs?.holds(old.sha256)) out.push(history.path(old.sha256))
    }
    return out
  }

  /** The cheapest listed delta whose base this copy holds (or the compressed file), if any is smaller than the file. */
  private async bestDelta(session: RunSession, entry: FileEntry): Promise<{ ref: DeltaRef; base: HeldBase | undefined } | undefined> {
    const refs = this.byTarget.get(entry.sha256)
    if (!refs || !session.opts.source?.unit) return undefined
    let best: { ref: DeltaRef; base: HeldBase | undefined } | undefined
    const max = session.opts.source.unitMax ?? Infinity
    for (const ref of refs) {
      if (ref.length >= entry.size || ref.length > max || (best && ref.length >= best.ref.length)) continue
      if (ref.base === NO_BASE) best = { ref, base: undefined }
      else {
        const base = await this.baseFile(session, ref.base)
        if (base) best = { ref, base }
      }
    }
    return best
  }

  /**
   * The file the cheapest way this copy can make it — a listed delta, or the chunks it holds plus
   * the ones it lacks — committed to the history store verified; undefined when neither beats the
   * whole file (or it failed: then a warning, and the caller fetches it whole).
   */
  async fetch(session: RunSession, entry: FileEntry, signal: AbortSignal): Promise<FetchedBlob | undefined> {
    const best = await this.bestDelta(session, entry)
    const src = session.opts.source
    // Chunks (format 2 plans only) are worth a look when no delta makes the file for an eighth of its size.
    const target = session.format === 2 ? this.target : undefined
    if (target && src?.range && entry.size > target.chunker.whole && (!best || best.ref.length > entry.size / 8)) {
      const plan = await this.chunks.plan(session, entry, target, await this.chunkBases(session, entry)).catch((err: unknown) => {
        session.opts.log.warn({ path: entry.path }, `cannot plan ${entry.path} by chunks (${errorMessage(err)}); not reusing its chunks`)
        return undefined
      })
      // About 100 bytes of request and framing per chunk fetched.
      if (plan && plan.missing + plan.fetches * 100 < (best?.ref.length ?? entry.size)) return this.viaChunks(session, entry, plan, signal)
    }
    return best ? this.viaDelta(session, entry, best, signal) : undefined
  }

  private viaChunks(session: RunSession, entry: FileEntry, plan: ChunkPlan, signal: AbortSignal): Promise<FetchedBlob | undefined> {
    const src = session.opts.source!
    const product = session.wc.config.product
    const what = `${entry.path} from ${plan.chunks.length - plan.fetches} chunks held and ${plan.fetches} fetched`
    return this.make(session, entry, signal, what, { kept: () => this.stats.chunked++ }, async (tmp, digest) => {
      session.markNetworkUsed()
      const fetched = await this.chunks.write(plan, tmp, (offset, length, sha256) => src.range!(product, entry.sha256, offset, length, sha256), signal, digest)
      return { bytesFromServers: fetched, bytesFromPeers: 0 }
    })
  }

  private viaDelta(session: RunSession, entry: FileEntry, best: { ref: DeltaRef; base: HeldBase | undefined }, signal: AbortSignal): Promise<FetchedBlob | undefined> {
    const src = session.opts.source!
    const { ref } = best
    const history = session.wc.history
    const what = `the delta ${ref.delta.slice(0, 16)}… for ${entry.path}${best.base ? ` (from ${best.base.what})` : ' (compressed)'}`
    return this.make(session, entry, signal, what, {
      logged: { delta: ref.delta, base: ref.base },
      // Kept in the history store while this revision is current, for peers (item 2); a delta that
      // failed is not, so if it was at fault nobody gets it from here.
      kept: () => this.kept.add(ref.delta),
      failed: () => history.remove(ref.delta).catch(() => {}),
    }, async (tmp, digest) => {
      const got = await src.unit!(session.wc.config.product, ref.delta, ref.length, history, { signal, threads: session.opts.threads })
      session.markNetworkUsed()
      const delta = (await history.packed(ref.delta)) ?? (await readFile(history.path(ref.delta)))
      const out = await open(tmp, 'w')
      let base: (DeltaBase & { close(): Promise<void> }) | undefined
      try {
        base = best.base ? await best.base.open() : undefined
        await applyDelta(delta, base, entry.size, async (bytes) => {
          digest(bytes)
          await writeAll(out, bytes)
        }, what)
      } finally {
        await out.close()
        await base?.close()
      }
      return got
    })
  }

  /**
   * Makes `entry` with `build` into a staging file and commits it to the history store only if it
   * is the signed file (size, SHA-1, SHA-256: R-VERIFY). Any failure removes the staging file,
   * counts it, warns, and answers undefined: the caller fetches the file whole.
   */
  private async make(
    session: RunSession, entry: FileEntry, signal: AbortSignal, what: string,
    on: { logged?: object; kept?: () => void; failed?: () => Promise<void> },
    build: (tmp: string, digest: (bytes: Uint8Array) => void) => Promise<{ bytesFromServers: number; bytesFromPeers: number }>,
  ): Promise<FetchedBlob | undefined> {
    const history = session.wc.history
    const tmp = await history.stagingPath()
    try {
      // The digests are taken of the bytes as they are written, in order: the file is not read back.
      const sha256 = createHash('sha256')
      const sha1 = createHash('sha1')
      let size = 0
      const got = await build(tmp, (bytes) => {
        sha256.update(bytes)
        sha1.update(bytes)
        size += bytes.length
      })
      // No fsync of its own, as a fetched blob (sources.ts): the run makes the copy it stages in the
      // tree durable (syncFiles), and a later run hashes a history blob again before using it.
      await history.commitFile(entry.sha256, tmp, what, entry.size, entry.sha1, { sha256: sha256.digest('hex'), sha1: sha1.digest('hex'), size }, { sync: false })
      on.kept?.()
      this.stats.files++
      this.stats.bytes += got.bytesFromServers + got.bytesFromPeers
      this.stats.fileBytes += entry.size
      return { ...got, verified: true }
    } catch (err) {
      await rm(tmp, { force: true })
      if (signal.aborted) throw err
      await on.failed?.()
      this.stats.failed++
      session.opts.log.warn({ path: entry.path, ...on.logged }, `${what} did not give the signed file (${errorMessage(err)}); fetching ${entry.path} whole instead`)
      return undefined
    }
  }
}
