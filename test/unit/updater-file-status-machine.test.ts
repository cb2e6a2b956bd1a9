// The file-status statechart with stub actors: its classification agrees with classifyFile on
// every combination of facts, and each status leads to the right action.
import { createActor, fromPromise, toPromise } from 'xstate'
import { describe, expect, it } from 'vitest'
import type { Entry, FileEntry } from '../../infra/release/manifest.ts'
import { downloadMachine } from '../../machines/download.machine.ts'
import {
  classifyFile, fileStatusMachine, type AlertInput, type ConflictPolicy, type FileFacts, type FileStatusOutput, type LocalEntry,
} from '../../machines/file-status.machine.ts'

const file = (content: string, mode = 0o644): Entry & LocalEntry => ({
  path: 'p', kind: 'file', mode, size: content.length, sha1: content.padEnd(40, '1').slice(0, 40), sha256: content.padEnd(64, '2').slice(0, 64),
})
const A = file('a')
const B = file('b')
const C = file('c')
const DIR: Entry = { path: 'p', kind: 'dir', mode: 0o755 }
const LINK: Entry = { path: 'p', kind: 'symlink', target: 'elsewhere' }

function stubbed(opts: { downloadFails?: boolean; alertFails?: boolean; alerts?: string[]; downloads?: string[] } = {}) {
  return fileStatusMachine.provide({
    actors: {
      alert: fromPromise(async ({ input }: { input: AlertInput }) => {
        opts.alerts?.push(input.path)
        if (opts.alertFails) throw new Error('alert stream down')
      }),
      download: downloadMachine.provide({
        actors: {
          findLocal: fromPromise(async () => false),
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
  const actor = createActor(stubbed(opts), { input: { path: 'p', facts, onConflict, slot: 'new/0' } })
  actor.start()
  return toPromise(actor)
}

describe('updater — file-status machine', () => {
  it('updater — the statechart classifies exactly like classifyFile, for every combination of facts', async () => {
    const entries: (Entry | undefined)[] = [undefined, A, B, DIR, LINK, file('a', 0o755)]
    const locals: (LocalEntry | undefined)[] = [undefined, A, B, C, { kind: 'dir', mode: 0o700 }, { kind: 'symlink', target: 'elsewhere' }, { kind: 'other' }, file('a', 0o600)]
    let n = 0
    const seen = new Set<string>()
    for (const ignored of [false, true]) {
      for (const base of entries) {
        for (const target of entries) {
          for (const local of locals) {
            if (!base && !target && !local) continue
            const facts: FileFacts = { ignored, ...(base ? { base } : {}), ...(target ? { target } : {}), ...(local ? { local } : {}) }
            const out = await runFile(facts, 'alert')
            expect(out.status, JSON.stringify(facts)).toBe(classifyFile(facts))
            seen.add(out.status)
            n++
          }
        }
      }
    }
    expect(n).toBeGreaterThan(500)
    expect([...seen].sort()).toEqual(['conflict', 'current', 'ignored', 'missing', 'modified', 'outdated', 'removed', 'unversioned'])
  })

  it('updater — the five statuses of the patent, and the three others', () => {
    expect(classifyFile({ ignored: false, base: A, target: A, local: A })).toBe('current') // R-STATUS-1
    expect(classifyFile({ ignored: true, base: A, target: B, local: C })).toBe('ignored') // R-STATUS-2
    expect(classifyFile({ ignored: false, base: A, target: B, local: C })).toBe('conflict') // R-STATUS-3
    expect(classifyFile({ ignored: false, base: A, target: B, local: A })).toBe('outdated') // R-STATUS-4
    expect(classifyFile({ ignored: false, base: A, target: B })).toBe('missing') // R-STATUS-5
    expect(classifyFile({ ignored: false, base: A, target: A, local: C })).toBe('modified')
    expect(classifyFile({ ignored: false, local: C })).toBe('unversioned')
    expect(classifyFile({ ignored: false, base: A, local: A })).toBe('removed')
    // Deleted upstream but changed by hand; and a new upstream file where the user has another.
    expect(classifyFile({ ignored: false, base: A, local: C })).toBe('conflict')
    expect(classifyFile({ ignored: false, target: B, local: C })).toBe('conflict')
    // Already the new version; a mode change is a change.
    expect(classifyFile({ ignored: false, base: A, target: B, local: B })).toBe('current')
    expect(classifyFile({ ignored: false, base: A, target: file('a', 0o755), local: A })).toBe('outdated')
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
