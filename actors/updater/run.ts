// Wires the update-run statechart to the working copy and runs it to its end. A failed run
// becomes one UpswarmError whose message says what, where and what to do.
import { createActor, fromPromise, toPromise } from 'xstate'
import { UpswarmError, toUpswarmError } from '../../infra/errors.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { updateRunMachine, type RunOutput, type RunPlan, type RunRequest, type RunTarget, type StagedSet } from '../../machines/update-run.machine.ts'
import { applyStaged, discardStaging, undoApply } from './apply.ts'
import { downloadPlanned } from './downloads.ts'
import { RunSession, type RunOptions } from './run-session.ts'

export interface RunResult {
  output: RunOutput
  session: RunSession
}

export function wiredRunMachine(session: RunSession) {
  return updateRunMachine.provide({
    actors: {
      check: fromPromise(({ input }: { input: RunRequest }) => session.check(input)),
      plan: fromPromise(({ input }: { input: { request: RunRequest; target: RunTarget } }) => session.planRun(input.target)),
      download: fromPromise(({ input }: { input: { request: RunRequest; target: RunTarget; plan: RunPlan } }) =>
        downloadPlanned(session, input.request, input.target, input.plan)),
      discard: fromPromise(() => discardStaging(session)),
      apply: fromPromise(({ input }: { input: { target: RunTarget; staged: StagedSet } }) => applyStaged(session, input.target, input.staged)),
      undo: fromPromise(() => undoApply(session)),
      retain: fromPromise(({ input }: { input: { request: RunRequest; target: RunTarget } }) => session.retain(input.request)),
    },
  })
}

/** Runs one update, checkout or rollback; throws UpswarmError unless it ends in `done`. */
export async function runUpdate(wc: WorkingCopy, request: RunRequest, opts: RunOptions): Promise<RunResult> {
  const session = new RunSession(wc, opts)
  const actor = createActor(wiredRunMachine(session), { input: request, ...inspection() })
  actor.on('run.phase', (e) => session.progress({ phase: e.phase, done: 0, total: 0, bytes: 0 }))
  actor.start()
  actor.send({ type: 'run.start' })
  const output = await toPromise(actor)
  if (output.outcome !== 'done') throw failureError(wc, output, session)
  return { output, session }
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
