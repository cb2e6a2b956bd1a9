// The updater (R-UPDATER): init, status, update, rollback, ignore, history of a working copy.
// Every operation takes the working copy's lock and first recovers from any interrupted
// update, so the tree is always exactly one revision plus the user's protected changes.
import { nodeCrypto } from '../../infra/node-crypto.ts'
import { mkdir, readdir, rm } from 'node:fs/promises'
import type { Freshness } from '../../infra/formats/fresh.ts'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import { META_DIR, UUID_RE, blobsOf } from '../../infra/release/manifest-core.ts'
import { isDiskFull } from '../../infra/store/disk-space.ts'
import { addIgnorePattern } from '../../infra/store/working-copy/ignore-rules.ts'
import { readPendingAlerts } from '../../infra/store/working-copy/pending-alerts.ts'
import { readJournal, type RecoveryAction } from '../../infra/store/working-copy/journal.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { DEFAULT_HISTORY_DEPTH } from '../../infra/store/working-copy/meta.ts'
import { writeSources, type WorkingCopySources } from '../../infra/store/working-copy/sources.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import type { ConflictPolicy, FileStatus } from '../../machines/file-status.machine.ts'
import type { InstallHooks, RunKind, RunOutput, RunRequest } from '../../machines/update-run.machine.ts'
import type { RevertRecord } from '../../infra/store/working-copy/meta.ts'
import type { RunLogic } from './run.ts'
import { deliverPendingAlerts } from './alerts.ts'
import { ReleaseHistory } from './releases.ts'
import { automaticTarget } from './hold.ts'
import type { UpdateProgress } from './run-session.ts'

export { holdsBack, revertLine } from './hold.ts'
export type { InstallHooks } from '../../machines/update-run.machine.ts'
import { openWorkingCopy, silentLog, withWorkingCopy, type UpdaterLog } from './session.ts'
import type { AlertSink, ReleaseSource, UpdateResult } from '../../infra/release/source.ts'
import { workingCopyStatus } from './indexed-status.ts'

export type { AlertSink, AlertReport, ReleaseSource, UpdateResult, UpdaterAlert, EntrySummary } from '../../infra/release/source.ts'
export type { UpdaterLog } from './session.ts'
export type { UpdateProgress } from './run-session.ts'
export type { FileStatus, ConflictPolicy } from '../../machines/file-status.machine.ts'

const DEFAULT_THREADS = 4

export interface UpdateOptions {
  /** Explicit revision (also lower than the current one); default: the newest verified. */
  rev?: number
  threads?: number
  onConflict?: ConflictPolicy
  source: ReleaseSource
  /** Where alerts go; without one (offline) they are kept in the working copy for the next run that has one. */
  alerts?: AlertSink
  /** Commands around the install and the health check after it (issue 16 item 2). */
  hooks?: InstallHooks
  onProgress?: (p: UpdateProgress) => void
  log?: UpdaterLog
  /** Keep the history store after the result (OpenedUpdate.settle): the sharing daemon's runs. */
  deferRetain?: boolean
}

export interface InitOptions {
  product: string
  /** The publisher's public key (hex), pinned in the working copy; with `root`, optional (the root names it). */
  publicKey?: string
  /** A root of trust document to pin (`init --root FILE`, issue 10 item 7): the keys come from its chain, so they can rotate. */
  root?: { text: string; where: string }
  rev?: number
  /** Take over a non-empty directory: existing files are classified, never overwritten. */
  adopt?: boolean
  source: ReleaseSource
  alerts?: AlertSink
  historyDepth?: number
  /** Record the product as private in the working copy config (docs/protocol.md §5). */
  private?: boolean
  /** Where the copy comes from, recorded for later commands (issue 11 item 7). */
  sources?: WorkingCopySources
  clientId?: string
  threads?: number
  onProgress?: (p: UpdateProgress) => void
  log?: UpdaterLog
  /**
   * Fetches the first revision some other way than `source` alone (the sharing daemon's
   * multi-source download: peers and servers at once), once the empty working copy exists. A
   * failure leaves no working copy behind, as with `source`.
   */
  checkout?: (dir: string) => Promise<UpdateResult>
}

