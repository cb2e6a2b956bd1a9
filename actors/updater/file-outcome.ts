// Issue 14 item 1 ("no per-file actor churn"): the outcome the file-status and download
// statecharts give one path, reached by taking the charts' transitions in plain code, for a run
// that no inspector watches. An update of the swarm runs a path per file it fetches; an actor
// each (the chart interpreted, a child actor per invoked step, a snapshot per transition) was
// about a tenth of a sharing daemon's CPU per file received. With an inspector attached the
// actors run as before, so what a visualizer shows is the chart itself; a test drives both ways
// through every status and every download path (found locally, retried, failed, staged or not)
// and requires the same output and the same steps in the same order
// (test/unit/updater-file-status-machine.test.ts), so this cannot drift from the charts.
import type { Entry, FileEntry } from '../../infra/release/manifest.ts'
import { DEFAULT_MAX_ATTEMPTS, type DownloadInput, type DownloadOutput, type FetchResult } from '../../machines/download.machine.ts'
import type { FileFacts, FileStatus, FileStatusInput, FileStatusOutput } from '../../machines/file-status.machine.ts'

/** The download chart's invoked steps (its `findLocal`, `fetch`, `verify` and `stage` actors). */
export interface DownloadSteps {
  findLocal(entry: FileEntry): Promise<boolean>
  fetch(input: { entry: FileEntry; attempt: number }, signal: AbortSignal): Promise<FetchResult>
  verify(entry: FileEntry): Promise<void>
  stage(input: { entry: Entry; slot: string }): Promise<void>
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** machines/download.machine.ts, state by state: local copy, else fetch → verify (retried up to maxAttempts), then stage. */
export async function downloadOutcome(input: DownloadInput, steps: DownloadSteps): Promise<DownloadOutput> {
  const { entry, slot } = input
  const maxAttempts = input.maxAttempts ?? DEFAULT_MAX_ATTEMPTS
  const out: DownloadOutput = { ok: false, source: 'none', attempts: 0, bytesFromServers: 0, bytesFromPeers: 0, errors: [] }
  // start: only a file needs its blob.
  if (entry.kind === 'file') {
    let found = false
    try {
      found = await steps.findLocal(entry)
    } catch {
      // checkingLocal's onError: fetch it.
    }
    if (found) out.source = 'local'
    else {
      // fetching → verifying, and retrying while attempts are left.
      let verified = false
      while (!verified) {
        out.attempts++
        let fetched = false
        try {
          const got = await steps.fetch({ entry, attempt: out.attempts }, new AbortController().signal)
          out.source = 'remote'
          out.bytesFromServers += got.bytesFromServers
          out.bytesFromPeers += got.bytesFromPeers
          fetched = true
        } catch (err) {
          out.errors.push(describe(err))
        }
        if (fetched) {
          try {
            await steps.verify(entry)
            verified = true
          } catch (err) {
            out.errors.push(describe(err))
          }
        }
        if (!verified && out.attempts >= maxAttempts) return out
      }
    }
  }
  // verified: staged when it has a slot.
  if (slot !== undefined) {
    try {
      await steps.stage({ entry, slot })
    } catch (err) {
      out.errors.push(describe(err))
      return out
    }
  }
  out.ok = true
  return out
}

/**
 * machines/file-status.machine.ts from the status its facts decide (the table `classifyFile`
 * compiles from the chart). Undefined for a conflict: its alert and policy run in the actor.
 */
export async function fileOutcome(input: FileStatusInput, facts: FileFacts, status: FileStatus, steps: DownloadSteps): Promise<FileStatusOutput | undefined> {
  const base = { path: input.path, status, alerted: false }
  switch (status) {
    case 'current':
    case 'ignored':
    case 'modified':
    case 'unversioned':
      return { ...base, outcome: 'noop' }
    case 'removed':
      return facts.local !== undefined ? { ...base, outcome: 'staged', action: 'delete' } : { ...base, outcome: 'noop' }
    case 'missing':
    case 'outdated': {
      const download = await downloadOutcome({ entry: facts.target!, slot: input.slot, ...(input.maxAttempts !== undefined ? { maxAttempts: input.maxAttempts } : {}) }, steps)
      if (download.ok) return { ...base, outcome: 'staged', action: 'put', download }
      return { ...base, outcome: 'failed', download, error: `cannot download ${input.path}: ${download.errors.join('; ') || 'no attempt succeeded'}` }
    }
    default:
      return undefined
  }
}
