// R-STATUS through the working copy's stat index (issue 13 item 2): as fast as `git status`.
// The index (infra/store/working-copy/stat-index.ts) holds every path's lstat data, its content
// hashes, the facts its status came from and the status itself, for a context: the installed and
// target revisions, their manifest files, the ignore rules. While the context holds, a path
// whose lstat data is unchanged (and not racy: mtime older than the index file, git's rule)
// keeps its status, and a directory whose lstat data is unchanged keeps its names, so it is not
// read again (git's untracked cache). Only what changed is read, hashed and classified — with the
// same table as the full classification. No manifest is parsed, nothing is hashed for an
// unchanged tree. A missing, corrupt or out-of-context index falls back to the full
// classification (status.ts), which writes a new index.
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, type BigIntStats, type Stats } from 'node:fs'
import { lstat, readFile } from 'node:fs/promises'
import { nodeCrypto } from '../../infra/node-crypto.ts'
import { UpswarmError } from '../../infra/errors.ts'
import { META_DIR } from '../../infra/release/manifest-core.ts'
import { isDiskFull } from '../../infra/store/disk-space.ts'
import { writeFileAtomicSync } from '../../infra/store/working-copy/atomic.ts'
import { IgnoreRules } from '../../infra/store/working-copy/ignore-rules.ts'
import { manifestFile, treePath, type WorkingCopyLayout } from '../../infra/store/working-copy/layout.ts'
import { StatCache } from '../../infra/store/working-copy/stat-cache.ts'
import {
  decodeIndex, entryOf, firstFrom, FLAG, IndexFormatError, IndexWriter, KEY, KIND, msOf, NO_STAT, PARENT_NONE, PARENT_ROOT, patchIndex, sameIndexContext, sameStatId, statIdOf, versionKey,
  type DecodedIndex, type IndexContext, type IndexRecord, type StatId,
} from '../../infra/store/working-copy/stat-index.ts'
import { askMonitor } from '../../infra/store/working-copy/monitor-wire.ts'
import { readSummary, writeSummary, type StatusSummary } from '../../infra/store/working-copy/status-summary.ts'
import type { MonitorToken } from '../../infra/store/working-copy/tree-watch.ts'
import { diskEntrySync, diskStatOf, hashContent, type DiskEntry } from '../../infra/store/working-copy/tree.ts'
import { mark } from '../../infra/timings.ts'
import type { Entry } from '../../infra/release/manifest.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { FILE_STATUSES, type FileFacts, type FileFactType, type FileStatus, type LocalEntry } from '../../machines/file-status.facts.ts'
import { classifyFile, classifyTree, shallowLocal, statusOfFacts, type TreeStatus } from './status.ts'
import type { PlannedPath } from '../../machines/update-run.machine.ts'
import type { JournalOp } from '../../infra/store/working-copy/journal.ts'
import { eachLimited } from '../../infra/parallel.ts'

export interface WorkingCopyStatus {
  /** Every path on disk or in either revision, sorted (built on first use: a large tree's list costs time and memory). */
  files: { path: string; status: FileStatus }[]
  /** The paths whose status is not `current`, sorted. */
  notCurrent: { path: string; status: FileStatus }[]
  /** How many paths `files` holds. */
  total: number
  /** Files whose contents were read. */
  hashed: number
  /** Versioned files classified from the index alone. */
  cached: number
  /** False when the disk was full and the index could not be written (`cacheIfRoom`). */
  saved: boolean
  /** How the index was used: `indexed` (it held), or why the full classification ran. */
  path: 'indexed' | 'no index' | 'corrupt index' | 'context changed'
  /** With `path: 'corrupt index'`: what was wrong with it. */
  indexProblem?: string
  /**
   * The file monitor (issue 13 item 2): `changes` when it said what changed since the index was
   * written (only that was lstat'ed), else why every path was lstat'ed.
   */
  monitor: 'changes' | string
  /** Paths lstat'ed by the walk over the index (the indexed path; 0 otherwise). */
  lstats: number
}

/** A directory's version key, made at its first use: a module-level one loaded node:crypto into every `status`. */
let dirKey: Buffer | undefined
const HASH_CONCURRENCY = 8
const ZERO_DIGEST = Buffer.alloc(32)

function kindOf(st: Stats | BigIntStats): number {
  if (st.isSymbolicLink()) return KIND.symlink
  if (st.isDirectory()) return KIND.dir
  if (st.isFile()) return KIND.file
  return KIND.other
}

function lstatOrNone(abs: string): Stats | undefined {
  try {
    return lstatSync(abs, { throwIfNoEntry: false })
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_IO', `cannot stat ${abs}: ${(err as Error).message}`, { cause: err })
  }
}

function bigLstat(abs: string): BigIntStats | undefined {
  try {
    return lstatSync(abs, { bigint: true, throwIfNoEntry: false })
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_IO', `cannot stat ${abs}: ${(err as Error).message}`, { cause: err })
  }
}