export interface RollbackOptions {
  rev: number
  /** Needed only when the revision is not in the local history store (S145–S146). */
  source?: ReleaseSource
  alerts?: AlertSink
  onConflict?: ConflictPolicy
  threads?: number
  onProgress?: (p: UpdateProgress) => void
  log?: UpdaterLog
}

export interface RollbackResult {
  from: number
  to: number
  /** local: served from the history store with no network (S143–S144); remote: downloaded. */
  source: 'local' | 'remote'
}

export interface StatusReport {
  product: string
  /** The installed revision. */
  rev: number
  /** The newest verified revision. */
  latest: number
  /** The revision the statuses compare with: what `update` would install. */
  target: number
  /** Every path (built on first use: a large tree's list costs time and memory). */
  files: { path: string; status: FileStatus }[]
  /** The paths whose status is not `current`. */
  notCurrent: { path: string; status: FileStatus }[]
  /** How many paths `files` holds. */
  total: number
  /** Files whose contents were read (0 for an unchanged tree with a warm stat cache). */
  hashed: number
  cached: number
  /** How old the newest verified fresh statement is (issue 10 item 7, freeze attacks); absent without a root or a statement. */
  freshness?: Freshness
  /** The root of trust version held (0: the copy pinned only a publisher key). */
  rootVersion: number
  /** Administrators' alerts kept on disk until a connected run delivers them (issue 11 item 4). */
  alertsPending: number
  /** Set when the held root has expired: it keeps verifying (R-DHT-2), but operators must sign a new one. */
  rootExpired?: string
  /** Set when the disk is full: what `status` could not write (it answers all the same). */
  diskFull?: string
  /** The last revision taken back after a failed health check (issue 16 item 2). */
  reverted?: RevertRecord
  /**
   * How the stat index served this status (issue 13): `indexed` (unchanged paths kept their
   * statuses), or why every path was classified again (`no index`, `corrupt index`, `context changed`).
   */
  statIndex: 'indexed' | 'no index' | 'corrupt index' | 'context changed'
  /** With `statIndex: 'corrupt index'`: what was wrong with it (the index was rewritten). */
  statIndexProblem?: string
  /** `changes`: the file monitor said what changed, and only that was lstat'ed; else why it did not. */
  monitor: string
  /** Paths lstat'ed by the indexed walk. */
  lstats: number
  /**
   * Set when the newest verified revision's tree is not all held here and could not be fetched
   * (offline, or its servers unreachable): statuses compare with the installed revision instead.
   */
  targetUnavailable?: string
}

export interface HistoryReport {
  product: string
  current: number
  latest: number
  historyDepth: number
  revisions: { rev: number; manifestSha256: string; label?: string; current: boolean; manifest: boolean; local: boolean; reverted?: RevertRecord }[]
}

interface RunCommon {
  source?: ReleaseSource
  alerts?: AlertSink
  hooks?: InstallHooks
  threads?: number
  onConflict?: ConflictPolicy
  onProgress?: (p: UpdateProgress) => void
  log?: UpdaterLog
  deferRetain?: boolean
}

/** A run made ready on a locked, recovered working copy: its statechart, input, and how its output becomes the result. */
interface PreparedRun {
  logic: RunLogic
  input: RunRequest
  finish(output: RunOutput): Promise<{ result: UpdateResult; usedNetwork: boolean }>
  /** The retain a `deferRetain` run left for after its result (undefined: none left). */
  retainLater(): (() => Promise<string[]>) | undefined
}

