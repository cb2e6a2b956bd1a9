// Fault suite S1 (issue 11; ARCHITECTURE §4, the apply journal): kill -9 of a real update after
// every durable step and at random moments, some recoveries killed too; afterwards the working
// copy is at exactly one revision (r1 or r2) plus the user's changes, with nothing left over.
// Full: every step + 200 random moments; short (npm test): three steps and two moments.
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recover, update } from '../../actors/updater/index.ts'
import { tempDir } from '../helpers/cluster.ts'
import { childReport, crashFixture, updaterChild, type CrashFixture } from '../helpers/crash-fixture.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const RANDOM_MOMENTS = sized(2, 200)
/** Every n-th run also has its recovery killed at a random moment, and is then updated to r2. */
const EVERY = sized(3, 10)
const PARALLEL = 2

interface Plan { kind: 'step' | 'moment'; at: number; killRecovery: boolean; thenUpdate: boolean }

describe('faults S1 — kill -9 during an update', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let fx: CrashFixture
  beforeAll(async () => {
    tmp = await tempDir('upswarm-faults-s1-')
    fx = await crashFixture(tmp.path)
  })
  afterAll(async () => tmp?.cleanup())

  it('faults S1 — every kill leaves exactly one revision plus the user\'s changes', { timeout: sized(90_000, 900_000) }, async () => {
    const figures = new FaultFigures('faults-s1-kill9', 'S1: kill -9 of an update at every journal step and at random moments')
    const rnd = random()
    // The reference: PARALLEL updates at once, as the runs below go, so its time is the loaded one.
    const references = await Promise.all(Array.from({ length: PARALLEL }, async (_, i) => childReport(await updaterChild(['update', await fx.copy(`reference-${i}`), fx.repo]))))
    const reference = { labels: references[0]!.labels, ms: Math.max(...references.map((r) => r.ms)) }
    const labels = reference.labels
    const steps = sized(
      ['journal.written', 'put mod.txt', 'committed'].map((l) => labels.indexOf(l) + 1),
      labels.map((_, i) => i + 1),
    )
    expect(steps.every((n) => n > 0)).toBe(true)
    // A random moment: a random fraction of the update's time after the child says it starts.
    // That time is a moving average over the updates that finished (the reference, run PARALLEL
    // at once, and any child that finished before its kill: counted, and checked all the same).
    let expectedMs = reference.ms
    const plans: Plan[] = [
      ...steps.map((at) => ({ kind: 'step' as const, at })),
      ...Array.from({ length: RANDOM_MOMENTS }, () => ({ kind: 'moment' as const, at: rnd() })),
    ].map((p, i) => ({ ...p, killRecovery: i % EVERY === 0, thenUpdate: i % EVERY === 1 }))

    const zeroes = () => ({ runs: 0, killedBeforeEnd: 0, finishedFirst: 0, withJournal: 0, recoveriesKilled: 0, r1: 0, r2: 0, updatedAfter: 0, failures: 0 })
    const byKind = { step: zeroes(), moment: zeroes() }
    let next = 0
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (next < plans.length) {
        const i = next++
        const plan = plans[i]!
        const what = `${plan.kind} ${plan.kind === 'step' ? `${plan.at} (${labels[plan.at - 1]})` : `at ${Math.round(plan.at * 100)} % of ${Math.round(expectedMs)} ms`}`
        const dir = await fx.copy(`run-${i}`)
        const outcome = byKind[plan.kind]
        const failedBefore = figures.failures.length
        figures.runs++
        outcome.runs++
        try {
          const exit = await updaterChild(['update', dir, fx.repo], plan.kind === 'step' ? { crashAfter: plan.at } : { killAfterMs: Math.round(plan.at * expectedMs) })
          if (exit.signal === 'SIGKILL') outcome.killedBeforeEnd++
          else {
            outcome.finishedFirst++
            expectedMs = 0.8 * expectedMs + 0.2 * childReport(exit).ms
          }
          if (plan.kind === 'step' && exit.signal !== 'SIGKILL') figures.fail(`${what}: the child was not killed`)
          if (await access(join(dir, '.upswarm', 'journal.json')).then(() => true, () => false)) outcome.withJournal++
          if (plan.killRecovery) {
            // The recovery itself is interrupted at a random moment; recovery is idempotent.
            const rec = await updaterChild(['recover', dir, fx.repo], { killAfterMs: Math.round(rnd() * 40) })
            if (rec.signal === 'SIGKILL') outcome.recoveriesKilled++
          }
          await recover(dir)
          const { rev, problems } = await fx.check(dir)
          if (problems.length) figures.fail(`${what}: ${problems.join('; ')}`)
          if (rev === 1) outcome.r1++
          else outcome.r2++
          if (plan.thenUpdate) {
            await update(dir, { source: new DirectorySource(fx.repo), alerts: new RecordingAlerts() })
            const after = await fx.check(dir)
            if (after.rev !== 2 || after.problems.length) figures.fail(`${what}: the update after recovery: r${after.rev} ${after.problems.join('; ')}`)
            else outcome.updatedAfter++
          }
        } catch (err) {
          figures.fail(`${what}: ${(err as Error).message}`)
        }
        if (figures.failures.length > failedBefore) outcome.failures++
      }
    }))

    const goals = await figures.finish({
      parameters: { journalSteps: labels.length, stepsKilled: steps.length, randomMoments: RANDOM_MOMENTS, updateMs: Math.round(reference.ms), expectedMsAtEnd: Math.round(expectedMs), parallel: PARALLEL },
      rows: (['step', 'moment'] as const).map((kind) => {
        const o = byKind[kind]
        return {
          'kill -9': kind === 'step' ? 'after a durable step' : 'at a random moment', runs: o.runs, 'killed mid-update': o.killedBeforeEnd, 'finished first': o.finishedFirst,
          'journal left': o.withJournal, 'recovery killed too': o.recoveriesKilled, 'ended at r1': o.r1, 'ended at r2': o.r2,
          'updated after': o.updatedAfter, 'not one revision': o.failures,
        }
      }),
      goals: [
        zero('working copies not at exactly one revision plus the user\'s changes', figures.failures.length, `of ${figures.runs} runs`),
        { goal: 'both outcomes happen (before and after the commit)', met: byKind.step.r1 > 0 && byKind.step.r2 > 0, detail: `r1 ${byKind.step.r1}, r2 ${byKind.step.r2} after a step` },
      ],
      notes: [`a durable step: ${labels.join(', ')}`],
    })
    expect(missed(goals)).toEqual([])
  })
})
