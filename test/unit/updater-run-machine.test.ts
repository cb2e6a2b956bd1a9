// The update-run statechart with stub actors: the phases in order, and every way out —
// done, failed before the tree is touched, rolled back after it was — all reached.
import { createActor, fromPromise, toPromise } from 'xstate'
import { afterAll, describe, expect, it } from 'vitest'
import {
  updateRunMachine, type ApplySummary, type RunOutput, type RunPlan, type RunRequest, type RunTarget, type StagedSet,
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
    },
  })
  const phases: string[] = []
  const actor = createActor(machine, { input: request })
  actor.subscribe((s) => visited.add(String(s.value)))
  actor.on('run.phase', (e) => phases.push(e.phase))
  actor.start()
  expect(actor.getSnapshot().value).toBe('idle')
  actor.send({ type: 'run.start' })
  return { out: await toPromise(actor), calls, phases }
}

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

  it('updater — a failed history retention does not fail a committed run', async () => {
    const { out } = await run(UPDATE, { retainFails: true })
    expect(out).toMatchObject({ outcome: 'done', warnings: ['gc failed'] })
  })
})