async function prepare(wc: WorkingCopy, kind: RunKind, rev: number | undefined, o: RunCommon): Promise<PreparedRun> {
  const log = o.log ?? silentLog
  const earlierDelivered = o.alerts ? await deliverPendingAlerts(wc, o.alerts, log) : 0
  // Loaded here: `status` and the other short commands need neither the update run nor xstate.
  const { prepareRun, runResult } = await import('./run.ts')
  const { logic, session } = prepareRun(wc, {
    ...(o.source ? { source: o.source } : {}),
    ...(o.alerts ? { alerts: o.alerts } : {}),
    threads: o.threads ?? DEFAULT_THREADS,
    log,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(o.deferRetain ? { deferRetain: true } : {}),
  })
  const finish = async (ended: RunOutput): Promise<{ result: UpdateResult; usedNetwork: boolean }> => {
    const { output } = runResult(wc, ended, session)
    const applied = output.applied ?? { updated: 0, checkedOut: 0, removed: 0, blocked: [] }
    const to = output.target?.to ?? wc.state.current
    return {
      usedNetwork: session.usedNetwork,
      result: {
        from: output.target?.from ?? wc.state.current,
        to,
        ...applied,
        conflicts: output.plan?.conflicts ?? [],
        alerts: {
          delivered: (output.staged?.files ?? []).filter((f) => f.alerted).map((f) => f.path),
          undelivered: session.undelivered,
          earlierDelivered,
          pending: (await readPendingAlerts(wc.layout)).length,
        },
        bytesFromServers: output.staged?.bytesFromServers ?? 0,
        bytesFromPeers: output.staged?.bytesFromPeers ?? 0,
        format: session.format,
        ...(session.format === 2 ? { treeNodes: { ...session.releases2.fetched } } : {}),
        ...(session.deltas.stats.files + session.deltas.stats.failed > 0 ? { deltas: { ...session.deltas.stats } } : {}),
        warnings: [
          ...session.deltaWarnings,
          ...(session.deltas.stats.failed > 0 ? [`${session.deltas.stats.failed} delta(s) did not give the signed file; those files were fetched whole (the log names them)`] : []),
          ...applied.blocked.map((path) => `${path} is not installed: a file or symlink kept by the user is in the way above it; move it away and run the update again to finish r${to}`),
          ...output.warnings,
        ],
      },
    }
  }
  return { logic, input: { kind, ...(rev !== undefined ? { rev } : {}), onConflict: o.onConflict ?? 'alert', ...(o.hooks ? { hooks: o.hooks } : {}) }, finish, retainLater: () => session.retainLater }
}

async function run(wc: WorkingCopy, kind: RunKind, rev: number | undefined, o: RunCommon): Promise<{ result: UpdateResult; usedNetwork: boolean }> {
  // A run of its own keeps the history store before it returns.
  const prepared = await prepare(wc, kind, rev, { ...o, deferRetain: false })
  const { runAlone } = await import('./run.ts')
  return prepared.finish(await runAlone(prepared.logic, prepared.input))
}

