// R-STATUS for a whole working copy: every path on disk or in either revision gets the facts
// the file-status statechart classifies, and its status from the table compiled from that
// statechart (no xstate loaded: `status` stays a short command). Contents are hashed only for
// versioned files whose stat-cache entry is missing or racy, so an unchanged tree is classified
// from lstat alone.
import type { Entry } from '../../infra/release/manifest.ts'
import { comparePaths } from '../../infra/release/manifest-core.ts'
import { isDiskFull } from '../../infra/store/disk-space.ts'
import { IgnoreRules } from '../../infra/store/working-copy/ignore-rules.ts'
import { StatCache } from '../../infra/store/working-copy/stat-cache.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { diskEntrySync, observeFile, walkTree, type DiskEntry } from '../../infra/store/working-copy/tree.ts'
import { treePath, type WorkingCopyLayout } from '../../infra/store/working-copy/layout.ts'
import { FACT_STAGES, type FileFacts, type FileFactType, type FileStatus, type FileStatusTable, type LocalEntry } from '../../machines/file-status.facts.ts'
import { FILE_STATUS_TABLE } from '../../machines/generated/file-status-table.ts'
import type { PlannedPath } from '../../machines/update-run.machine.ts'
import { eachLimited } from '../../infra/parallel.ts'

const HASH_CONCURRENCY = 4

export interface TreeStatus {
  paths: PlannedPath[]
  disk: Map<string, DiskEntry>
  /** Files whose contents were read. */
  hashed: number
  /** Files classified from the stat cache alone. */
  cached: number
}

/**
 * Status of a working copy against two revisions' entries, with its stat cache and ignore rules.
 * With `cacheIfRoom` (a read-only command: `status`), a full disk skips saving the stat cache,
 * which only saves hashing next time, instead of failing (`cacheSaved` false).
 */
export async function classifyWorkingCopy(
  wc: WorkingCopy, base: Map<string, Entry>, target: Map<string, Entry>, opts: { cacheIfRoom?: boolean } = {},
): Promise<{ tree: TreeStatus; cache: StatCache; cacheSaved: boolean }> {
  const cache = await StatCache.load(wc.layout.statCache)
  const tree = await classifyTree(wc.layout, base, target, await IgnoreRules.load(wc.layout), cache)
  const cacheSaved = await cache.save(wc.layout.statCache, wc.layout.tmp).then(() => true, (err: unknown) => {
    if (opts.cacheIfRoom && isDiskFull(err)) return false
    throw err
  })
  return { tree, cache, cacheSaved }
}

export async function classifyTree(
  layout: WorkingCopyLayout,
  base: Map<string, Entry>,
  target: Map<string, Entry>,
  rules: IgnoreRules,
  cache: StatCache,
): Promise<TreeStatus> {
  const disk = await walkTree(layout.root)
  const status = await classifyPathSet(layout, new Set<string>([...disk.keys(), ...base.keys(), ...target.keys()]), disk, base, target, rules, cache)
  // Only the versioned files still on disk keep their hashes.
  cache.retain(status.hashedPaths)
  return { paths: status.paths, disk, hashed: status.hashed, cached: status.cached }
}

/**
 * The status of some paths only (issue 13 item 3: an update planned from the tree diff): each is
 * lstat'ed where it is, nothing else is read. `base` and `target` must hold the paths' entries
 * (a path in neither is in neither revision). The cache keeps its other entries.
 */
export async function classifyPaths(
  layout: WorkingCopyLayout,
  paths: ReadonlySet<string>,
  base: ReadonlyMap<string, Entry>,
  target: ReadonlyMap<string, Entry>,
  rules: IgnoreRules,
  cache: StatCache,
): Promise<TreeStatus> {
  const disk = new Map<string, DiskEntry>()
  for (const path of paths) {
    const d = diskEntrySync(treePath(layout, path))
    if (d) disk.set(path, d)
  }
  const status = await classifyPathSet(layout, paths, disk, base, target, rules, cache)
  return { paths: status.paths, disk, hashed: status.hashed, cached: status.cached }
}

async function classifyPathSet(
  layout: WorkingCopyLayout,
  all: ReadonlySet<string>,
  disk: ReadonlyMap<string, DiskEntry>,
  base: ReadonlyMap<string, Entry>,
  target: ReadonlyMap<string, Entry>,
  rules: IgnoreRules,
  cache: StatCache,
): Promise<{ paths: PlannedPath[]; hashed: number; cached: number; hashedPaths: Set<string> }> {
  const facts = new Map<string, FileFacts>()
  const toHash: { path: string; d: Extract<DiskEntry, { kind: 'file' }>; facts: FileFacts }[] = []
  for (const path of all) {
    const d = disk.get(path)
    const b = base.get(path)
    const t = target.get(path)
    const isDir = d ? d.kind === 'dir' : (t ?? b)?.kind === 'dir'
    const f: FileFacts = { ignored: rules.ignores(path, isDir) }
    if (b) f.base = b
    if (t) f.target = t
    if (d) {
      f.local = shallowLocal(d)
      // Contents matter only where a versioned file is compared with the local file.
      if (d.kind === 'file' && !f.ignored && (b?.kind === 'file' || t?.kind === 'file')) toHash.push({ path, d, facts: f })
    }
    facts.set(path, f)
  }
  let hashed = 0
  let cached = 0
  await eachLimited(toHash, HASH_CONCURRENCY, async (job) => {
    const h = await observeFile(treePath(layout, job.path), job.path, job.d.st, cache)
    if (h.cached) cached++
    else hashed++
    job.facts.local = { kind: 'file', mode: Number(job.d.st.mode) & 0o7777, size: Number(job.d.st.size), sha1: h.sha1, sha256: h.sha256 }
  })
  const paths = [...facts].map(([path, f]) => ({ path, status: classifyFile(f), facts: f }))
  paths.sort((a, b) => comparePaths(a.path, b.path))
  return { paths, hashed, cached, hashedPaths: new Set(toHash.map((j) => j.path)) }
}

/**
 * R-STATUS-1..5, claim 7: the status the file-status statechart reaches from these facts, looked
 * up in the table compiled from it: each stage's fact event leads to the next node, until a status.
 */
export function classifyFile(facts: FileFacts, table: FileStatusTable = FILE_STATUS_TABLE): FileStatus {
  return statusOfFacts(FACT_STAGES.map((fact) => fact(facts)), table)
}

/** The table lookup of classifyFile, from the facts' event types in stage order. */
export function statusOfFacts(facts: readonly FileFactType[], table: FileStatusTable = FILE_STATUS_TABLE): FileStatus {
  let node = table
  for (const fact of facts) {
    const next = node[fact]
    if (typeof next === 'string') return next
    if (next === undefined) break
    node = next
  }
  throw new Error(`file-status table: no status for the facts ${facts.join(' → ')}; run \`npm run build\` to regenerate machines/generated/file-status-table.ts from the statechart`)
}

/** What lstat alone says; a file's hashes are filled in only when they are needed. */
export function shallowLocal(d: DiskEntry): LocalEntry {
  switch (d.kind) {
    case 'dir':
      return { kind: 'dir', mode: Number(d.st.mode) & 0o7777 }
    case 'symlink':
      return { kind: 'symlink', target: d.target }
    case 'other':
      return { kind: 'other' }
    case 'file':
      // Unread contents: empty hashes never equal a manifest's, so such a file never
      // passes for a version it was not compared with.
      return { kind: 'file', mode: Number(d.st.mode) & 0o7777, size: Number(d.st.size), sha1: '', sha256: '' }
  }
}