async function statIdOrNone(file: string): Promise<StatId> {
  const st = await lstat(file, { bigint: true }).catch(() => undefined)
  return st ? statIdOf(st) : NO_STAT
}

/** The context a status is computed in, read from the working copy's metadata. */
async function currentContext(layout: WorkingCopyLayout, baseRev: number, targetRev: number): Promise<{ ctx: IndexContext; ignoreText: string }> {
  let ignoreText = ''
  try {
    ignoreText = await readFile(layout.ignore, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read ignore patterns ${layout.ignore}: ${(err as Error).message}`, { cause: err })
    }
  }
  const ctx: IndexContext = {
    statuses: true,
    baseRev,
    targetRev,
    root: await statIdOrNone(layout.root),
    baseManifest: baseRev > 0 ? await statIdOrNone(manifestFile(layout, baseRev)) : NO_STAT,
    targetManifest: targetRev > 0 ? await statIdOrNone(manifestFile(layout, targetRev)) : NO_STAT,
    ignoreDigest: ignoreText === '' ? ZERO_DIGEST : nodeCrypto().createHash('sha256').update(ignoreText).digest(),
  }
  return { ctx, ignoreText }
}

async function writeIndex(layout: WorkingCopyLayout, bytes: Buffer, cacheIfRoom: boolean): Promise<boolean> {
  // Not fsynced: a torn index after a crash fails its checksum and is rebuilt (it is only a cache).
  // Written synchronously, in one call: the promise form goes through the thread pool in 512 KiB steps.
  try {
    writeFileAtomicSync(layout.statCache, bytes, layout.tmp)
    return true
  } catch (err) {
    if (cacheIfRoom && isDiskFull(err)) return false
    throw err
  }
}

/**
 * R-STATUS of a working copy at `baseRev` compared with `targetRev`, through its stat index.
 * With `cacheIfRoom` (a read-only command), a full disk skips writing the index (`saved` false).
 */
export async function workingCopyStatus(
  wc: WorkingCopy, baseRev: number, targetRev: number, opts: { cacheIfRoom?: boolean; alsoTargets?: readonly number[] } = {},
): Promise<WorkingCopyStatus> {
  const { layout } = wc
  mark('status: start')
  const { ctx, ignoreText } = await currentContext(layout, baseRev, targetRev)
  mark('status: context')
  // The short answer: the last status, when the file monitor saw nothing change since it.
  const summary = await readSummary(layout.statusSummary, layout.statCache, ctx)
  const askedForSummary = summary ? await askMonitor(layout.monitorSocket, summary.token) : undefined
  mark('status: monitor asked for the summary')
  if (summary && askedForSummary && 'answer' in askedForSummary && !askedForSummary.answer.all && askedForSummary.answer.paths.length === 0) {
    return lazyFiles({
      notCurrent: summary.notCurrent, total: summary.total, hashed: 0, cached: summary.cached, saved: true, path: 'indexed' as const, monitor: 'changes', lstats: 0,
    }, () => filesOfIndex(layout))
  }
  let index: DecodedIndex | undefined
  let indexMs = 0
  let indexNs = 0n
  let path: WorkingCopyStatus['path'] = 'no index'
  let indexProblem: string | undefined
  try {
    const st = await lstat(layout.statCache, { bigint: true })
    indexNs = st.mtimeNs
    // In node's own ms conversion: the racy test compares like with like.
    const written = statIdOf(st)
    indexMs = msOf(written.mtimeSec, written.mtimeNsec)
    // One synchronous read: the promise form goes through the thread pool in 512 KiB steps.
    const bytes = readFileSync(layout.statCache)
    mark('status: index read')
    index = decodeIndex(bytes, layout.statCache)
    mark('status: index decoded')
  } catch (err) {
    if (err instanceof IndexFormatError) {
      path = 'corrupt index'
      indexProblem = err.message
    } else if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read the stat index ${layout.statCache}: ${(err as Error).message}`, { cause: err })
    }
  }
  const rules = (): IgnoreRules => IgnoreRules.parse(ignoreText)
  // What changed since the index's token, as the file monitor saw it; its new token goes into
  // the index written now (taken before the disk is read, so nothing after it is lost).
  // (The summary is written with the index's token: its question was this one, and its answer serves.)
  const sameToken = !!summary && !!index?.monitor && index.monitor.id === summary.token.id && index.monitor.seq === summary.token.seq
  const asked = sameToken && askedForSummary ? askedForSummary : await askMonitor(layout.monitorSocket, index?.monitor ?? null)
  const token = 'answer' in asked ? asked.answer.token : null
  const monitor = 'none' in asked ? asked.none : asked.answer.all ? `the monitor said: ${asked.answer.why}` : 'changes'
  mark('status: monitor asked')
  // A caller that can use the statuses against another target too (an update: against the
  // installed revision or the one it goes to) takes an index written for that one.
  let indexCtx = ctx
  if (index && !sameIndexContext(index.context, ctx) && opts.alsoTargets?.includes(index.context.targetRev)) {
    const other = (await currentContext(layout, baseRev, index.context.targetRev)).ctx
    if (sameIndexContext(index.context, other)) indexCtx = other
  }
  if (index && sameIndexContext(index.context, indexCtx)) {
    const dirty = 'answer' in asked && !asked.answer.all ? new Set(asked.answer.paths) : undefined
    const { status: r, bytes } = await statusFromIndex(layout, index, indexMs, indexCtx, rules, dirty, token)
    mark('status: classified')
    const saved = bytes ? await writeIndex(layout, bytes, !!opts.cacheIfRoom) : true
    mark('status: index written')
    if (token && saved && (bytes || !summary)) await saveSummary(layout, indexCtx, { token, total: r.total, cached: r.cached, notCurrent: r.notCurrent }, !!opts.cacheIfRoom)
    // (Object.assign keeps `files` a getter: the list is built only if read.)
    return Object.assign(r, { saved, path: 'indexed' as const, monitor })
  }
  if (index) path = 'context changed'
  // The full classification: manifests parsed, every path classified, the index written anew.
  const cache = index ? StatCache.fromIndex(index, indexNs) : StatCache.empty()
  const base = await wc.entries(baseRev)
  const tree = await classifyTree(layout, base, targetRev === baseRev ? base : await wc.entries(targetRev), rules(), cache)
  // The manifest files' identity after they were read and verified.
  const { ctx: after } = await currentContext(layout, baseRev, targetRev)
  const written = { ...after, root: ctx.root }
  const saved = await writeIndex(layout, indexOfTree(tree, cache, written, token), !!opts.cacheIfRoom)
  const files = tree.paths.map((p) => ({ path: p.path, status: p.status }))
  const notCurrent = files.filter((f) => f.status !== 'current')
  if (token && saved) await saveSummary(layout, written, { token, total: files.length, cached: tree.cached, notCurrent }, !!opts.cacheIfRoom)
  return {
    files, notCurrent, total: files.length,
    hashed: tree.hashed, cached: tree.cached, saved, path, ...(indexProblem ? { indexProblem } : {}), monitor, lstats: 0,
  }
}