/** Creates a working copy at the newest (or given) revision. */
export async function init(dir: string, opts: InitOptions): Promise<UpdateResult> {
  const product = opts.product.toLowerCase()
  if (!UUID_RE.test(product)) throw new UpswarmError('UPSWARM_E_CONFIG', `--product must be a UUID (got ${JSON.stringify(opts.product)})`)
  const pinned = opts.root ? await pinnedRootKey(opts.root, product, opts.publicKey) : undefined
  const publicKey = opts.publicKey ?? pinned?.key ?? ''
  if (!/^[0-9a-f]{64}$/.test(publicKey)) throw new UpswarmError('UPSWARM_E_CONFIG', `--pubkey must be the publisher's public key, 64 hex characters (got ${JSON.stringify(publicKey.slice(0, 80))})`)
  const existing = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[]
    throw new UpswarmError('UPSWARM_E_IO', `cannot read ${dir}: ${err.message}`, { cause: err })
  })
  if (existing.includes(META_DIR)) throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${dir} is already an upswarm working copy; use \`upswarm update\``)
  if (existing.length > 0 && !opts.adopt) {
    throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${dir} is not empty; use --adopt to take over its files (they are classified, never overwritten) or choose an empty directory`)
  }
  // The first directory mkdir made (undefined: it existed): a failed init removes what it made.
  const made = await mkdir(dir, { recursive: true })
  const created = await WorkingCopy.create(dir, {
    format: 1,
    product,
    publicKey,
    clientId: opts.clientId ?? nodeCrypto().randomUUID(),
    historyDepth: opts.historyDepth ?? DEFAULT_HISTORY_DEPTH,
    ...(opts.private ? { private: true } : {}),
  })
  try {
    if (opts.root) await created.trust.pin(opts.root.text, opts.root.where)
    if (opts.sources) await writeSources(layoutOf(dir), opts.sources)
    if (opts.checkout) return await opts.checkout(dir)
    return await withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => (await run(wc, 'checkout', opts.rev, opts)).result)
  } catch (err) {
    // A failed run leaves the tree as it was: leave no half working copy behind, unless a
    // journal still needs recovery (then the next command finishes it).
    const layout = layoutOf(dir)
    if (!(await readJournal(layout).catch(() => true))) {
      await rm(layout.meta, { recursive: true, force: true })
      if (made !== undefined && (await readdir(dir).catch(() => [])).length === 0) await rm(made, { recursive: true, force: true })
    }
    throw err
  }
}

/**
 * The newest verified release from `source` (format 2 when the servers have it, else format 1),
 * and the tree nodes of the revision an update would go to that the copy lacks, verified against
 * the signed release (docs/formats.md §5 step 6).
 */
async function refreshWithTree(wc: WorkingCopy, source: ReleaseSource, log: UpdaterLog): Promise<number> {
  const v1 = new ReleaseHistory(wc, source, log)
  // Loaded here: an offline status of a format-1 copy needs neither the format-2 codecs nor zod (issue 13 item 1).
  const { Release2History } = await import('./releases2.ts')
  const v2 = new Release2History(wc, source, log)
  await v1.refreshTrust()
  if (!(await v2.newest())) await v1.refresh({ trust: false })
  // The target's tree nodes the copy lacks (an update to an older --rev, or a release seen by a
  // refresh that fetched no tree).
  const newest = automaticTarget(wc.state)
  const r2 = newest > wc.state.current ? await wc.release2(newest) : undefined
  if (r2) await v2.ensureTree(wc.state.current, r2)
  return newest
}

/**
 * Issue 15 item 4: what a sharing daemon does when it hears of a release it is not told to
 * install: the release verified and its changed tree nodes kept in the copy, so that the
 * `upswarm update` that follows reads them from disk. Changes nothing in the tree. Returns the
 * revision an update would go to now (its tree held).
 */
export async function prefetchRelease(dir: string, opts: { source: ReleaseSource; log?: UpdaterLog }): Promise<number> {
  return withWorkingCopy(dir, opts.log ?? silentLog, (wc) => refreshWithTree(wc, opts.source, opts.log ?? silentLog))
}

/** R-STATUS: the status of every path; with a source, first looks for a newer release. */
/**
 * `list: false` (the CLI's text output): `files`, every path, is built only if read, and then
 * from the index after the copy's lock was let go. By default it is built under the lock.
 */
export async function status(dir: string, opts: { source?: ReleaseSource; log?: UpdaterLog; list?: boolean } = {}): Promise<StatusReport> {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => {
    // A read-only command works on a full disk (issue 11, fault suite): what cannot be written
    // (a newer release's manifest, the stat cache) is skipped and said.
    let refreshed = true
    if (opts.source) {
      // Format 2 when the root lists it and the servers have it (docs/formats.md §5 step 6), else format 1.
      refreshed = await refreshWithTree(wc, opts.source, opts.log ?? silentLog).then(() => true, (err: unknown) => {
        if (isDiskFull(err)) return false
        throw err
      })
    }
    let target = automaticTarget(wc.state)
    let targetUnavailable: string | undefined
    const tree = await workingCopyStatus(wc, wc.state.current, target, { cacheIfRoom: true }).catch(async (err: unknown) => {
      // Offline, a newer revision known only by its signed release: compare with the installed one.
      if (!isUpswarmError(err, 'UPSWARM_E_WORKING_COPY') || err.details?.missingNodeOf !== target || target === wc.state.current) throw err
      targetUnavailable = `r${target} is the newest verified revision, but its file list is not held here (${err.message.split(';')[0]}); statuses compare with the installed r${wc.state.current} until a connected \`upswarm status\` or \`update\` fetches it`
      target = wc.state.current
      return workingCopyStatus(wc, wc.state.current, target, { cacheIfRoom: true })
    })
    if (tree.indexProblem) (opts.log ?? silentLog).warn({ dir, problem: tree.indexProblem }, 'the stat index was unusable: every path was classified again')
    // The whole list, read while the copy is locked (an update cannot replace the index meanwhile).
    if (opts.list !== false) void tree.files.length
    const unwritten = [...(refreshed ? [] : ['newer releases were not recorded']), ...(tree.saved ? [] : ['the stat cache was not saved'])]
    const result = {
      product: wc.config.product,
      rev: wc.state.current,
      latest: wc.state.newestVerified,
      target,
      notCurrent: tree.notCurrent,
      total: tree.total,
      hashed: tree.hashed,
      cached: tree.cached,
      statIndex: tree.path,
      monitor: tree.monitor,
      lstats: tree.lstats,
      ...(tree.indexProblem ? { statIndexProblem: tree.indexProblem } : {}),
      ...(targetUnavailable ? { targetUnavailable } : {}),
      rootVersion: wc.trust.version,
      alertsPending: (await readPendingAlerts(wc.layout)).length,
      // (Only a held root's expiry is looked at: the signed formats and zod load with a root; issue 13 item 1.)
      ...(wc.trust.root && (await import('../../infra/formats/root.ts')).rootExpired(wc.trust.root, Date.now()) ? { rootExpired: wc.trust.root.expires } : {}),
      ...(wc.trust.freshness(wc.config.product) ? { freshness: wc.trust.freshness(wc.config.product)! } : {}),
      ...(wc.state.reverted?.length ? { reverted: wc.state.reverted.at(-1)! } : {}),
      ...(unwritten.length > 0 ? { diskFull: `the disk holding ${wc.layout.meta} is full: ${unwritten.join(' and ')}; free some space before the next update` } : {}),
    }
    return Object.defineProperty(result, 'files', { enumerable: true, get: () => tree.files }) as StatusReport
  })
}

