// Wires the update-run statechart to the working copy and runs it to its end. A failed run
// becomes one UpswarmError whose message says what, where and what to do.
import { createActor, enqueueActions, fromPromise, toPromise, type AnyActorRef } from 'xstate'
import { UpswarmError, errorMessage, toUpswarmError } from '../../infra/errors.ts'
import type { HealthAlert } from '../../infra/release/source.ts'
import { REVERTS_KEPT, type RevertRecord } from '../../infra/store/working-copy/meta.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { updateRunMachine, type HookInput, type RunFailure, type RunOutput, type RunPhase, type RunPlan, type RunRequest, type RunTarget, type StagedSet } from '../../machines/update-run.machine.ts'
import { applyStaged, discardStaging, undoApply } from './apply.ts'
import { downloadPlanned } from './downloads.ts'
import { runHook } from './hooks.ts'
import { revertLine } from './hold.ts'
import { RunSession, type RunOptions } from './run-session.ts'

export interface RunResult {
  output: RunOutput
  session: RunSession
}

/** The update-run statechart with its I/O (a machine, so it can run as another actor's child). */
export type RunLogic = typeof updateRunMachine

export function wiredRunMachine(session: RunSession): RunLogic {
  return updateRunMachine.provide({
    actors: {
      check: fromPromise(({ input }: { input: RunRequest }) => session.check(input)),
      plan: fromPromise(({ input }: { input: { request: RunRequest; target: RunTarget } }) => session.planRun(input.target)),
      // The per-file actors work for the run: inspected as its children (issue 12 item 1).
      download: fromPromise(({ input, self }: { input: { request: RunRequest; target: RunTarget; plan: RunPlan }; self: AnyActorRef }) =>
        downloadPlanned(session, input.request, input.target, input.plan, self._parent)),
      discard: fromPromise(() => discardStaging(session)),
      apply: fromPromise(({ input }: { input: { target: RunTarget; staged: StagedSet } }) => applyStaged(session, input.target, input.staged)),
      undo: fromPromise(() => undoApply(session)),
      runHook: fromPromise(({ input, signal }: { input: HookInput; signal: AbortSignal }) =>
        runHook({ dir: session.wc.layout.root, product: session.wc.config.product, clientId: session.wc.config.clientId }, input, signal)),
      revert: fromPromise(({ input }: { input: { target: RunTarget; failure: RunFailure } }) => revert(session, input.target, input.failure)),
      retain: fromPromise(({ input, self }: { input: { request: RunRequest; target: RunTarget }; self: AnyActorRef }) => session.retain(input.request, self._parent)),
    },
  })
}

/**
 * One run made ready: the update-run statechart wired to the working copy, for whoever runs it
 * (runUpdate below, or the sharing daemon, which runs it as its child actor: issue 12 item 1).
 * The machine waits in `idle` for `run.start`; its phases reach the progress callback.
 */
export function prepareRun(wc: WorkingCopy, opts: RunOptions): { logic: RunLogic; session: RunSession } {
  const session = new RunSession(wc, opts)
  const logic = wiredRunMachine(session).provide({
    actions: {
      announce: enqueueActions(({ enqueue }, phase: RunPhase) => {
        enqueue.emit({ type: 'run.phase', phase })
        enqueue(() => session.progress({ phase, done: 0, total: 0, bytes: 0 }))
      }),
    },
  })
  return { logic, session }
}

/** The run's output as its result; throws UpswarmError unless it ended in `done`. */
export function runResult(wc: WorkingCopy, output: RunOutput, session: RunSession): RunResult {
  if (output.outcome !== 'done') throw failureError(wc, output, session)
  return { output, session }
}

/** Runs a prepared statechart to its end as a root actor of its own (`upswarm update` without a daemon). */
export async function runAlone(logic: RunLogic, request: RunRequest): Promise<RunOutput> {
  const actor = createActor(logic, { input: request, ...inspection() })
  actor.start()
  actor.send({ type: 'run.start' })
  return toPromise(actor)
}

/** Why a revision was taken back, in words. */
function revertReason(failure: RunFailure, timeoutMs: number): string {
  if (failure.reason === 'timeout') return `the health check did not finish within ${Math.round(timeoutMs / 1000)} s`
  return errorMessage(failure.error)
}