async function saveSummary(layout: WorkingCopyLayout, ctx: IndexContext, s: StatusSummary, cacheIfRoom: boolean): Promise<void> {
  await writeSummary(layout.statusSummary, layout.statCache, layout.tmp, ctx, s).catch((err: unknown) => {
    if (!(cacheIfRoom && isDiskFull(err))) throw err
  })
}

/** Every path and its status as the index holds them (the short answer's `files`, built on first use). */
function filesOfIndex(layout: WorkingCopyLayout): WorkingCopyStatus['files'] {
  return filesOf(decodeIndex(readFileSync(layout.statCache), layout.statCache))
}

/** `o` with a `files` list built on first use, then kept. */
function lazyFiles<T extends object>(o: T, build: () => WorkingCopyStatus['files']): T & { files: WorkingCopyStatus['files'] } {
  return Object.defineProperty(o, 'files', {
    configurable: true, enumerable: true,
    get(this: T) {
      const files = build()
      Object.defineProperty(this, 'files', { value: files, enumerable: true })
      return files
    },
  }) as T & { files: WorkingCopyStatus['files'] }
}

/** The index of a fully classified tree. */
function indexOfTree(tree: TreeStatus, cache: StatCache, ctx: IndexContext, token: MonitorToken | null): Buffer {
  const w = new IndexWriter()
  const keys = new Map<object, Buffer>()
  const keyOf = (e: Parameters<typeof versionKey>[0]): Buffer => {
    let k = keys.get(e)
    if (!k) keys.set(e, (k = versionKey(e)))
    return k
  }
  for (const p of tree.paths) {
    const d = tree.disk.get(p.path)
    const { base, target, ignored } = p.facts
    const hashes = d?.kind === 'file' ? cache.recorded(p.path, d.st) : undefined
    const rec: IndexRecord = {
      path: p.path,
      kind: d ? KIND[d.kind] : KIND.absent,
      flags: (ignored ? FLAG.ignored : 0) | (base?.kind === 'file' ? FLAG.baseFile : 0) | (target?.kind === 'file' ? FLAG.targetFile : 0) |
        ((target ?? base)?.kind === 'dir' ? FLAG.entryIsDir : 0),
      status: FILE_STATUSES.indexOf(p.status),
      mode: d ? Number(d.st.mode) : 0,
      stat: d ? statIdOf(d.st) : NO_STAT,
      ...(hashes ? { sha1: Buffer.from(hashes.sha1, 'hex'), sha256: Buffer.from(hashes.sha256, 'hex') } : {}),
      ...(base ? { baseKey: keyOf(base) } : {}),
      ...(target ? { targetKey: keyOf(target) } : {}),
    }
    w.add(rec)
  }
  return w.finish(ctx, token)
}

