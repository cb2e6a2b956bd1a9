// A status's answer in short (issue 13 item 2), beside the stat index: the paths that are not
// `current`, how many paths there are, the file monitor's token and the context it was computed
// in, and the identity (lstat data) of the index file written with it. When the monitor says
// nothing changed since that token, the context is the same and the index is still that file,
// this is the status: a no-op `status` of 100 000 files reads a few bytes instead of the index.
// Anything else, and it is not used (a missing, torn or foreign summary is simply ignored: it
// is only a cache of the index, which is itself a cache).
import { lstat, readFile } from 'node:fs/promises'
import { FILE_STATUSES, type FileStatus } from '../../../machines/file-status.facts.ts'
import { writeFileAtomic } from './atomic.ts'
import { sameIndexContext, sameStatId, statIdOf, type IndexContext, type StatId } from './stat-index.ts'
import type { MonitorToken } from './tree-watch.ts'

/** More paths not `current` than this and no summary is written (the index answers). */
export const SUMMARY_MAX_LISTED = 10_000
const FORMAT = 1

export interface StatusSummary {
  token: MonitorToken
  total: number
  cached: number
  notCurrent: { path: string; status: FileStatus }[]
}

interface Stored {
  format: number
  token: MonitorToken
  index: StatId
  context: Omit<IndexContext, 'ignoreDigest'> & { ignoreDigest: string }
  total: number
  cached: number
  notCurrent: [string, number][]
}

/** The index's own context check, and the root directory's identity too (a summary lists the root's names). */
const sameContext = (a: Stored['context'], b: IndexContext): boolean =>
  typeof a.ignoreDigest === 'string' && sameIndexContext({ ...a, ignoreDigest: Buffer.from(a.ignoreDigest, 'hex') }, b) && sameStatId(a.root, b.root)

/** The summary, if it was written in `ctx` for the index file as it is now; else undefined. */
export async function readSummary(file: string, indexFile: string, ctx: IndexContext): Promise<StatusSummary | undefined> {
  let s: Stored
  try {
    s = JSON.parse(await readFile(file, 'utf8')) as Stored
  } catch {
    return undefined
  }
  if (s?.format !== FORMAT || !Array.isArray(s.notCurrent) || !s.token || !s.index || !s.context || !sameContext(s.context, ctx)) return undefined
  const index = await lstat(indexFile, { bigint: true }).catch(() => undefined)
  if (!index || !sameStatId(statIdOf(index), s.index)) return undefined
  const notCurrent: StatusSummary['notCurrent'] = []
  for (const [path, status] of s.notCurrent) {
    const name = FILE_STATUSES[status]
    if (typeof path !== 'string' || !name) return undefined
    notCurrent.push({ path, status: name })
  }
  return { token: s.token, total: s.total, cached: s.cached, notCurrent }
}

/** Writes the summary of the index file just written (not fsynced: a torn one is ignored). */
export async function writeSummary(file: string, indexFile: string, tmpDir: string, ctx: IndexContext, s: StatusSummary): Promise<void> {
  if (s.notCurrent.length > SUMMARY_MAX_LISTED) return
  const index = statIdOf(await lstat(indexFile, { bigint: true }))
  const stored: Stored = {
    format: FORMAT, token: s.token, index, context: { ...ctx, ignoreDigest: ctx.ignoreDigest.toString('hex') },
    total: s.total, cached: s.cached, notCurrent: s.notCurrent.map((f) => [f.path, FILE_STATUSES.indexOf(f.status)]),
  }
  await writeFileAtomic(file, JSON.stringify(stored), tmpDir, 0o644, false)
}
