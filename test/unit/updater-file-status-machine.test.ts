// The file-status statechart with stub actors, driven by the fact events of a path: its status
// agrees with a reference model of R-STATUS (and with the table `status` uses) on every
// combination of facts, and each status leads to the right action.
import { createActor, fromPromise, toPromise } from 'xstate'
import { describe, expect, it } from 'vitest'
import { downloadMachineWith, prestagedOutcome } from '../../actors/updater/downloads.ts'
import { fileOutcome, type DownloadSteps } from '../../actors/updater/file-outcome.ts'
import type { RunSession } from '../../actors/updater/run-session.ts'
import { classifyFile } from '../../actors/updater/status.ts'
import type { RunPlan } from '../../machines/update-run.machine.ts'
import type { Entry, FileEntry } from '../../infra/release/manifest.ts'
import { downloadMachine } from '../../machines/download.machine.ts'
import {
  factEvents, fileStatusMachine, sameEntry, type AlertInput, type ConflictPolicy, type FileFacts, type FileStatus, type FileStatusOutput, type LocalEntry,
} from '../../machines/file-status.machine.ts'

const file = (content: string, mode = 0o644): Entry & LocalEntry => ({
  path: 'p', kind: 'file', mode, size: content.length, sha1: content.padEnd(40, '1').slice(0, 40), sha256: content.padEnd(64, '2').slice(0, 64),
})
const A = file('a')
const B = file('b')
const C = file('c')
const DIR: Entry = { path: 'p', kind: 'dir', mode: 0o755 }
const LINK: Entry = { path: 'p', kind: 'symlink', target: 'elsewhere' }

function stubbed(opts: { downloadFails?: boolean; alertFails?: boolean; alerts?: string[]; downloads?: string[]; foundLocally?: boolean } = {}) {
  return fileStatusMachine.provide({
    actors: {
      alert: fromPromise(async ({ input }: { input: AlertInput }) => {
        opts.alerts?.push(input.path)
        if (opts.alertFails) throw new Error('alert stream down')
      }),
      download: downloadMachine.provide({
        actors: {
          findLocal: fromPromise(async () => !!opts.foundLocally),
          fetch: fromPromise(async ({ input }: { input: { entry: FileEntry; attempt: number } }) => {
            opts.downloads?.push(input.entry.path)
            if (opts.downloadFails) throw new Error(`server ${input.attempt} down`)
            return { bytesFromServers: input.entry.size, bytesFromPeers: 0 }
          }),
          verify: fromPromise<void, FileEntry>(async () => undefined),
          stage: fromPromise<void, { entry: Entry; slot: string }>(async () => undefined),
        },
      }),
    },
  })
}

async function runFile(facts: FileFacts, onConflict: ConflictPolicy = 'alert', opts: Parameters<typeof stubbed>[0] = {}): Promise<FileStatusOutput> {
  const actor = createActor(stubbed(opts), { input: { path: 'p', onConflict, slot: 'new/0' } })
  actor.start()
  for (const event of factEvents(facts)) if (actor.getSnapshot().matches('classifying')) actor.send(event)
  return toPromise(actor)
}

/**
 * R-STATUS-1..5 and the three other statuses, written as tests on the facts in the order the
 * first that holds wins (the classification before it became a statechart), as the reference.
 */
function referenceStatus(f: FileFacts): FileStatus {
  const same = (a: LocalEntry | Entry | undefined, b: Entry | undefined) => !!a && !!b && sameEntry(a, b)
  if (f.ignored) return 'ignored'
  if (!f.base && !f.target) return 'unversioned'
  if (same(f.local, f.target)) return 'current'
  if (f.base && !f.target && (!f.local || same(f.local, f.base))) return 'removed'
  if (f.target && !f.local) return 'missing'
  if (f.base && f.target && !same(f.base, f.target) && same(f.local, f.base)) return 'outdated'
  if (same(f.base, f.target)) return 'modified'
  return 'conflict'
}

/** Every combination of installed, target and on-disk entries (and ignore flags) that names something at the path. */
function* factsOf(entries: (Entry | undefined)[], locals: (LocalEntry | undefined)[], ignoreds = [false, true]): Generator<FileFacts> {
  for (const ignored of ignoreds) {
    for (const base of entries) {
      for (const target of entries) {
        for (const local of locals) {
          if (!base && !target && !local) continue
          yield { ignored, ...(base ? { base } : {}), ...(target ? { target } : {}), ...(local ? { local } : {}) }
        }
      }
    }
  }
}

