// Stub actors for the auto-update machine's run (machine unit tests): `openRun` starts the run
// (`run` is called as the run is opened) and hands a promise logic settled by it, which the
// machine runs as its child `updateRun`; `closeRun` passes the child's end through.
import { fromPromise } from 'xstate'
import type { AutoUpdateRequest, OpenedRun, RunEnd, RunOutcome } from '../../machines/auto-update.machine.ts'

export function stubRuns(run: (request: AutoUpdateRequest) => Promise<RunOutcome>) {
  return {
    openRun: fromPromise<OpenedRun, { request: AutoUpdateRequest; id: number }>(async ({ input }) => {
      const outcome = run(input.request)
      // Its failure is the child's to report (it fails with it); not an unhandled rejection meanwhile.
      outcome.catch(() => {})
      return { logic: fromPromise(() => outcome), input: undefined }
    }),
    closeRun: fromPromise<RunOutcome, { request: AutoUpdateRequest; id: number; end: RunEnd }>(async ({ input }) => {
      if ('error' in input.end) throw input.end.error
      return input.end.output as RunOutcome
    }),
  }
}
