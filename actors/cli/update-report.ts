// How `update` (and `init`) reports its result, whichever process ran it: this one, a
// short-lived daemon, or the copy's sharing daemon through its control socket (issue 15 item 4).
// No NATS, no commander: the light build (actors/cli/status-main.ts) hands updates to the daemon
// with this module alone.
import type { UpdateResult } from '../../infra/release/source.ts'
import { askDaemon, type ControlUpdate } from '../../infra/store/working-copy/control-wire.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { mark } from '../../infra/timings.ts'
import { formatBytes, printResult } from './output.ts'

/** `update` / `init` installed the revision except the blocked paths (docs/updater.md). */
export const PARTIAL_EXIT_CODE = 3

/** docs/formats.md §5 step 6: what the signed metadata of a format-2 run cost. */
export function treeNodesNote(r: UpdateResult): string {
  return r.treeNodes ? `; format 2: ${r.treeNodes.nodes} tree node(s) fetched (${formatBytes(r.treeNodes.bytes)})` : ''
}

export function updateSummary(r: UpdateResult): string {
  const { alerts } = r
  return [
    `r${r.from} → r${r.to}${r.blocked.length ? ' (PARTIAL)' : ''}: ${r.updated} updated, ${r.checkedOut} checked out, ${r.removed} removed, ` +
      `${r.conflicts.length} conflict(s)${r.conflicts.length ? ` (${r.conflicts.join(', ')}: left alone)` : ''}; ` +
      `${formatBytes(r.bytesFromServers)} from servers, ${formatBytes(r.bytesFromPeers)} from peers` +
      ('uploadedBytes' in r ? `; ${formatBytes(r.uploadedBytes as number)} served to peers so far` : '') + treeNodesNote(r),
    ...blockedLines(r),
    ...(alerts.delivered.length ? [`administrators alerted about ${alerts.delivered.join(', ')}`] : []),
    ...alerts.undelivered.map((u) => `alert about ${u.path} NOT delivered (${u.reason}); kept in the working copy, sent on the next connected run`),
    ...(alerts.earlierDelivered ? [`${alerts.earlierDelivered} alert(s) of earlier runs delivered`] : []),
    ...(alerts.pending ? [`${alerts.pending} alert(s) still waiting to be delivered`] : []),
  ].join('\n')
}

export function blockedLines(r: UpdateResult): string[] {
  return r.blocked.map((p) => `not installed: ${p} (a file or symlink of yours is in the way above it; move it away and run the update again)`)
}

export function updateJson(r: UpdateResult): object {
  const { warnings, ...rest } = r
  return { ...rest, partial: r.blocked.length > 0, conflicts: r.conflicts.length, conflictPaths: r.conflicts, warnings }
}

/** Prints an update's (or init's) result; a partial one (blocked paths) exits 3: not done. */
export function reportUpdate(json: boolean, r: UpdateResult, human: () => string): void {
  printResult(json, updateJson(r), human)
  if (r.blocked.length > 0) process.exitCode = PARTIAL_EXIT_CODE
}

/**
 * Issue 15 item 4: when a sharing daemon serves `dir`, it runs the update (no NATS dialled here,
 * no race for the copy's lock) and this prints its result as a run of its own would; false when
 * no daemon answers, and nothing was asked. Its errors are thrown as the daemon said them.
 */
export async function handToDaemon(dir: string, request: ControlUpdate, json: boolean): Promise<boolean> {
  const answer = await askDaemon<UpdateResult>(layoutOf(dir).controlSocket, request)
  mark('update: asked the daemon')
  if ('none' in answer) return false
  if ('error' in answer) throw answer.error
  const r = answer.result
  reportUpdate(json, r, () => `${updateSummary(r)}\n(run by the sharing daemon of ${dir})`)
  return true
}
