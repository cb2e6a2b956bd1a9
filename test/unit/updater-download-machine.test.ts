// The download statechart with stub actors: local blobs skip the network, bad or failed
// transfers are retried up to the limit and never staged, staging errors fail the download.
import { createActor, fromPromise, toPromise } from 'xstate'
import { describe, expect, it } from 'vitest'
import type { Entry, FileEntry } from '../../infra/release/manifest.ts'
import { downloadMachine, type DownloadInput, type DownloadOutput } from '../../machines/download.machine.ts'

const FILE: FileEntry = { path: 'f', kind: 'file', mode: 0o644, size: 10, sha1: '1'.repeat(40), sha256: '2'.repeat(64) }

interface Script {
  local?: boolean
  /** Per attempt: 'ok', 'fetch' (transfer fails) or 'verify' (bytes do not verify). */
  attempts?: ('ok' | 'fetch' | 'verify')[]
  stageFails?: boolean
}

async function run(input: DownloadInput, script: Script): Promise<{ out: DownloadOutput; calls: string[] }> {
  const calls: string[] = []
  let attempt = 0
  const machine = downloadMachine.provide({
    actors: {
      findLocal: fromPromise(async () => {
        calls.push('findLocal')
        return script.local ?? false
      }),
      fetch: fromPromise(async ({ input: i }: { input: { entry: FileEntry; attempt: number } }) => {
        calls.push(`fetch#${i.attempt}`)
        if (script.attempts?.[attempt] === 'fetch') {
          attempt++
          throw new Error(`server ${i.attempt} down`)
        }
        return { bytesFromServers: 6, bytesFromPeers: 4 }
      }),
      verify: fromPromise(async () => {
        calls.push('verify')
        if (script.attempts?.[attempt++] === 'verify') throw new Error('SHA-1 mismatch')
      }),
      stage: fromPromise(async ({ input: i }: { input: { entry: Entry; slot: string } }) => {
        calls.push(`stage ${i.slot}`)
        if (script.stageFails) throw new Error('ENOSPC')
      }),
    },
  })
  const actor = createActor(machine, { input })
  actor.start()
  return { out: await toPromise(actor), calls }
}

describe('updater — download machine', () => {
  it('updater — a blob already in the history store is staged without any fetch', async () => {
    const { out, calls } = await run({ entry: FILE, slot: 'new/1' }, { local: true })
    expect(calls).toEqual(['findLocal', 'stage new/1'])
    expect(out).toMatchObject({ ok: true, source: 'local', attempts: 0, bytesFromServers: 0 })
  })

  it('updater — fetched, verified, staged; bytes counted by origin', async () => {
    const { out, calls } = await run({ entry: FILE, slot: 'new/2' }, { attempts: ['ok'] })
    expect(calls).toEqual(['findLocal', 'fetch#1', 'verify', 'stage new/2'])
    expect(out).toEqual({ ok: true, source: 'remote', attempts: 1, bytesFromServers: 6, bytesFromPeers: 4, errors: [] })
  })

  it('updater — a failed transfer and a bad one are retried, then succeed (R-VERIFY)', async () => {
    const { out, calls } = await run({ entry: FILE, slot: 'new/3' }, { attempts: ['fetch', 'verify', 'ok'] })
    expect(calls).toEqual(['findLocal', 'fetch#1', 'fetch#2', 'verify', 'fetch#3', 'verify', 'stage new/3'])
    expect(out).toMatchObject({ ok: true, attempts: 3, errors: ['server 1 down', 'SHA-1 mismatch'] })
  })

  it('updater — after the last attempt the download fails and nothing is staged', async () => {
    const { out, calls } = await run({ entry: FILE, slot: 'new/4', maxAttempts: 2 }, { attempts: ['verify', 'verify', 'ok'] })
    expect(calls.filter((c) => c.startsWith('stage'))).toEqual([])
    expect(out).toMatchObject({ ok: false, attempts: 2, errors: ['SHA-1 mismatch', 'SHA-1 mismatch'] })
  })

  it('updater — a staging error (disk full) fails the download without retrying the network', async () => {
    const { out, calls } = await run({ entry: FILE, slot: 'new/5' }, { attempts: ['ok'], stageFails: true })
    expect(calls.filter((c) => c.startsWith('fetch'))).toHaveLength(1)
    expect(out).toMatchObject({ ok: false, errors: ['ENOSPC'] })
  })

  it('updater — without a slot the blob is only stored (history prefetch); symlinks need no blob', async () => {
    expect((await run({ entry: FILE }, { attempts: ['ok'] })).calls).toEqual(['findLocal', 'fetch#1', 'verify'])
    const link = await run({ entry: { path: 'l', kind: 'symlink', target: 'f' }, slot: 'new/6' }, {})
    expect(link.calls).toEqual(['stage new/6'])
    expect(link.out).toMatchObject({ ok: true, source: 'none' })
  })
})
