// The I/O behind one update run: what the update-run statechart's `check`, `plan` and
// `retain` actors do, and the state they share with the download and apply steps.
import type { AnyActorRef } from 'xstate'
import { UpswarmError, isUpswarmError, toUpswarmError } from '../../infra/errors.ts'
import { mark } from '../../infra/timings.ts'
import type { Entry, FileEntry } from '../../infra/release/manifest.ts'
import { collectGarbage } from '../../infra/store/working-copy/history.ts'
import { DigestSet } from '../../infra/store/digest-table.ts'
import { readPendingAlerts, writePendingAlerts } from '../../infra/store/working-copy/pending-alerts.ts'
import type { Journal } from '../../infra/store/working-copy/journal.ts'
import { StatCache } from '../../infra/store/working-copy/stat-cache.ts'
import { diskEntrySync, type DiskEntry, type DiskStat } from '../../infra/store/working-copy/tree.ts'
import { treePath, type WorkingCopyLayout } from '../../infra/store/working-copy/layout.ts'
import { IgnoreRules } from '../../infra/store/working-copy/ignore-rules.ts'
import type { WalkedEntry } from '../../infra/formats/tree-builder.ts'
import type { TreeChange } from '../../infra/formats/tree-diff.ts'
import { TreeReader } from '../../infra/formats/tree-lookup.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { needsAction } from '../../machines/file-status.machine.ts'
import type { RunPhase, RunPlan, RunRequest, RunTarget } from '../../machines/update-run.machine.ts'
import { prefetchBlobs } from './downloads.ts'
import { ReleaseHistory } from './releases.ts'
import { Release2History } from './releases2.ts'
import { DeltaIndex } from './deltas.ts'
import type { UpdaterLog } from './session.ts'
import type { AlertSink, AnyUpdaterAlert, ReleaseSource } from '../../infra/release/source.ts'
import { classifyPaths, classifyWorkingCopy, type TreeStatus } from './status.ts'
import { workingCopyStatus } from './indexed-status.ts'
import { automaticTarget } from './hold.ts'

export interface UpdateProgress {
  phase: RunPhase
  done: number
  total: number
  bytes: number
  path?: string
}

export interface RunOptions {
  source?: ReleaseSource
  alerts?: AlertSink
  /** Concurrent connections per blob download (R-ACCEL-1). */
  threads: number
  log: UpdaterLog
  onProgress?: (p: UpdateProgress) => void
  /**
   * Issue 15 item 4: the history store is kept after the run's result, not before it (the copy's
   * sharing daemon answers `upswarm update` once the tree is in place, then retains, still holding
   * the copy's lock): the retaining phase only takes the retain in hand (`retainLater`).
   */
  deferRetain?: boolean
}

export class RunSession {
  readonly wc: WorkingCopy
  readonly opts: RunOptions
  readonly releases: ReleaseHistory
  /** Format-2 releases and trees (docs/formats.md §5 step 6). */
  readonly releases2: Release2History
  /** Issue 15: the target release's deltas (format 2; empty otherwise). */
  readonly deltas = new DeltaIndex()
  /** Which format the run's target revision was read in. */
  format: 1 | 2 = 1
  request: RunRequest | undefined
  /**
   * Entries of the installed and the target revision by path: all of them, or (`changes` set)
   * only those of the paths the run plans: what the tree diff names and what changed on disk.
   */
  base = new Map<string, Entry>()
  target = new Map<string, Entry>()
  /**
   * Issue 13 item 3: what changed between the installed format-2 tree and the target's, when the
   * run is planned from it (every path the diff does not name is the same in both revisions).
   */
  changes: TreeChange[] | undefined
  disk: DiskView = new Map<string, DiskEntry>()
  /** A run planned from every path: that classification (the apply writes the stat index from it). */
  classified: TreeStatus | undefined
  cache = StatCache.empty()
  plan: RunPlan | undefined
  journal: Journal | undefined
  /** The run's target revision, once checked. */
  to: number | undefined
  /** The revision the run started from (set by check). */
  from: number | undefined
  /** Blobs known to be in the history store with verified hashes (compact: a million on a first install). */
  readonly verified = new DigestSet()
  /** Files staged by the download phase, made durable together before the apply (downloads.ts). */
  readonly stagedFiles: string[] = []
  /** The paths whose slot (staging, or in place) the batch of small files filled already (downloads.ts). */
  readonly prestaged = new Set<string>()
  /** Blobs this run staged as a hard link of their history file (one tree path each: downloads.ts, stageBlob). */
  readonly linked = new Set<string>()
  /**
   * Issue 13 item 4: the directories this run makes where nothing was (journal `owned`), and the
   * new files it writes straight into them instead of staging and renaming (downloads.ts, direct.ts).
   */
  readonly owned = new Set<string>()
  readonly direct = new Set<string>()
  /** The fstat of each file written in place as it was closed, for the stat cache (no lstat again). */
  readonly writtenStats = new Map<string, DiskStat>()
  readonly inflight = new Map<string, Promise<unknown>>()
  /** Local blobs being re-hashed before they are staged (one check per blob). */
  readonly localChecks = new Map<string, Promise<boolean>>()
  /** Alerts of this run that were not delivered (kept in the metadata). */
  readonly undelivered: { path: string; reason: string }[] = []
  private alertQueue: Promise<void> = Promise.resolve()
  private downloadsUsedNetwork = false
  private firstError: UpswarmError | undefined