/**
 * Issue 16 item 2: the installed revision failed its post-install hook or health check. The
 * working copy goes back to the revision it came from with a run of its own (R-ROLLBACK: from the
 * local history store, which the apply just filled with the old revision's files), is held there
 * as after a rollback (an automatic update does not take the failed revision again; a newer one
 * clears the hold), records the revert for `status` and `history`, and alerts the administrators
 * (kept on disk when they cannot be reached).
 */
async function revert(session: RunSession, target: RunTarget, failure: RunFailure): Promise<void> {
  const { wc } = session
  const request = session.request!
  const back = prepareRun(wc, session.opts)
  const kind = target.from < target.to ? 'rollback' : 'update'
  const output = await runAlone(back.logic, { kind, rev: target.from, onConflict: request.onConflict })
  runResult(wc, output, back.session)
  const record: RevertRecord = {
    rev: target.to, to: target.from, at: new Date().toISOString(),
    phase: failure.phase === 'postInstall' ? 'postInstall' : 'health',
    reason: revertReason(failure, request.hooks?.healthTimeoutMs ?? 0),
  }
  wc.state = { ...wc.state, hold: Math.max(wc.state.hold ?? 0, target.to), reverted: [...(wc.state.reverted ?? []), record].slice(-REVERTS_KEPT) }
  await wc.saveState()
  const alert: HealthAlert = { type: 'health', product: wc.config.product, clientId: wc.config.clientId, ...record }
  session.opts.log.warn({ alert }, revertLine(record))
  try {
    if (!session.opts.alerts) throw new Error('no connection to the servers')
    await session.opts.alerts.publish(alert)
  } catch (err) {
    await session.queueAlert(alert, errorMessage(err))
  }
}

function failureError(wc: WorkingCopy, output: RunOutput, session: RunSession): UpswarmError {
  const f = output.failure
  const where = wc.layout.root
  if (output.outcome === 'reverted') {
    const r = wc.state.reverted?.at(-1)
    return new UpswarmError('UPSWARM_E_HEALTH',
      `${r ? revertLine(r) : `r${output.target?.to} failed its health check and ${where} went back to r${output.target?.from}`}. ${where} holds r${wc.state.current} until a newer revision is published; \`upswarm update ${where} --rev N\` installs one by hand`,
      { cause: f?.error, details: { ...(r ?? {}), warnings: output.warnings } })
  }
  if (f?.phase === 'preInstall') {
    return new UpswarmError('UPSWARM_E_HOOK', `${errorMessage(f.error)}; nothing in ${where} was changed (r${output.target?.to} was not installed)`, { cause: f.error })
  }
  if (!f) return new UpswarmError('UPSWARM_E_IO', `the update of ${where} failed: ${output.warnings.join('; ') || 'unknown cause'}`)
  if (f.reason === 'conflicts') {
    const paths = f.paths ?? []
    return new UpswarmError('UPSWARM_E_CONFLICT',
      `${paths.length} file(s) of ${where} were changed by hand and are out of date: ${paths.slice(0, 10).join(', ')}${paths.length > 10 ? ', …' : ''}. ` +
      'Nothing was changed (--on-conflict=abort); move them away, ignore them, or run with --on-conflict=alert|overwrite',
      { details: { paths } })
  }
  if (f.reason === 'downloads') {
    const paths = f.paths ?? []
    const first = output.staged?.files.find((x) => x.outcome === 'failed')
    const cause = session.downloadError
    return new UpswarmError(cause?.code ?? 'UPSWARM_E_IO',
      `${paths.length} file(s) could not be fetched and verified for ${where}; nothing in the tree was changed. First: ${first?.error ?? paths[0]}`,
      { cause, details: { paths } })
  }
  const err = toUpswarmError(f.error, 'UPSWARM_E_IO', `the update of ${where} failed while ${f.phase}`)
  if (output.outcome === 'failed' && f.phase === 'applying') {
    return new UpswarmError(err.code, `${err.message}. Rolling back failed too (${output.warnings.join('; ')}); the next upswarm command on ${where} finishes the recovery`, { cause: err })
  }
  return err
}
