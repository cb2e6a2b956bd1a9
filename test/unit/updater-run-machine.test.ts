// The update-run statechart with stub actors: the phases in order, and every way out —
// done, failed before the tree is touched, rolled back after it was, reverted after a failed
// health check (issue 16 item 2) — all reached.
import { SimulatedClock, createActor, fromPromise, toPromise, waitFor } from 'xstate'
import { afterAll, describe, expect, it } from 'vitest'
import {
  updateRunMachine, type ApplySummary, type HookInput, type HookName, type RunFailure, type RunOutput, type RunPlan, type RunRequest, type RunTarget, type StagedSet,
} from '../../machines/update-run.machine.ts'

const PLAN: RunPlan = { tasks: [], conflicts: ['conf/app.ini'] }
const STAGED: StagedSet = { files: [], failed: [], bytesFromServers: 10, bytesFromPeers: 5 }
const APPLIED: ApplySummary = { updated: 2, checkedOut: 1, removed: 1, blocked: [] }

interface Stubs {
  checkFails?: boolean
  staged?: StagedSet
  downloadThrows?: boolean
  applyFails?: boolean
  undoFails?: boolean
  retainFails?: boolean
  /** Hooks that fail (by name; `post-install@revert` for the one after a revert). */
  hookFails?: string[]
  /** The health command never ends (the machine's clock decides). */
  healthHangs?: boolean
  revertFails?: boolean
  clock?: SimulatedClock
}

const visited = new Set<string>()
const ALL_STATES = Object.keys(updateRunMachine.root.states)

async function run(request: RunRequest, stubs: Stubs = {}): Promise<{ out: RunOutput; calls: string[]; phases: string[] }> {
  const calls: string[] = []
  const stub = <T, I>(name: string, fn: () => T) => fromPromise<T, I>(async () => {
    calls.push(name)
    return fn()
  })
  const machine = updateRunMachine.provide({
    actors: {
      check: stub<RunTarget, RunRequest>('check', () => {
        if (stubs.checkFails) throw new Error('no server')
        return { from: 1, to: 3 }
      }),
      plan: stub<RunPlan, { request: RunRequest; target: RunTarget }>('plan', () => PLAN),
      download: stub<StagedSet, { request: RunRequest; target: RunTarget; plan: RunPlan }>('download', () => {
        if (stubs.downloadThrows) throw new Error('boom')
        return stubs.staged ?? STAGED
      }),
      discard: stub<void, void>('discard', () => undefined),
      apply: stub<ApplySummary, { target: RunTarget; staged: StagedSet }>('apply', () => {
        if (stubs.applyFails) throw new Error('EACCES /wc/lib')
        return APPLIED
      }),
      undo: stub<void, void>('undo', () => {
        if (stubs.undoFails) throw new Error('EIO')
      }),
      retain: stub<string[], { request: RunRequest; target: RunTarget }>('retain', () => {
        if (stubs.retainFails) throw new Error('gc failed')
        return ['revision 2 is not kept']
      }),
      runHook: fromPromise<void, HookInput>(async ({ input, signal }) => {
        const name = input.run === 'revert' ? `${input.hook}@revert` : input.hook
        calls.push(`${name} ${input.target.from}→${input.target.to}`)
        if (input.hook === 'health' && stubs.healthHangs) {
          // Stopped as the machine leaves the state: before the revert starts.
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => {
            calls.push('health aborted')
            resolve()
          }))
        }
        if (stubs.hookFails?.includes(name)) throw new Error(`${name} exited with 1`)
      }),
      revert: fromPromise<void, { target: RunTarget; failure: RunFailure }>(async ({ input }) => {
        calls.push(`revert ${input.target.to}→${input.target.from} (${input.failure.reason})`)
        if (stubs.revertFails) throw new Error('r1 is not in local history')
      }),
    },
  })
  const phases: string[] = []
  const actor = createActor(machine, { input: request, ...(stubs.clock ? { clock: stubs.clock } : {}) })
  actor.subscribe((s) => visited.add(String(s.value)))
  actor.on('run.phase', (e) => phases.push(e.phase))
  actor.start()
  expect(actor.getSnapshot().value).toBe('idle')
  actor.send({ type: 'run.start' })
  if (stubs.clock) {
    await waitFor(actor, (s) => s.matches('healthChecking'))
    stubs.clock.increment(HOOKED.hooks!.healthTimeoutMs)
  }
  return { out: await toPromise(actor), calls, phases }
}

