// Wires the update-run statechart to the working copy and runs it to its end. A failed run
// becomes one UpswarmError whose message says what, where and what to do.
import { createActor, enqueueActions, fromPromise, toPromise, type AnyActorRef } from 'xstate'
import { UpswarmError, toUpswarmError } from '../../infra/errors.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { updateRunMachine, type RunOutput, type RunPhase, type RunPlan, type RunRequest, type RunTarget, type StagedSet } from '../../machines/update-run.machine.ts'
import { applyStaged, discardStaging, undoApply } from './apply.ts'
import { downloadPlanned } from './downloads.ts'
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

function failureError(wc: WorkingCopy, output: RunOutput, session: RunSession): UpswarmError {
  const f = output.failure
  const where = wc.layout.root
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