/**
 * What changed, from the paths the file monitor saw change (issue 13 item 2) instead of a walk:
 * each is lstat'ed and compared with its entry. The monitor marks every name that appears or
 * goes, and everything inside a directory that appears; what it cannot mark one by one is what
 * was inside a directory that went away or was replaced as a whole (moved out, moved over): so
 * under a marked directory that is gone, or is not the directory the index knew, every entry of
 * the index is looked at too.
 */
function changedSince(
  index: DecodedIndex, rootAbs: string, dirty: Set<string>, unchanged: (i: number, st: Stats) => boolean,
): { changed: Changed[]; lstats: number } {
  const changed: Changed[] = []
  const done = new Set<number>()
  let lstats = 0
  const visit = (path: string, i: number): void => {
    if (i >= 0) {
      if (done.has(i)) return
      done.add(i)
    }
    lstats++
    const st = lstatOrNone(`${rootAbs}/${path}`)
    if (i < 0) {
      if (st) changed.push({ i, path, st })
      return
    }
    const same = !!st && unchanged(i, st)
    if (!same && (st || index.kind[i] !== KIND.absent)) changed.push({ i, path, st })
    // The directory the index knew is gone or replaced: look at everything the index has under it.
    if (index.kind[i] === KIND.dir && !(st?.isDirectory() && st.ino === index.statsAt(i).ino)) {
      const prefix = `${path}/`
      for (let j = firstFrom(index, prefix); j < index.count && index.pathAt(j).startsWith(prefix); j++) visit(index.pathAt(j), j)
    }
  }
  const skip = `${META_DIR}/`
  for (const path of dirty) {
    if (path === '' || path === META_DIR || path.startsWith(skip)) continue
    visit(path, entryOf(index, path))
  }
  return { changed, lstats }
}

interface Changed {
  /** Entry of the index, or -1 for a path the index does not have. */
  i: number
  path: string
  st: Stats | undefined
}

/**
 * The statuses from the index and what changed on disk since it was written. `bytes` is the
 * index to write when anything differs from the one read (undefined: nothing to write).
 * `dirty`: the paths the file monitor saw change since the index's token (a directory is in it
 * when a name in it appeared or went); every other path keeps its entry without an lstat.
 */