const HOOKED: RunRequest = {
  kind: 'update', onConflict: 'alert',
  hooks: { preInstall: 'systemctl stop app', postInstall: 'systemctl start app', health: 'curl -f localhost/health', healthTimeoutMs: 30_000 },
}
const hooks = (...names: HookName[]): RunRequest => ({
  ...HOOKED,
  hooks: {
    healthTimeoutMs: 30_000,
    ...(names.includes('pre-install') ? { preInstall: 'a' } : {}),
    ...(names.includes('post-install') ? { postInstall: 'b' } : {}),
    ...(names.includes('health') ? { health: 'c' } : {}),
  },
})

const UPDATE: RunRequest = { kind: 'update', onConflict: 'alert' }

describe('updater — update-run machine', () => {
  afterAll(() => {
    // Every state of the chart was reached by the tests above.
    expect([...visited].sort()).toEqual([...ALL_STATES].sort())
  })

  it('updater — idle → checking → planning → downloading → applying → retaining → done', async () => {
    const { out, calls, phases } = await run(UPDATE)
    expect(calls).toEqual(['check', 'plan', 'download', 'apply', 'retain'])
    expect(phases).toEqual(['checking', 'planning', 'downloading', 'applying', 'retaining'])
    expect(out).toEqual({
      outcome: 'done', target: { from: 1, to: 3 }, plan: PLAN, staged: STAGED, applied: APPLIED, warnings: ['revision 2 is not kept'],
    })
  })

  it('updater — a conflict under --on-conflict=abort fails before anything is downloaded', async () => {
    const { out, calls } = await run({ ...UPDATE, onConflict: 'abort' })
    expect(calls).toEqual(['check', 'plan'])
    expect(out).toMatchObject({ outcome: 'failed', failure: { phase: 'planning', reason: 'conflicts', paths: ['conf/app.ini'] } })
  })

  it('updater — a failed check fails the run at once', async () => {
    const { out, calls } = await run(UPDATE, { checkFails: true })
    expect(calls).toEqual(['check'])
    expect(out).toMatchObject({ outcome: 'failed', failure: { phase: 'checking', reason: 'error' } })
  })

  it('updater — failed downloads discard the staging area; the tree is never touched', async () => {
    const failed = await run(UPDATE, { staged: { ...STAGED, failed: ['lib/b.txt'] } })
    expect(failed.calls).toEqual(['check', 'plan', 'download', 'discard'])
    expect(failed.out).toMatchObject({ outcome: 'failed', failure: { phase: 'downloading', reason: 'downloads', paths: ['lib/b.txt'] } })
    const thrown = await run(UPDATE, { downloadThrows: true })
    expect(thrown.calls).toEqual(['check', 'plan', 'download', 'discard'])
    expect(thrown.out).toMatchObject({ outcome: 'failed', failure: { reason: 'error' } })
  })

  it('updater — a failed apply is undone from the journal (rolledBack)', async () => {
    const { out, calls } = await run(UPDATE, { applyFails: true })
    expect(calls).toEqual(['check', 'plan', 'download', 'apply', 'undo'])
    expect(out.outcome).toBe('rolledBack')
    expect((out.failure?.error as Error).message).toBe('EACCES /wc/lib')
  })

  it('updater — when the undo fails too, the run fails and says so', async () => {
    const { out } = await run(UPDATE, { applyFails: true, undoFails: true })
    expect(out).toMatchObject({ outcome: 'failed', warnings: ['EIO'], failure: { phase: 'applying' } })
  })

  it('updater — with hooks: pre-install before applying, post-install and the health check after it, then retaining', async () => {
    const { out, calls, phases } = await run(HOOKED)
    expect(calls).toEqual(['check', 'plan', 'download', 'pre-install 1→3', 'apply', 'post-install 1→3', 'health 1→3', 'retain'])
    expect(phases).toEqual(['checking', 'planning', 'downloading', 'preInstall', 'applying', 'postInstall', 'health', 'retaining'])
    expect(out.outcome).toBe('done')
  })

  it('updater — each hook runs only when given, and never on a rollback or a run that stays on its revision', async () => {
    expect((await run(hooks('health'))).calls).toEqual(['check', 'plan', 'download', 'apply', 'health 1→3', 'retain'])
    expect((await run(hooks('post-install'))).calls).toEqual(['check', 'plan', 'download', 'apply', 'post-install 1→3', 'retain'])
    expect((await run(hooks('pre-install'))).calls).toEqual(['check', 'plan', 'download', 'pre-install 1→3', 'apply', 'retain'])
    expect((await run({ ...HOOKED, kind: 'rollback', rev: 1 })).calls).toEqual(['check', 'plan', 'download', 'apply', 'retain'])
  })

  it('updater — a failing pre-install hook discards what was staged and fails the run before the tree is touched', async () => {
    const { out, calls } = await run(HOOKED, { hookFails: ['pre-install'] })
    expect(calls).toEqual(['check', 'plan', 'download', 'pre-install 1→3', 'discard'])
    expect(out).toMatchObject({ outcome: 'failed', failure: { phase: 'preInstall', reason: 'hook' } })
    expect(out.applied).toBeUndefined()
  })

  it('updater — a failing health check reverts to the previous revision, runs post-install on it, and ends reverted', async () => {
    const { out, calls, phases } = await run(HOOKED, { hookFails: ['health'] })
    expect(calls).toEqual(['check', 'plan', 'download', 'pre-install 1→3', 'apply', 'post-install 1→3', 'health 1→3', 'revert 3→1 (health)', 'post-install@revert 3→1'])
    expect(phases.at(-1)).toBe('reverting')
    expect(out).toMatchObject({ outcome: 'reverted', target: { from: 1, to: 3 }, failure: { phase: 'health', reason: 'health' } })
    expect((out.failure?.error as Error).message).toBe('health exited with 1')
  })

  it('updater — a failing post-install hook reverts without a health check', async () => {
    const { out, calls } = await run(hooks('post-install', 'health'), { hookFails: ['post-install'] })
    expect(calls).toEqual(['check', 'plan', 'download', 'apply', 'post-install 1→3', 'revert 3→1 (hook)', 'post-install@revert 3→1'])
    expect(out).toMatchObject({ outcome: 'reverted', failure: { phase: 'postInstall', reason: 'hook' } })
  })

  it('updater — a health check past its timeout on the machine clock is stopped and reverted', async () => {
    const { out, calls } = await run(hooks('health'), { healthHangs: true, clock: new SimulatedClock() })
    expect(calls).toEqual(['check', 'plan', 'download', 'apply', 'health 1→3', 'health aborted', 'revert 3→1 (timeout)'])
    expect(out).toMatchObject({ outcome: 'reverted', failure: { phase: 'health', reason: 'timeout' } })
  })

  it('updater — a failing post-install after the revert is a warning; a failed revert fails the run and says why', async () => {
    const restart = await run(HOOKED, { hookFails: ['health', 'post-install@revert'] })
    expect(restart.out).toMatchObject({ outcome: 'reverted', warnings: ['post-install@revert exited with 1'] })
    const stuck = await run(hooks('health'), { hookFails: ['health'], revertFails: true })
    expect(stuck.out).toMatchObject({ outcome: 'failed', warnings: ['r1 is not in local history'], failure: { phase: 'health' } })
  })

  it('updater — a failed history retention does not fail a committed run', async () => {
    const { out } = await run(UPDATE, { retainFails: true })
    expect(out).toMatchObject({ outcome: 'done', warnings: ['gc failed'] })
  })
})