  constructor(wc: WorkingCopy, opts: RunOptions) {
    this.wc = wc
    this.opts = opts
    this.releases = new ReleaseHistory(wc, opts.source, opts.log)
    this.releases2 = new Release2History(wc, opts.source, opts.log)
  }

  /** Whether anything of this run reached the network (a rollback reports local vs remote). */
  get usedNetwork(): boolean {
    return this.downloadsUsedNetwork || this.releases.usedNetwork || this.releases2.usedNetwork
  }

  /**
   * R-WATCH: newer roots first (they say which formats the product publishes), then the newest
   * release — format 2 when the root lists it and a server answers `meta` with one, else format 1
   * (an older cluster, or a product still without format-2 releases: docs/formats.md §2.2).
   */
  private async refresh(): Promise<void> {
    const format2 = !this.opts.source?.needsPieceHashes
    const newest2 = format2 ? this.releases2.fetchNewest() : undefined
    await this.releases.refreshTrust()
    if (format2 && (await this.releases2.newest(newest2))) {
      this.format = 2
      return
    }
    await this.releases.refresh({ trust: false })
  }

  /**
   * Whether revision `rev` is read in format 2: held so; else, held in neither format, when this
   * run's refresh found format 2, or (a rollback, which does not refresh) the source has format-2
   * releases of the product (asked once).
   */
  private async readsFormat2(rev: number): Promise<boolean> {
    if (await this.wc.manifests.get(rev)) return false
    if (this.opts.source?.needsPieceHashes) return false
    if (await this.wc.trees.release(rev)) return true
    if (this.format === 2) return true
    const src = this.opts.source
    if (!this.releases2.listed() || !src?.release2) return false
    this.offers2 ??= src.release2(this.wc.config.product).then((t) => t !== undefined)
    return this.offers2
  }

  private offers2: Promise<boolean> | undefined
  /** Issue 15: why deltas were not used, for the run's warnings. */
  readonly deltaWarnings: string[] = []

  markNetworkUsed(): void {
    this.downloadsUsedNetwork = true
  }

  /** Remembers the first coded error of the downloads, whose code the failed run reports. */
  noteError(err: unknown): unknown {
    if (!this.firstError && isUpswarmError(err)) this.firstError = err
    return err
  }

  get downloadError(): UpswarmError | undefined {
    return this.firstError
  }

  /** Keeps an undelivered alert in the metadata, one write at a time (alerts are raised concurrently). */
  queueAlert(alert: AnyUpdaterAlert, reason: string): Promise<void> {
    this.undelivered.push({ path: 'path' in alert ? alert.path : `(health of r${alert.rev})`, reason })
    const layout = this.wc.layout
    this.alertQueue = this.alertQueue.then(async () => writePendingAlerts(layout, [...(await readPendingAlerts(layout)), { alert, reason }]))
    return this.alertQueue
  }

  private lastPhase = ''

  progress(p: UpdateProgress): void {
    if (p.phase !== this.lastPhase) mark(`run: ${this.lastPhase = p.phase}`)
    this.opts.onProgress?.(p)
  }