/** The publish key a pinned root names for `product` (the one `--pubkey` gave, if it gave one). */
async function pinnedRootKey(root: { text: string; where: string }, product: string, given: string | undefined): Promise<{ key: string }> {
  const { parseRoot, productKeys, verifyPinnedRoot } = await import('../../infra/formats/root.ts')
  const signed = parseRoot(root.text, root.where)
  verifyPinnedRoot(signed, root.where)
  const { current } = productKeys(signed.root, product)
  if (current.length === 0) throw new UpswarmError('UPSWARM_E_CONFIG', `root version ${signed.root.version} in ${root.where} names no publish key for product ${product}`)
  if (given !== undefined && !current.includes(given.toLowerCase())) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `--pubkey ${given.slice(0, 16)}… is not a publish key of product ${product} in root version ${signed.root.version} (${root.where})`)
  }
  return { key: given?.toLowerCase() ?? current[0]! }
}

/**
 * Loads what a run uses beyond the command-line paths (the run's statecharts, format-2 releases,
 * roots): a sharing daemon calls it once it is up, so that its first run after days of sharing does
 * not pay the modules' start-up (about 10 ms here, issue 15 item 4).
 */
export async function warmUp(): Promise<void> {
  await Promise.all([import('./run.ts'), import('./releases2.ts'), import('../../infra/formats/root.ts'), import('../../infra/release/release-trust.ts')])
}

/** Updates to the newest verified (or the given) revision; see UpdateResult. */
export async function update(dir: string, opts: UpdateOptions): Promise<UpdateResult> {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => (await run(wc, 'update', opts.rev, opts)).result)
}

/**
 * An update whose statechart the caller runs: the sharing daemon runs it as its child actor, so
 * live inspection shows it in the daemon's tree (issue 12 item 1). Like `update` it takes the
 * lock, recovers and delivers pending alerts first; `finish` with the machine's output returns
 * what `update` returns (or throws what it throws) and releases the lock, as `abandon` does for
 * a run whose machine never ended. With `deferRetain`, a run that ended well keeps the lock until
 * `settle` has kept the history store (issue 15 item 4: the result goes out first).
 */
export interface OpenedUpdate {
  logic: RunLogic
  input: RunRequest
  finish(output: RunOutput): Promise<UpdateResult>
  /**
   * After `finish` of a run opened with `deferRetain`: keeps the history store (R-ROLLBACK), then
   * releases the lock. Its warnings (it never fails); none, and the lock already let go, otherwise.
   */
  settle(): Promise<string[]>
  abandon(): Promise<void>
}

