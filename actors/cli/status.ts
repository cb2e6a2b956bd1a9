// `upswarm status DIR`: what it prints, once connected or not (R-STATUS-1, R-DHT-2). Both the
// full command line (client.ts) and the dispatch table's fast path (main.ts: `status DIR
// --offline`, issue 13 item 1) run it, so the two print the same.
import type { ReleaseSource } from '../../infra/release/source.ts'
import { printResult, reportError } from './output.ts'
import { mark } from '../../infra/timings.ts'

export async function runStatus(dir: string, o: { json?: boolean | undefined }, source?: ReleaseSource): Promise<void> {
  mark('status: cli')
  const updater = await import('../updater/index.ts')
  mark('status: updater loaded')
  // The list of every path only for --json (100 000 entries cost more than the no-op status itself).
  const r = await updater.status(dir, { ...(source ? { source } : {}), list: !!o.json })
  mark('status: answered')
  const shown = r.notCurrent
  // The signed formats (and zod) load only for a copy that holds a root (issue 13 item 1).
  const freshLine = r.rootVersion > 0 ? (await import('../../infra/formats/fresh.ts')).freshnessLine(r.freshness, Date.now()) : undefined
  const trust = { ...(r.reverted ? { reverted: r.reverted } : {}), alertsPending: r.alertsPending, rootVersion: r.rootVersion, ...(r.rootExpired ? { rootExpired: r.rootExpired } : {}), ...(r.rootVersion > 0 ? { freshness: r.freshness ?? null } : {}), ...(r.diskFull ? { diskFull: r.diskFull } : {}), ...(r.statIndexProblem ? { statIndexProblem: r.statIndexProblem } : {}), ...(r.targetUnavailable ? { targetUnavailable: r.targetUnavailable } : {}) }
  // The whole list only for --json: building 100 000 entries to print one line costs more than the status.
  printResult(!!o.json, { product: r.product, rev: r.rev, latest: r.latest, target: r.target, get files() { return r.files }, hashed: r.hashed, cached: r.cached, monitor: r.monitor, ...trust }, () => [
    `${r.product} at r${r.rev}; newest verified r${r.latest}`,
    ...(freshLine !== undefined ? [freshLine] : []),
    ...(r.reverted ? [updater.revertLine(r.reverted)] : []),
    ...(r.alertsPending > 0 ? [`${r.alertsPending} alert(s) for the administrators wait on disk; the next connected update delivers them`] : []),
    ...(r.rootExpired ? [`root of trust version ${r.rootVersion} expired at ${r.rootExpired}: it still verifies, but ask the operators for a new one`] : []),
    ...(r.diskFull ? [r.diskFull] : []),
    ...(r.statIndexProblem ? [`${r.statIndexProblem}: every path was classified again, and the index rewritten`] : []),
    ...(r.targetUnavailable ? [r.targetUnavailable] : []),
    ...shown.map((f) => `${f.status.padEnd(12)} ${f.path}`),
    `${r.total - shown.length} current`,
  ].join('\n'))
}

/** `status DIR --offline [--json]` as the dispatch table runs it (main.ts and status-main.ts): errors reported as every command reports them. */
export async function runFastStatus(fast: { dir: string; json: boolean }): Promise<void> {
  try {
    await runStatus(fast.dir, fast)
  } catch (err) {
    // As action() in common.ts does for every command.
    process.exitCode = reportError(err, fast.json)
  }
}