describe('updater — file-status machine', () => {
  it('updater — the statechart, fed the fact events, gives the reference status (and the table the same) for every combination of facts', async () => {
    const entries: (Entry | undefined)[] = [undefined, A, B, DIR, LINK, file('a', 0o755)]
    const locals: (LocalEntry | undefined)[] = [undefined, A, B, C, { kind: 'dir', mode: 0o700 }, { kind: 'symlink', target: 'elsewhere' }, { kind: 'other' }, file('a', 0o600)]
    let n = 0
    const seen = new Set<string>()
    for (const facts of factsOf(entries, locals)) {
      const out = await runFile(facts, 'alert')
      expect(out.status, JSON.stringify(facts)).toBe(referenceStatus(facts))
      expect(classifyFile(facts), JSON.stringify(facts)).toBe(out.status)
      seen.add(out.status)
      n++
    }
    expect(n).toBeGreaterThan(500)
    expect([...seen].sort()).toEqual(['conflict', 'current', 'ignored', 'missing', 'modified', 'outdated', 'removed', 'unversioned'])
  })

  it('updater — a path whose file a batch verified and staged gets, without an actor, the output the statechart gives it (issue 13 item 4); any other path runs its actor', async () => {
    const entries: (Entry | undefined)[] = [undefined, A, B, DIR, LINK]
    const locals: (LocalEntry | undefined)[] = [undefined, A, B, C, { kind: 'dir', mode: 0o700 }]
    const slot = 'new/0'
    const session = { verified: new Set([(A as FileEntry).sha256, (B as FileEntry).sha256]), prestaged: new Set(['p']) } as unknown as RunSession
    let shortcuts = 0
    for (const base of entries) {
      for (const target of entries) {
        for (const local of locals) {
          const facts: FileFacts = { ignored: false, ...(base ? { base } : {}), ...(target ? { target } : {}), ...(local ? { local } : {}) }
          const fast = prestagedOutcome(session, { path: 'p', slot, facts } as RunPlan['tasks'][number])
          const status = classifyFile(facts)
          expect(fast !== undefined, JSON.stringify(facts)).toBe(target?.kind === 'file' && (status === 'missing' || status === 'outdated'))
          if (!fast) continue
          shortcuts++
          expect(fast, JSON.stringify(facts)).toEqual(await runFile(facts, 'alert', { foundLocally: true }))
          // Not verified, or a path whose slot the batch did not fill: the actor runs.
          expect(prestagedOutcome({ ...session, verified: new Set() } as unknown as RunSession, { path: 'p', slot, facts } as RunPlan['tasks'][number])).toBeUndefined()
          expect(prestagedOutcome(session, { path: 'q', slot: 'new/1', facts } as RunPlan['tasks'][number])).toBeUndefined()
        }
      }
    }
    expect(shortcuts).toBe(14)
  })

  it('updater — without an inspector a path takes the charts\' transitions in plain code (issue 14 item 1): the same output and the same steps in the same order as its actor, for every status and download path', async () => {
    /** How the download steps behave: local copy found (or the lookup failing), fetches failing, a bad first copy, staging failing. */
    interface Behaviour { local?: boolean | 'throws'; fetchFails?: number; verifyFails?: number; stageFails?: boolean }
    const behaviours: Behaviour[] = [
      {}, { local: true }, { local: 'throws' }, { fetchFails: 1 }, { fetchFails: 2 }, { fetchFails: 3 }, { verifyFails: 1 },
      { fetchFails: 1, verifyFails: 1 }, { verifyFails: 3 }, { stageFails: true }, { local: true, stageFails: true },
    ]
    const stepsOf = (b: Behaviour, calls: string[]): DownloadSteps => {
      let fetches = 0
      let verifies = 0
      return {
        findLocal: async (e) => {
          calls.push(`findLocal ${e.path}`)
          if (b.local === 'throws') throw new Error('history store unreadable')
          return b.local === true
        },
        fetch: async ({ entry, attempt }) => {
          calls.push(`fetch ${entry.path} #${attempt}`)
          if (fetches++ < (b.fetchFails ?? 0)) throw new Error(`server ${attempt} down`)
          return { bytesFromServers: entry.size, bytesFromPeers: attempt }
        },
        verify: async (e) => {
          calls.push(`verify ${e.path}`)
          if (verifies++ < (b.verifyFails ?? 0)) throw new Error(`bad copy ${verifies}`)
        },
        stage: async ({ entry, slot }) => {
          calls.push(`stage ${entry.path} ${slot}`)
          if (b.stageFails) throw new Error('disk full')
        },
      }
    }
    const viaActor = async (facts: FileFacts, input: { slot?: string; maxAttempts?: number }, steps: DownloadSteps): Promise<FileStatusOutput> => {
      const machine = fileStatusMachine.provide({
        actors: {
          alert: fromPromise<void, AlertInput>(async () => undefined),
          download: downloadMachineWith(steps),
        },
      })
      const actor = createActor(machine, { input: { path: 'p', onConflict: 'alert', ...input } })
      actor.start()
      for (const event of factEvents(facts)) if (actor.getSnapshot().matches('classifying')) actor.send(event)
      return toPromise(actor)
    }
    const entries: (Entry | undefined)[] = [undefined, A, B, DIR, LINK]
    const locals: (LocalEntry | undefined)[] = [undefined, A, B, C]
    const inputs: { slot?: string; maxAttempts?: number }[] = [{ slot: 'new/0' }, {}, { slot: 'new/1', maxAttempts: 1 }]
    const outcomes = new Set<string>()
    let compared = 0
    for (const facts of factsOf(entries, locals)) {
      const status = classifyFile(facts)
      for (const input of inputs) {
        for (const b of behaviours) {
          const direct: string[] = []
          const out = await fileOutcome({ path: 'p', onConflict: 'alert', ...input }, facts, status, stepsOf(b, direct))
          if (status === 'conflict') {
            // The alert and the conflict policy stay with the actor.
            expect(out, JSON.stringify(facts)).toBeUndefined()
            expect(direct).toEqual([])
            continue
          }
          const charted: string[] = []
          const what = `${JSON.stringify(facts)} ${JSON.stringify(input)} ${JSON.stringify(b)}`
          expect(out, what).toEqual(await viaActor(facts, input, stepsOf(b, charted)))
          expect(direct, what).toEqual(charted)
          outcomes.add(`${out!.status}/${out!.outcome}/${out!.download?.source ?? '-'}`)
          compared++
        }
      }
    }
    expect(compared).toBeGreaterThan(2000)
    // Every way a path can end was compared: each status, local and fetched downloads, failures, removals.
    expect([...outcomes].sort()).toEqual([
      'current/noop/-', 'ignored/noop/-', 'missing/failed/local', 'missing/failed/none', 'missing/failed/remote', 'missing/staged/local', 'missing/staged/none', 'missing/staged/remote',
      'modified/noop/-', 'outdated/failed/local', 'outdated/failed/none', 'outdated/failed/remote', 'outdated/staged/local', 'outdated/staged/none', 'outdated/staged/remote',
      'removed/noop/-', 'removed/staged/-', 'unversioned/noop/-',
    ])
  })

  it('updater — the five statuses of the patent, and the three others, from the statechart and from its table', async () => {
    const cases: [FileFacts, FileStatus][] = [
      [{ ignored: false, base: A, target: A, local: A }, 'current'], // R-STATUS-1
      [{ ignored: true, base: A, target: B, local: C }, 'ignored'], // R-STATUS-2
      [{ ignored: false, base: A, target: B, local: C }, 'conflict'], // R-STATUS-3
      [{ ignored: false, base: A, target: B, local: A }, 'outdated'], // R-STATUS-4
      [{ ignored: false, base: A, target: B }, 'missing'], // R-STATUS-5
      [{ ignored: false, base: A, target: A, local: C }, 'modified'],
      [{ ignored: false, local: C }, 'unversioned'],
      [{ ignored: false, base: A, local: A }, 'removed'],
      // Deleted upstream but changed by hand; and a new upstream file where the user has another.
      [{ ignored: false, base: A, local: C }, 'conflict'],
      [{ ignored: false, target: B, local: C }, 'conflict'],
      // Already the new version; a mode change is a change.
      [{ ignored: false, base: A, target: B, local: B }, 'current'],
      [{ ignored: false, base: A, target: file('a', 0o755), local: A }, 'outdated'],
    ]
    for (const [facts, status] of cases) {
      expect((await runFile(facts, 'alert')).status, JSON.stringify(facts)).toBe(status)
      expect(classifyFile(facts), JSON.stringify(facts)).toBe(status)
    }
  })

  it('updater — each fact event moves the statechart to a state that names what is known so far', () => {
    const actor = createActor(stubbed(), { input: { path: 'p', onConflict: 'alert' } })
    actor.start()
    const seen: unknown[] = [actor.getSnapshot().value]
    for (const event of factEvents({ ignored: false, base: A, target: B, local: C }).slice(0, 3)) {
      actor.send(event)
      seen.push(actor.getSnapshot().value)
    }
    expect(seen).toEqual([
      { classifying: 'rules' }, { classifying: 'installed' }, { classifying: 'inInstalled' }, { classifying: 'changed' },
    ])
    actor.stop()
  })

  it('updater — the alert of a conflict carries the facts the events brought', async () => {
    const inputs: AlertInput[] = []
    const machine = fileStatusMachine.provide({
      actors: { alert: fromPromise(async ({ input }: { input: AlertInput }) => { inputs.push(input) }) },
    })
    const facts: FileFacts = { ignored: false, base: A, target: B, local: C }
    const actor = createActor(machine, { input: { path: 'p', onConflict: 'alert' } })
    actor.start()
    for (const event of factEvents(facts)) actor.send(event)
    expect(await toPromise(actor)).toMatchObject({ status: 'conflict', outcome: 'kept', alerted: true })
    expect(inputs).toEqual([{ path: 'p', facts }])
  })

  it('updater — outdated and missing paths are downloaded and staged; no-ops download nothing', async () => {
    const downloads: string[] = []
    expect(await runFile({ ignored: false, base: A, target: B, local: A }, 'alert', { downloads })).toMatchObject({ status: 'outdated', outcome: 'staged', action: 'put' })
    expect(await runFile({ ignored: false, target: B }, 'alert', { downloads })).toMatchObject({ status: 'missing', outcome: 'staged', action: 'put' })
    expect(await runFile({ ignored: false, base: A, target: A, local: A }, 'alert', { downloads })).toMatchObject({ status: 'current', outcome: 'noop' })
    expect(await runFile({ ignored: true, base: A, target: B, local: C }, 'alert', { downloads })).toMatchObject({ status: 'ignored', outcome: 'noop' })
    expect(downloads).toEqual(['p', 'p'])
  })

  it('updater — a conflict raises one alert and is kept; with overwrite it is then replaced', async () => {
    const alerts: string[] = []
    const downloads: string[] = []
    expect(await runFile({ ignored: false, base: A, target: B, local: C }, 'alert', { alerts, downloads }))
      .toMatchObject({ status: 'conflict', outcome: 'kept', alerted: true })
    expect(downloads).toEqual([])
    expect(await runFile({ ignored: false, base: A, target: B, local: C }, 'overwrite', { alerts, downloads }))
      .toMatchObject({ status: 'conflict', outcome: 'staged', action: 'put', alerted: true })
    expect(await runFile({ ignored: false, base: A, local: C }, 'overwrite', { alerts }))
      .toMatchObject({ status: 'conflict', outcome: 'staged', action: 'delete' })
    expect(alerts).toEqual(['p', 'p', 'p'])
  })

  it('updater — an alert that cannot be published still keeps the file and says why', async () => {
    expect(await runFile({ ignored: false, base: A, target: B, local: C }, 'alert', { alertFails: true }))
      .toMatchObject({ outcome: 'kept', alerted: false, alertError: 'alert stream down' })
  })

  it('updater — removed paths are staged for deletion only when present', async () => {
    expect(await runFile({ ignored: false, base: A, local: A })).toMatchObject({ status: 'removed', outcome: 'staged', action: 'delete' })
    expect(await runFile({ ignored: false, base: A })).toMatchObject({ status: 'removed', outcome: 'noop' })
  })

  it('updater — a download that fails every attempt fails the path', async () => {
    const out = await runFile({ ignored: false, base: A, target: B, local: A }, 'alert', { downloadFails: true })
    expect(out).toMatchObject({ status: 'outdated', outcome: 'failed', download: { ok: false, attempts: 3 } })
    expect(out.error).toBe('cannot download p: server 1 down; server 2 down; server 3 down')
  })
})