async function statusFromIndex(
  layout: WorkingCopyLayout, index: DecodedIndex, indexMs: number, ctx: IndexContext, rules: () => IgnoreRules,
  dirty: Set<string> | undefined, token: MonitorToken | null,
): Promise<{ status: Pick<WorkingCopyStatus, 'files' | 'notCurrent' | 'total' | 'hashed' | 'cached' | 'lstats'>; bytes?: Buffer }> {
  const n = index.count
  const { kind, parent } = index
  const changed: Changed[] = []
  const rootAbs = layout.root
  // Unchanged: same kind, mode and stat data, and older than the index (else racy).
  const same = (st: Stats, mtimeMs: number, ctimeMs: number, size: number, ino: number, mode: number): boolean =>
    st.mtimeMs === mtimeMs && st.ctimeMs === ctimeMs && st.size === size && st.ino === ino && st.mode === mode && st.mtimeMs < indexMs
  const unchanged = (i: number, st: Stats): boolean => same(st, index.mtimeMs[i]!, index.ctimeMs[i]!, index.size[i]!, index.ino[i]!, index.mode[i]!)
  // The same from one entry's bytes (the monitor's few paths: the arrays of all 100 000 are not built).
  const unchangedOne = (i: number, st: Stats): boolean => {
    const e = index.statsAt(i)
    return same(st, e.mtimeMs, e.ctimeMs, e.size, e.ino, e.mode)
  }

  const rootSt = lstatOrNone(rootAbs)
  if (!rootSt) throw new UpswarmError('UPSWARM_E_IO', `cannot stat ${rootAbs}: it no longer exists`)
  // With many changes, one walk over everything costs less than finding each in the index.
  if (dirty && dirty.size > n / 8) dirty = undefined
  const rootSame = (dirty ? !dirty.has('') : rootSt.mtimeMs < indexMs) && sameStatId(ctx.root, index.context.root)
  let lstats = 1
  if (dirty) {
    const found = changedSince(index, rootAbs, dirty, unchangedOne)
    changed.push(...found.changed)
    lstats += found.lstats
  } else {
  const paths = index.paths
  // Children lists by entry (slot n: the root), as linked lists in two typed arrays.
  const firstChild = new Int32Array(n + 1).fill(-1)
  const nextSibling = new Int32Array(n).fill(-1)
  for (let i = n - 1; i >= 0; i--) {
    const p = parent[i]!
    if (p < 0) continue
    nextSibling[i] = firstChild[p]!
    firstChild[p] = i
  }
  const seen = new Uint8Array(n)
  // Directories to visit: entry (n: the root, -1: one the index does not have), path, whether its names are known.
  const dirs: { i: number; rel: string; known: boolean }[] = [{ i: n, rel: '', known: rootSame }]
  while (dirs.length > 0) {
    const dir = dirs.pop()!
    if (dir.known) {
      for (let c = firstChild[dir.i]!; c >= 0; c = nextSibling[c]!) {
        seen[c] = 1
        // An unchanged directory has no new names: a path missing from it is still missing.
        if (kind[c] === KIND.absent) continue
        lstats++
        const st = lstatOrNone(`${rootAbs}/${paths[c]}`)
        if (st && unchanged(c, st)) {
          if (kind[c] === KIND.dir) dirs.push({ i: c, rel: paths[c]!, known: true })
          continue
        }
        changed.push({ i: c, path: paths[c]!, st })
        if (st?.isDirectory()) dirs.push({ i: c, rel: paths[c]!, known: false })
      }
      continue
    }
    const abs = dir.rel === '' ? rootAbs : `${rootAbs}/${dir.rel}`
    // The index's entries in this directory, by name.
    const known = new Map<string, number>()
    if (dir.i >= 0) for (let c = firstChild[dir.i]!; c >= 0; c = nextSibling[c]!) known.set(paths[c]!.slice(dir.rel === '' ? 0 : dir.rel.length + 1), c)
    let names: string[]
    try {
      names = readdirSync(abs)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read directory ${abs}: ${(err as Error).message}`, { cause: err })
    }
    for (const name of names) {
      if (dir.rel === '' && name === META_DIR) continue
      const rel = dir.rel === '' ? name : `${dir.rel}/${name}`
      lstats++
      const st = lstatOrNone(`${abs}/${name}`)
      if (!st) continue
      const c = known.get(name)
      if (c === undefined) {
        changed.push({ i: -1, path: rel, st })
        if (st.isDirectory()) dirs.push({ i: -1, rel, known: false })
        continue
      }
      seen[c] = 1
      const same = unchanged(c, st)
      if (!same) changed.push({ i: c, path: rel, st })
      if (st.isDirectory()) dirs.push({ i: c, rel, known: same })
    }
  }
  // Entries on disk when the index was written that no walk reached: gone since.
  for (let i = 0; i < n; i++) if (!seen[i] && kind[i] !== KIND.absent) changed.push({ i, path: paths[i]!, st: undefined })
  }

  let cached = 0
  for (let i = 0; i < n; i++) if (kind[i] === KIND.file && !(index.flags[i]! & FLAG.ignored) && index.flags[i]! & (FLAG.baseFile | FLAG.targetFile)) cached++
  const newToken = !!token && (index.monitor?.id !== token.id || index.monitor.seq !== token.seq)
  if (changed.length === 0 && rootSame && !newToken) {
    return { status: lazyFiles({ notCurrent: notCurrentOf(index), total: n, hashed: 0, cached, lstats }, () => filesOf(index)) }
  }

  // Re-classify what changed, with the facts the index keeps about the revisions.
  let hashed = 0
  let ignoreRules: IgnoreRules | undefined
  const redone = new Map<number, IndexRecord | undefined>()
  const added: IndexRecord[] = []
  for (const ch of changed) {
    if (ch.i >= 0 && kind[ch.i] === KIND.file && !(index.flags[ch.i]! & FLAG.ignored) && index.flags[ch.i]! & (FLAG.baseFile | FLAG.targetFile)) cached--
  }
  mark('status: changes found')
  // A few at a time: a changed file is read and hashed, and reads wait on the thread pool.
  await eachLimited(changed, HASH_CONCURRENCY, async (ch) => {
    const rec = await reclassify(layout, index, ch, () => (ignoreRules ??= rules()))
    if (rec.hashed) hashed++
    if (ch.i >= 0) redone.set(ch.i, rec.record)
    else if (rec.record) added.push(rec.record)
  })
  added.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  mark('status: changes classified')
  const { bytes, total, notCurrent } = rewrite(index, redone, added, { ...ctx, root: statIdOf(await lstat(rootAbs, { bigint: true })) }, token)
  mark('status: index rewritten')
  return { status: lazyFiles({ notCurrent, total, hashed, cached, lstats }, () => filesOf(decodeIndex(bytes, layout.statCache, { written: true }))), bytes }
}

/**
 * The index with the entries of `redone` replaced (undefined: dropped) and `added` (sorted) put
 * in their places: the unchanged entries are copied as bytes, in runs, with their parents'
 * new numbers; no path of theirs is decoded.
 */
function rewrite(
  index: DecodedIndex, redone: Map<number, IndexRecord | undefined>, added: IndexRecord[], ctx: IndexContext, token: MonitorToken | null,
): { bytes: Buffer; total: number; notCurrent: WorkingCopyStatus['notCurrent'] } {
  const current = FILE_STATUSES.indexOf('current')
  const notCurrent: WorkingCopyStatus['notCurrent'] = []
  const note = (path: () => string, status: number): void => {
    if (status !== current) notCurrent.push({ path: path(), status: FILE_STATUSES[status]! })
  }
  const n = index.count
  // Edited files only (nothing new, nothing gone): their entries are replaced where they are.
  if (added.length === 0 && [...redone.values()].every((r) => r !== undefined)) {
    const bytes = patchIndex(index, redone as Map<number, IndexRecord>, ctx, token)
    if (bytes) return { bytes, total: n, notCurrent: notCurrentOf(index, redone as Map<number, IndexRecord>) }
  }
  // Where each added path goes (before the first old entry not before it), and every entry's new number.
  const addAt = added.map((r) => firstFrom(index, r.path))
  const newNo = new Int32Array(n).fill(-1)
  const addedNo = new Int32Array(added.length)
  let no = 0
  let a = 0
  for (let i = 0; i < n; i++) {
    while (a < added.length && addAt[a]! <= i) addedNo[a++] = no++
    if (redone.has(i) && !redone.get(i)) continue
    newNo[i] = no++
  }
  while (a < added.length) addedNo[a++] = no++
  const addedByPath = new Map(added.map((r, k) => [r.path, k]))
  const parentByPath = (path: string): number => {
    const cut = path.lastIndexOf('/')
    if (cut < 0) return PARENT_ROOT
    const dir = path.slice(0, cut)
    const j = entryOf(index, dir)
    if (j >= 0 && newNo[j]! >= 0) return newNo[j]!
    const k = addedByPath.get(dir)
    return k === undefined ? PARENT_NONE : addedNo[k]!
  }
  const parentOfOld = (i: number): number => {
    const p = index.parent[i]!
    if (p === n) return PARENT_ROOT
    return p >= 0 && newNo[p]! >= 0 ? newNo[p]! : parentByPath(index.pathAt(i))
  }
  const w = new IndexWriter(index.buf.length + added.length * 512)
  let run = -1
  const flush = (end: number): void => {
    if (run < 0) return
    w.copyRun(index, run, end, parentOfOld)
    for (let k = run; k < end; k++) note(() => index.pathAt(k), index.status[k]!)
    run = -1
  }
  const put = (rec: IndexRecord, parent: number): void => {
    w.addLinked(rec, parent)
    note(() => rec.path, rec.status)
  }
  a = 0
  for (let i = 0; i < n; i++) {
    while (a < added.length && addAt[a]! <= i) {
      flush(i)
      put(added[a]!, parentByPath(added[a]!.path))
      a++
    }
    if (!redone.has(i)) {
      if (run < 0) run = i
      continue
    }
    flush(i)
    const rec = redone.get(i)
    if (rec) put(rec, parentOfOld(i))
  }
  flush(n)
  for (; a < added.length; a++) put(added[a]!, parentByPath(added[a]!.path))
  return { bytes: w.finish(ctx, token), total: no, notCurrent }
}

/** The entries not `current`, in order; `replaced`: entries whose record is new (an in-place patch). */
function notCurrentOf(index: DecodedIndex, replaced?: Map<number, IndexRecord>): WorkingCopyStatus['notCurrent'] {
  const current = FILE_STATUSES.indexOf('current')
  const out: WorkingCopyStatus['notCurrent'] = []
  for (let i = 0; i < index.count; i++) {
    const r = replaced?.get(i)
    const status = r ? r.status : index.status[i]!
    if (status !== current) out.push({ path: r ? r.path : index.pathAt(i), status: FILE_STATUSES[status]! })
  }
  return out
}

function filesOf(index: DecodedIndex): WorkingCopyStatus['files'] {
  const files = new Array<{ path: string; status: FileStatus }>(index.count)
  for (let i = 0; i < index.count; i++) files[i] = { path: index.pathAt(i), status: FILE_STATUSES[index.status[i]!]! }
  return files
}

/**
 * The index record of a path whose disk entry changed (or is new, or gone): the facts about the
 * revisions come from the index, the local one from the disk; undefined when the path no longer
 * belongs in the status (neither on disk nor in a revision).
 */
async function reclassify(
  layout: WorkingCopyLayout, index: DecodedIndex, ch: Changed, rules: () => IgnoreRules, revision?: RevisionFacts, known?: StatCache,
): Promise<{ record: IndexRecord | undefined; hashed: boolean }> {
  const { i, path } = ch
  const flags = i >= 0 ? index.flags[i]! : 0
  const baseKey = revision ? revision.baseKey : i >= 0 && index.baseKeyAt[i]! >= 0 ? index.buf.subarray(index.baseKeyAt[i]!, index.baseKeyAt[i]! + KEY) : undefined
  const targetKey = revision ? revision.targetKey : i >= 0 && index.targetKeyAt[i]! >= 0 ? index.buf.subarray(index.targetKeyAt[i]!, index.targetKeyAt[i]! + KEY) : undefined
  const abs = treePath(layout, path)
  // The stat data recorded is taken now, in nanoseconds (the walk's was only compared).
  let st = ch.st ? bigLstat(abs) : undefined
  if (!st && !baseKey && !targetKey) return { record: undefined, hashed: false }
  // The ignore rules' answer depends on whether the path is a directory (`name/` patterns).
  const wasDir = i >= 0 && (index.kind[i] === KIND.absent ? !!(flags & FLAG.entryIsDir) : index.kind[i] === KIND.dir)
  const isDir = st ? st.isDirectory() : !!(flags & FLAG.entryIsDir)
  const ignored = i >= 0 && wasDir === isDir ? !!(flags & FLAG.ignored) : rules().ignores(path, isDir)
  const revFlags = revision ? revision.flags : flags & (FLAG.baseFile | FLAG.targetFile | FLAG.entryIsDir)
  let hashes: { sha1: Buffer; sha256: Buffer } | undefined
  let hashed = false
  let localKey: Buffer | undefined
  if (st) {
    if (st.isDirectory()) localKey = (dirKey ??= versionKey({ kind: 'dir' }))
    else if (st.isSymbolicLink()) localKey = versionKey({ kind: 'symlink', target: readlinkSync(abs) })
    else if (st.isFile() && !ignored && revFlags & (FLAG.baseFile | FLAG.targetFile)) {
      // Known when the update just installed it at this very lstat data (the stat cache), else read.
      const had = known?.recorded(path, diskStatOf(st))
      let h: { sha1: string; sha256: string }
      if (had) h = had
      else {
        try {
          h = await hashContent(abs, Number(st.size))
        } catch (err) {
          throw new UpswarmError('UPSWARM_E_IO', `cannot read ${abs}: ${(err as Error).message}`, { cause: err })
        }
        hashed = true
      }
      localKey = versionKey({ kind: 'file', sha1: h.sha1, sha256: h.sha256, mode: Number(st.mode) })
      // Recorded only when the file did not change while it was read.
      const after = had ? st : bigLstat(abs)
      if (after && sameStatId(statIdOf(after), statIdOf(st))) hashes = { sha1: Buffer.from(h.sha1, 'hex'), sha256: Buffer.from(h.sha256, 'hex') }
      else st = after ?? st
    }
  }
  const facts: FileFactType[] = [
    ignored ? 'rules.ignored' : 'rules.tracked',
    baseKey ? 'base.present' : 'base.absent',
    !targetKey ? 'target.absent' : !baseKey ? 'target.added' : baseKey.equals(targetKey) ? 'target.same' : 'target.changed',
    !st ? 'local.absent' : localKey && targetKey?.equals(localKey) ? 'local.asTarget' : localKey && baseKey?.equals(localKey) ? 'local.asBase' : 'local.other',
  ]
  return {
    record: {
      path,
      kind: st ? kindOf(st) : KIND.absent,
      flags: (ignored ? FLAG.ignored : 0) | revFlags,
      status: FILE_STATUSES.indexOf(statusOfFacts(facts)),
      mode: st ? Number(st.mode) : 0,
      stat: st ? statIdOf(st) : NO_STAT,
      ...(hashes ? hashes : {}),
      ...(baseKey ? { baseKey } : {}),
      ...(targetKey ? { targetKey } : {}),
    },
    hashed,
  }
}

/** What an index record says of a path's revisions: the version keys and the flags they set. */
interface RevisionFacts {
  baseKey?: Buffer
  targetKey?: Buffer
  flags: number
}

/** The facts of a path whose entry is `e` in both revisions of the index (undefined: in neither). */
function sameInBoth(e: Entry | undefined): RevisionFacts | undefined {
  if (!e) return undefined
  const key = versionKey(e)
  return { baseKey: key, targetKey: key, flags: e.kind === 'file' ? FLAG.baseFile | FLAG.targetFile : e.kind === 'dir' ? FLAG.entryIsDir : 0 }
}

/**
 * After an update planned from the tree diff (issue 13 items 3 and 6): the index the plan read,
 * written for the installed revision, becomes the index of `to` against itself without a walk.
 * The paths whose entries may differ between the two (`entries`: each one's entry in `to`,
 * undefined when `to` has none) are lstat'ed and classified again; every other record is copied
 * as it was, its statuses still true (its entry is the same in both revisions, and the update did
 * not touch it). The directories the update wrote into keep their old lstat data, so the next
 * status reads them again. Hashes of the files just installed come from `known`. An index that
 * cannot be read is removed: the next status classifies every path.
 */
export async function reindexAfterUpdate(wc: WorkingCopy, to: number, entries: ReadonlyMap<string, Entry | undefined>, known: StatCache): Promise<void> {
  const { layout } = wc
  let index: DecodedIndex
  try {
    index = decodeIndex(readFileSync(layout.statCache), layout.statCache)
  } catch {
    rmSync(layout.statCache, { force: true })
    return
  }
  const { ctx, ignoreText } = await currentContext(layout, to, to)
  if (entries.size === 0 && sameIndexContext(index.context, { ...ctx, root: index.context.root })) return
  let ignoreRules: IgnoreRules | undefined
  const rules = (): IgnoreRules => (ignoreRules ??= IgnoreRules.parse(ignoreText))
  const redone = new Map<number, IndexRecord | undefined>()
  const added: IndexRecord[] = []
  for (const [path, e] of entries) {
    const ch: Changed = { i: entryOf(index, path), path, st: lstatOrNone(treePath(layout, path)) }
    const { record } = await reclassify(layout, index, ch, rules, sameInBoth(e) ?? { flags: 0 }, known)
    if (ch.i >= 0) redone.set(ch.i, record)
    else if (record) added.push(record)
  }
  added.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  mark('reindex: paths classified')
  // The root's lstat data as the index had it: if the update changed its names, the next status reads it again.
  const { bytes } = rewrite(index, redone, added, { ...ctx, root: index.context.root }, index.monitor)
  mark('reindex: rewritten')
  await writeIndex(layout, bytes, false)
}

/**
 * After an update planned from every path (a first install, a format-1 copy): the index of `to`
 * against itself, from the plan's classification and what the journal's `ops` changed (`after`:
 * the apply's lstat of each path it wrote, the files written in place too), so the first status after it reads no file and classifies nothing again (issue 13 item
 * 6: a first status of 1 000 000 files after `init` classified every path against the manifest).
 */
export async function indexAfterFullUpdate(wc: WorkingCopy, to: number, tree: TreeStatus, ops: readonly JournalOp[], after: ReadonlyMap<string, DiskEntry | undefined>, cache: StatCache): Promise<void> {
  const { layout } = wc
  const touched = new Set(ops.map((op) => op.path))
  const paths: PlannedPath[] = []
  const disk = new Map<string, DiskEntry>()
  for (const p of tree.paths) {
    const t = p.facts.target
    let d = tree.disk.get(p.path)
    let local = p.facts.local
    if (touched.has(p.path) || after.has(p.path)) {
      // The apply's own lstat of what it wrote, where it took one.
      d = after.has(p.path) ? after.get(p.path) : diskEntrySync(treePath(layout, p.path))
      // Synchronous where the hashes are recorded (every file the run wrote): no promise per path.
      local = d ? (recordedLocal(p.path, d, cache) ?? await localAfter(layout, p.path, d, cache)) : undefined
    }
    if (!d && !t) continue
    const facts: FileFacts = { ignored: p.facts.ignored, ...(t ? { base: t, target: t } : {}), ...(local ? { local } : {}) }
    paths.push({ path: p.path, status: classifyFile(facts), facts })
    if (d) disk.set(p.path, d)
  }
  mark('reindex: paths classified')
  const { ctx } = await currentContext(layout, to, to)
  // The root's names are read again by the next status (something may have appeared since the plan's walk).
  await writeIndex(layout, indexOfTree({ paths, disk, hashed: 0, cached: 0 }, cache, { ...ctx, root: NO_STAT }, null), false)
}

/** What is at a path the apply wrote, when it is not a file or its hashes were recorded at install. */
function recordedLocal(path: string, d: DiskEntry, cache: StatCache): LocalEntry | undefined {
  if (d.kind !== 'file') return shallowLocal(d)
  const h = cache.recorded(path, d.st)
  return h && { kind: 'file', mode: Number(d.st.mode) & 0o7777, size: Number(d.st.size), sha1: h.sha1, sha256: h.sha256 }
}

/** What is at a path the apply wrote, its hashes from the cache (recorded at install) or read now. */
async function localAfter(layout: WorkingCopyLayout, path: string, d: DiskEntry, cache: StatCache): Promise<LocalEntry> {
  if (d.kind !== 'file') return shallowLocal(d)
  let h = cache.recorded(path, d.st)
  if (!h) {
    h = await hashContent(treePath(layout, path), Number(d.st.size))
    cache.set(path, d.st, h)
  }
  return { kind: 'file', mode: Number(d.st.mode) & 0o7777, size: Number(d.st.size), sha1: h.sha1, sha256: h.sha256 }
}