export async function openUpdate(dir: string, opts: UpdateOptions): Promise<OpenedUpdate> {
  const opened = await openWorkingCopy(dir, opts.log ?? silentLog)
  let released = false
  // Once only: a second release could remove a lock another process took since.
  const release = async (): Promise<void> => {
    if (released) return
    released = true
    await opened.release()
  }
  try {
    const prepared = await prepare(opened.wc, 'update', opts.rev, opts)
    return {
      logic: prepared.logic,
      input: prepared.input,
      finish: async (output) => {
        let keep = false
        try {
          const { result } = await prepared.finish(output)
          keep = prepared.retainLater() !== undefined
          return result
        } finally {
          if (!keep) await release()
        }
      },
      settle: async () => {
        const retain = prepared.retainLater()
        try {
          return retain && !released ? await retain().catch((err: unknown) => [`the history store was not kept: ${errorMessage(err)}`]) : []
        } finally {
          await release()
        }
      },
      abandon: release,
    }
  } catch (err) {
    await release()
    throw err
  }
}

/** R-ROLLBACK: back to an older revision, from local history when possible (no network). */
export async function rollback(dir: string, opts: RollbackOptions): Promise<RollbackResult> {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => {
    const { result, usedNetwork } = await run(wc, 'rollback', opts.rev, opts)
    return { from: result.from, to: result.to, source: usedNetwork ? 'remote' : 'local' }
  })
}

/** R-STATUS-2: adds a gitignore pattern; returns all patterns. */
export async function ignore(dir: string, pattern: string, opts: { log?: UpdaterLog } = {}): Promise<readonly string[]> {
  return withWorkingCopy(dir, opts.log ?? silentLog, (wc) => addIgnorePattern(wc.layout, pattern))
}

/** Revisions known to the working copy, which of them are local, and the current one. */
export async function history(dir: string, opts: { log?: UpdaterLog } = {}): Promise<HistoryReport> {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => {
    const stored = new Set(await wc.manifests.revisions())
    // Format-2 revisions (docs/formats.md §5 step 6): their release documents, with the release id as their hash.
    const stored2 = new Set((await wc.trees.revisions()).filter((r) => !stored.has(r)))
    const revs = new Set<number>([...stored, ...stored2, ...Object.keys(wc.state.record).map(Number)])
    const revisions: HistoryReport['revisions'] = []
    // The newest revert of each revision (a revision may be tried again by hand and fail again).
    const reverts = new Map((wc.state.reverted ?? []).map((r) => [r.rev, r]))
    for (const rev of [...revs].sort((a, b) => a - b)) {
      const release = stored.has(rev) ? await wc.manifests.get(rev) : undefined
      const release2 = stored2.has(rev) ? await wc.release2(rev).catch(() => undefined) : undefined
      let local = false
      const blobs = release ? [...blobsOf(release.manifest).keys()]
        : release2 ? await wc.entries(rev).then((m) => [...m.values()].flatMap((e) => (e.kind === 'file' ? [e.sha256] : [])), () => undefined)
          : undefined
      if (blobs) {
        local = true
        for (const sha of blobs) {
          if (!(await wc.history.has(sha))) {
            local = false
            break
          }
        }
      }
      const label = release?.manifest.label ?? release2?.release.label
      revisions.push({
        rev,
        manifestSha256: wc.state.record[String(rev)] ?? release2?.id ?? '',
        ...(label ? { label } : {}),
        current: rev === wc.state.current,
        manifest: release !== undefined || release2 !== undefined,
        local,
        ...(reverts.has(rev) ? { reverted: reverts.get(rev)! } : {}),
      })
    }
    return { product: wc.config.product, current: wc.state.current, latest: wc.state.newestVerified, historyDepth: wc.config.historyDepth, revisions }
  })
}

/** Runs recovery alone (every other operation runs it first anyway). */
export async function recover(dir: string, opts: { log?: UpdaterLog } = {}): Promise<RecoveryAction> {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (_wc, recovered) => recovered)
}