  async check(request: RunRequest): Promise<RunTarget> {
    this.request = request
    const state = this.wc.state
    let to: number
    if (request.kind === 'rollback') {
      const rev = request.rev
      // S142: the target must be lower than the current revision.
      if (rev === undefined || !Number.isInteger(rev) || rev < 1 || rev >= state.current) {
        throw new UpswarmError('UPSWARM_E_ROLLBACK', `cannot roll back ${this.wc.layout.root} to revision ${rev}: ${rollbackRange(state.current, rev)}`)
      }
      to = rev
    } else if (request.rev !== undefined) {
      if (this.opts.source) await this.refresh()
      to = request.rev
    } else {
      await this.refresh()
      mark('check: refreshed')
      to = request.kind === 'checkout' ? this.wc.state.newestVerified : automaticTarget(this.wc.state)
      // The revision list comes from servers that hold a release, verified: right after a publish
      // they may still be copying it.
      if (to === 0) {
        throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION',
          `no repository server holds a release of product ${this.wc.config.product} yet: publish one first, or, if you just did, retry once the servers have synced it (upswarm stats shows each server's synced revision)`)
      }
    }
    if (await this.readsFormat2(to)) {
      // docs/formats.md §5 step 6: the release, then only the tree nodes the copy lacks.
      const r2 = await this.releases2.resolve(to)
      mark('check: release resolved')
      this.format = 2
      this.changes = await this.releases2.ensureTree(state.current, r2)
      mark('check: tree ensured')
      this.deltas.aim(r2)
      // Issue 15: a rollback uses what the copy holds; an update may rebuild changed files from deltas.
      if (request.kind !== 'rollback') {
        await this.deltas.load(this, r2).catch((err: unknown) => {
          this.deltaWarnings.push(`the delta index of r${to} could not be read (${toUpswarmError(err, 'UPSWARM_E_MANIFEST', 'delta index').message}); changed files are fetched whole`)
        })
      }
    } else {
      await this.releases.resolve(to)
      this.format = 1
      if (request.kind !== 'rollback' && this.opts.source?.needsPieceHashes) await this.deltasOfFormat1(to)
    }
    mark('check: release and deltas read')
    if (this.format === 2 && this.changes) {
      // Issue 13 item 3: only what the diff names; planRun adds what changed on disk.
      for (const c of this.changes) {
        if (c.kind !== 'added') this.base.set(c.path, plainEntry(c.old))
        if (c.kind !== 'removed') this.target.set(c.path, plainEntry(c.entry))
      }
      mark('check: changed entries')
    } else {
      this.changes = undefined
      this.base = await this.entriesOf(state.current, this.releases2.fetchOne)
      mark('check: base entries')
      this.target = await this.entriesOf(to, this.releases2.fetchOne)
      mark('check: target entries')
    }
    this.to = to
    this.opts.log.info({ product: this.wc.config.product, from: state.current, to, format: this.format, ...(this.format === 2 ? { treeNodes: this.releases2.fetched } : {}) }, 'target revision checked')
    // Issue 11 item 8: an older revision that needs file contents the servers no longer have is
    // refused now, by name, rather than after a download that cannot finish.
    if ((request.kind === 'rollback' || request.rev !== undefined) && (await this.needsDownload())) {
      const pruned = await this.prunedRefusal()
      if (pruned) throw pruned
    }
    this.from = state.current
    return { from: state.current, to }
  }

  /**
   * Issue 15 item 2: a run planned in format 1 (a swarm source) takes the deltas the format-2
   * release of the same revision lists, when the product publishes both: that release must verify
   * under the copy's root and name, in `v1`, the very manifest the run verified. Anything less
   * (no such release, another manifest) means no deltas, never a failed run.
   */
  private async deltasOfFormat1(rev: number): Promise<void> {
    if (!this.releases2.listed() || !this.opts.source?.release2) return
    try {
      const manifestSha256 = this.wc.state.record[String(rev)]
      const r2 = await this.releases2.resolve(rev)
      if (!manifestSha256 || r2.release.v1 !== manifestSha256) {
        this.deltaWarnings.push(`the format-2 release r${rev} does not name the manifest this run verified (${r2.release.v1?.slice(0, 16) ?? 'none'}… vs ${manifestSha256?.slice(0, 16) ?? 'none'}…); changed files are fetched whole`)
        return
      }
      await this.deltas.load(this, r2)
    } catch (err) {
      const why = toUpswarmError(err, 'UPSWARM_E_MANIFEST', 'format-2 release')
      // The servers copy a format-2 release after its format-1 manifest: a run that comes first fetches whole files.
      if (why.code === 'UPSWARM_E_UNKNOWN_REVISION') this.opts.log.info({ rev }, `no deltas for r${rev}: ${why.message}`)
      else this.deltaWarnings.push(`no deltas for r${rev}: ${why.message}; changed files are fetched whole`)
    }
  }

  /** A revision's entries, read once per run (a format-2 tree walk decodes every node of the tree). */
  private async entriesOf(rev: number, fetch?: (hash: string) => Promise<Uint8Array>): Promise<Map<string, Entry>> {
    const held = this.entryCache.get(rev)
    if (held) return held
    const entries = await this.wc.entries(rev, fetch)
    this.entryCache.set(rev, entries)
    return entries
  }

  private readonly entryCache = new Map<number, Map<string, Entry>>()

  /** Whether some file of the target is neither in the current revision at its path nor in the history store. */
  private async needsDownload(): Promise<boolean> {
    for (const e of this.target.values()) {
      if (e.kind !== 'file') continue
      const now = this.base.get(e.path)
      if (now?.kind === 'file' && now.sha256 === e.sha256) continue
      if (!(await this.wc.history.has(e.sha256))) return true
    }
    return false
  }

  /**
   * Issue 11 item 8: the error to report when the target revision was pruned from the servers,
   * naming the oldest revision still there; undefined when it was not (or nobody can say).
   */
  async prunedRefusal(): Promise<UpswarmError | undefined> {
    const to = this.to
    const product = this.wc.config.product
    const pruned = to === undefined ? undefined : await this.opts.source?.pruned?.(product).catch(() => undefined)
    if (!pruned || to === undefined || to > pruned.through) return undefined
    return new UpswarmError('UPSWARM_E_PRUNED',
      `revision ${to} of ${product} was pruned from the servers by an operator (r1${pruned.through > 1 ? ` … r${pruned.through}` : ''}, ${pruned.at}): its file contents are no longer served, ` +
      `and this working copy's local history does not hold them all. The oldest revision still available is r${pruned.through + 1}; ` +
      `\`upswarm history ${this.wc.layout.root}\` lists the revisions this copy can go back to offline`, { details: { product, rev: to, prunedThrough: pruned.through, oldestAvailable: pruned.through + 1 } })
  }

  async planRun(target: RunTarget): Promise<RunPlan> {
    let tree: TreeStatus
    if (this.changes) tree = await this.classifyChanged(target)
    else {
      const full = await classifyWorkingCopy(this.wc, this.base, this.target)
      tree = full.tree
      this.classified = tree
      this.cache = full.cache
      this.disk = tree.disk
    }
    let slot = 0
    const tasks = tree.paths.filter((p) => needsAction(p.status)).map((p) => {
      const kind = p.facts.target?.kind
      return kind === 'file' || kind === 'symlink' ? { ...p, slot: `new/${slot++}` } : p
    })
    this.plan = { tasks, conflicts: tasks.filter((t) => t.status === 'conflict').map((t) => t.path) }
    this.progress({ phase: 'planning', done: tree.paths.length, total: tree.paths.length, bytes: 0 })
    this.opts.log.info({ from: target.from, to: target.to, paths: tree.paths.length, tasks: tasks.length, hashed: tree.hashed }, 'planned update')
    return this.plan
  }

  /**
   * What the kept revisions hold (the contents to keep), and the files of the older ones that
   * are not the current revision's contents (to have in the history store: the current ones are
   * on disk, and captured there when an update replaces them), from every entry of each revision.
   */
  private async keptOfEntries(revs: ReadonlySet<number>, online: boolean, warnings: string[]): Promise<KeptFiles> {
    const keep = new DigestSet()
    const older = new Map<string, FileEntry>()
    const current = this.wc.state.current
    // The current revision first: its contents are on disk, not wanted in the history store.
    for (const rev of [current, ...[...revs].filter((r) => r !== current)]) {
      try {
        // Format 1 or 2, whichever the copy holds (format 2: its tree, walked from the stored nodes).
        if (!(await this.wc.knows(rev))) {
          if (!online) continue
          if (await this.readsFormat2(rev)) await this.releases2.ensureTree(0, await this.releases2.resolve(rev))
          else await this.releases.resolve(rev)
        }
        for (const e of (await this.entriesOf(rev, online ? this.releases2.fetchOne : undefined)).values()) {
          if (e.kind !== 'file') continue
          if (rev === current) keep.add(e.sha256)
          else if (!keep.has(e.sha256)) older.set(e.sha256, e)
        }
      } catch (err) {
        warnings.push(`revision ${rev} is not kept in the history store: ${toUpswarmError(err, 'UPSWARM_E_IO', 'manifest').message}`)
      }
    }
    for (const sha of older.keys()) keep.add(sha)
    return { keep, older }
  }

  /**
   * The same from the kept revisions' format-2 trees (issue 13 items 3 and 6), when the copy holds
   * all of them: the current tree is read once, and of each older one only the nodes that differ
   * from every tree read before it, so the work is one tree plus the changes, and no entry is
   * built for an unchanged file. Undefined (the caller reads every entry) when a kept revision is
   * not held as a format-2 tree, or a node cannot be read.
   */
  private async keptOfTrees(revs: ReadonlySet<number>, online: boolean): Promise<KeptFiles | undefined> {
    const current = this.wc.state.current
    const tops = new Map<number, string>()
    for (const rev of [current, ...[...revs].filter((r) => r !== current).sort((a, b) => b - a)]) {
      if (await this.wc.manifests.get(rev)) return undefined
      const r2 = await this.wc.release2(rev)
      if (!r2) return undefined
      tops.set(rev, r2.release.tree)
    }
    const keep = new DigestSet()
    const older = new Map<string, FileEntry>()
    const seen = new Set<string>()
    try {
      for (const [rev, top] of tops) {
        const reader = new TreeReader(this.wc.nodeGetter(rev, online ? this.releases2.fetchOne : undefined), { held: true })
        if (rev === current) await reader.eachFile(top, seen, (_path, e) => keep.add(e.sha256))
        else {
          await reader.eachFile(top, seen, (path, e) => {
            if (!keep.has(e.sha256) && !older.has(e.sha256)) older.set(e.sha256, { path, kind: 'file', mode: e.mode, size: e.size, sha1: e.sha1, sha256: e.sha256 })
          })
        }
      }
    } catch (err) {
      this.opts.log.info({ err: toUpswarmError(err, 'UPSWARM_E_IO', 'tree').message }, 'the kept revisions\' trees could not be read node by node; reading their entries')
      return undefined
    }
    for (const sha of older.keys()) keep.add(sha)
    return { keep, older }
  }

  /**
   * Issue 13 item 3: the status of the paths the tree diff names and of those the stat index says
   * are not as installed (a deleted unchanged file is restored; a local edit is kept), and of no
   * other path: every other path is the same in both revisions and on disk as installed.
   */
  private async classifyChanged(target: RunTarget): Promise<TreeStatus> {
    const { wc } = this
    const local = await workingCopyStatus(wc, target.from, target.from, { alsoTargets: [target.to] })
    mark('plan: local changes')
    const paths = new Set<string>([...this.base.keys(), ...this.target.keys()])
    const installed = await wc.release2(target.from)
    if (!installed) throw new UpswarmError('UPSWARM_E_WORKING_COPY', `the format-2 release of the installed r${target.from} is no longer held in ${wc.layout.meta}; run the update again`)
    const reader = new TreeReader(wc.nodeGetter(target.from, this.releases2.fetchOne), { held: true })
    for (const { path, status } of local.notCurrent) {
      // (An unversioned path is in neither revision: it needs nothing.)
      if (paths.has(path) || status === 'unversioned') continue
      paths.add(path)
      // The diff does not name it: its entry is the same in both revisions.
      const e = await reader.lookup(installed.release.tree, path)
      if (e) {
        const entry = plainEntry(e)
        this.base.set(path, entry)
        this.target.set(path, entry)
      }
    }
    this.cache = StatCache.forPaths(wc.layout.statCache, paths)
    const tree = await classifyPaths(wc.layout, paths, this.base, this.target, await IgnoreRules.load(wc.layout), this.cache)
    mark('plan: changed paths classified')
    // The apply asks about the directories above the paths it writes: lstat'ed when asked.
    this.disk = new LazyDisk(wc.layout, tree.disk)
    return tree
  }

  /**
   * Keeps the history store at the last K revisions (R-ROLLBACK): fetches their manifests and
   * blobs when a source is at hand (never on a rollback, which must not need the network),
   * then removes every blob no kept revision uses. Returns warnings; never fails the run.
   * `run`, the update-run actor, is the parent of the download actors in inspection.
   */
  async retain(request: RunRequest, run?: AnyActorRef): Promise<string[]> {
    if (this.opts.deferRetain) {
      this.retainLater = () => this.retainNow(request)
      return []
    }
    return this.retainNow(request, run)
  }

  /** The retain a run with `deferRetain` left for after its result: its warnings, never a failure. */
  retainLater: (() => Promise<string[]>) | undefined

  private async retainNow(request: RunRequest, run?: AnyActorRef): Promise<string[]> {
    const { config, state } = this.wc
    const warnings: string[] = []
    const online = request.kind !== 'rollback' && this.opts.source !== undefined
    const revs = new Set<number>([state.current])
    for (let r = Math.max(1, state.topInstalled - config.historyDepth + 1); r <= state.topInstalled; r++) revs.add(r)
    // Nothing installed and the same revisions kept as after the last complete retain: the history
    // store is as that retain left it (and the deltas it kept for peers stay).
    const wanted = [...revs].sort((a, b) => a - b)
    if (request.kind === 'update' && this.from === this.to && sameRevs(state.retained, wanted)) {
      this.opts.log.info({ revisions: wanted }, 'history store unchanged since the last retain')
      return warnings
    }
    const kept = (this.changes && (await this.keptOfTrees(revs, online))) || (await this.keptOfEntries(revs, online, warnings))
    const { keep, older } = kept
    // The current revision's versions need no fetching: the downloaded ones are already here
    // and the others are captured from the tree when an update replaces them.
    mark('retain: kept revisions walked')
    await this.wc.history.ready()
    const held = this.wc.history.heldSync()
    if (online) {
      const missing = [...older.values()].filter((e) => !held(e.sha256))
      warnings.push(...(await prefetchBlobs(this, missing, run)))
    }
    // Issue 15 item 2: the deltas this run used stay while their revision is current, for peers.
    mark('retain: prefetched')
    for (const sha of this.deltas.kept) keep.add(sha)
    const gc = await collectGarbage(this.wc.history, keep)
    mark('retain: garbage collected')
    this.opts.log.info({ revisions: [...revs], removed: gc.removed, bytes: gc.bytes }, 'history store garbage-collected')
    for (const w of warnings) this.opts.log.warn({}, w)
    // Complete only when the older revisions' files were fetched too (not on an offline rollback).
    const retained = warnings.length === 0 && online ? wanted : undefined
    if (!sameRevs(this.wc.state.retained, retained)) {
      const { retained: _old, ...rest } = this.wc.state
      this.wc.state = retained ? { ...rest, retained } : rest
      await this.wc.saveState()
    }
    mark('retain: done')
    return warnings
  }
}

