// Which revision an automatic update goes to (R-ROLLBACK: a rollback holds the working copy back).
// Its own module so that `status` can ask without loading the update run (and xstate).
import type { RevertRecord, WorkingCopyState } from '../../infra/store/working-copy/meta.ts'

/** The revision an automatic update goes to: the newest verified one, unless a rollback holds it back. */
export function automaticTarget(state: WorkingCopyState): number {
  return holdsBack(state, state.newestVerified) ? state.current : state.newestVerified
}

/** Whether a rollback holds the working copy back from `newest` (a release not newer than the one it left). */
export function holdsBack(state: WorkingCopyState, newest: number): boolean {
  return state.hold !== undefined && newest <= state.hold
}

/** "r5 failed its health check at …, rolled back to r4 (…)": what `status`, `history` and the error say (issue 16 item 2). */
export function revertLine(r: RevertRecord): string {
  return `r${r.rev} failed its ${r.phase === 'health' ? 'health check' : 'post-install hook'} at ${r.at}, rolled back to r${r.to} (${r.reason})`
}