function sameRevs(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((r, i) => r === b[i])
}

/** Why a rollback target is refused, and what to run instead. */
function rollbackRange(current: number, rev: number | undefined): string {
  if (current === 0) return 'no revision is installed yet; run `upswarm update` first'
  if (current === 1) return 'it is at r1, the first revision: there is nothing older to go back to'
  if (rev !== undefined && rev >= current) {
    return `a rollback goes back, to r1 … r${current - 1} (the working copy is at r${current})${rev > current ? `; to go forward run \`upswarm update --rev ${rev}\`` : ''}`
  }
  return `choose a revision from 1 to ${current - 1} (\`upswarm history\` lists them)`
}

/** The contents the kept revisions hold, and the older revisions' files to have in the history store. */
interface KeptFiles {
  /** Compact: at 1 000 000 files a Set of hex strings took 134 MiB, this 74 (issue 13 item 6). */
  keep: DigestSet
  older: Map<string, FileEntry>
}

/** A format-1 entry from a walked one (how its bytes are addressed is the delta index's business). */
function plainEntry(e: WalkedEntry): Entry {
  const { content: _content, ...entry } = e
  return entry
}

/** What the apply asks of the disk: the kind of what is at a path. */
export interface DiskView {
  get(path: string): DiskEntry | undefined
}

/** The disk entries the plan read, and any other path lstat'ed when first asked. */
class LazyDisk implements DiskView {
  private readonly layout: WorkingCopyLayout
  private readonly known: Map<string, DiskEntry | undefined>

  constructor(layout: WorkingCopyLayout, read: ReadonlyMap<string, DiskEntry>) {
    this.layout = layout
    this.known = new Map(read)
  }

  get(path: string): DiskEntry | undefined {
    if (!this.known.has(path)) this.known.set(path, diskEntrySync(treePath(this.layout, path)))
    return this.known.get(path)
  }
}
