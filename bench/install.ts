// First install of many small files (issue 13 item 4): `upswarm init` of a format-2-only release of
// N small files from the servers (the CLI as a user runs it, on a three-node cluster with
// credentials and TLS, one repository server, the proxy), side by side with curl fetching the same
// files from Debian's nginx on this machine — one at a time over one keep-alive connection, and 8
// at once (`--parallel`). Goal: init at ≥ 50% of curl's speed for the same bytes.
// Then the same copy at scale (issue 13 items 3 and 6): the first status after init, an update of
// 1% of the files (one rewritten in each directory of 100, so every leaf directory changes), the
// status after it and an update with nothing new, each with its wall time and peak RSS
// (`--install-files 1000000`: the 1 000 000-file case; goal under 1 GiB for status and update).
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { quietDisk, startRepo, upswarm, upswarmWithPeak } from './lib/cluster.ts'
import { withCpuProfiles } from './lib/cpu-profile.ts'
import { curlMany, startNginx } from './lib/nginx.ts'
import { MiB, progress, round, startRecording, type BenchResult, type CommonOptions } from './lib/report.ts'

export interface InstallBenchOptions extends CommonOptions {
  files: number
}
export const INSTALL_DEFAULTS: InstallBenchOptions = { files: 20_000 }

const FAN = 100

export async function runInstallBench(o: InstallBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('install', rec.startedAt)
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-bench-install-'))
  const repo = await startRepo({ dir: join(dir, 'deploy'), servers: 1, formats: [2] })
  try {
    const src = join(dir, 'src')
    const paths: string[] = []
    let bytes = 0
    for (let i = 0; i < o.files; i++) {
      const rel = `d${Math.floor(i / FAN / FAN)}/d${Math.floor(i / FAN) % FAN}/f${i % FAN}.bin`
      if (i % FAN === 0) await mkdir(join(src, rel, '..'), { recursive: true })
      const data = randomBytes(200 + ((i * 2654435761) % 3900))
      await writeFile(join(src, rel), data)
      paths.push(rel)
      bytes += data.length
    }
    const published = await repo.publish(src)
    await repo.synced(published.rev, 600_000)
    log(`published ${o.files} files (${(bytes / MiB).toFixed(1)} MiB) as r${published.rev}`)
    // Each timed step starts with nothing dirty in the page cache and the disk quiet (quietDisk):
    // the writeback of what the step before wrote (curl's files are never synced) and the discards
    // of trees deleted before would otherwise land on the next one's clock. curl with 8 connections
    // runs before init and after it, and its best is the anchor: on this VM the disk's state
    // drifts within a run, and it should not favour either side.
    const nginx = await startNginx(src)
    let curl1: number
    let curl8: number
    let curl8Before: number
    let curl8After: number
    let init: Awaited<ReturnType<typeof upswarm>>
    try {
      await quietDisk()
      curl8Before = await curlMany(nginx.url, paths, join(dir, 'curl8-before'), 8)
      await quietDisk()
      init = await withCpuProfiles(o.profile, () => upswarm(['init', join(dir, 'wc'), '--product', repo.product, ...repo.pinArgs, '--json'], repo.env))
      log(`upswarm init: ${(init.ms / 1000).toFixed(2)} s (curl 8 at once before it: ${(curl8Before / 1000).toFixed(2)} s)`)
      await quietDisk()
      curl1 = await curlMany(nginx.url, paths, join(dir, 'curl1'), 1)
      await quietDisk()
      curl8After = await curlMany(nginx.url, paths, join(dir, 'curl8'), 8)
      curl8 = Math.min(curl8Before, curl8After)
    } finally {
      await nginx.stop()
    }
    const res = JSON.parse(init.stdout) as { checkedOut: number; bytesFromServers: number }
    log(`curl from nginx: ${(curl1 / 1000).toFixed(2)} s one at a time, 8 at once ${(curl8Before / 1000).toFixed(2)} s before init and ${(curl8After / 1000).toFixed(2)} s after`)
    const best = Math.min(curl1, curl8)
    const speed = best / init.ms
    // The copy at scale: statuses and updates, each with its peak RSS.
    const wc = join(dir, 'wc')
    const steps: { step: string; files: number; s: number; peakMiB: number | null }[] = []
    const step = async (name: string, files: number, args: string[]): Promise<string> => {
      await quietDisk()
      const r = await upswarmWithPeak(args, repo.env)
      steps.push({ step: name, files, s: r.ms / 1000, peakMiB: r.peakMiB })
      log(`${name}: ${(r.ms / 1000).toFixed(2)} s${r.peakMiB === null ? '' : `, peak RSS ${Math.round(r.peakMiB)} MiB`}`)
      return r.stdout
    }
    await step('status after init', o.files, ['status', wc, '--offline', '--json'])
    let changed = 0
    for (let i = 37 % FAN; i < o.files; i += FAN, changed++) await writeFile(join(src, paths[i]!), randomBytes(300))
    const next = await repo.publish(src)
    await repo.synced(next.rev, 1_800_000)
    const updated = JSON.parse(await step('update, 1% changed', changed, ['update', wc, '--json'])) as { to: number; updated: number }
    await step('status after the update', o.files, ['status', wc, '--offline', '--json'])
    await step('update, nothing new', 0, ['update', wc, '--json'])
    const peakOf = (name: string): number | null => steps.find((x) => x.step === name)?.peakMiB ?? null
    const underGiB = (name: string): boolean => (peakOf(name) ?? Infinity) < 1024
    return rec.finish({
      name: 'install',
      title: 'First install of many small files: upswarm init against curl from nginx',
      parameters: { ...o, fan: FAN, natsNodes: 3, servers: 1 },
      columns: ['step', 'files', 'MiB', 'upswarm s', 'peak RSS MiB', 'curl (1 at a time) s', 'curl (8 at once, best of before and after init) s', 'init speed / curl\'s best'],
      rows: [{
        step: 'init (first install)', files: o.files, MiB: round(bytes / MiB, 3), 'upswarm s': round(init.ms / 1000, 3), 'peak RSS MiB': null,
        'curl (1 at a time) s': round(curl1 / 1000, 3), 'curl (8 at once, best of before and after init) s': round(curl8 / 1000, 3), 'init speed / curl\'s best': round(speed, 3),
      }, ...steps.map((x) => ({
        step: x.step, files: x.files, MiB: null, 'upswarm s': round(x.s, 3), 'peak RSS MiB': x.peakMiB === null ? null : Math.round(x.peakMiB),
        'curl (1 at a time) s': null, 'curl (8 at once, best of before and after init) s': null, 'init speed / curl\'s best': null,
      }))],
      goals: [{
        goal: 'init from the servers at ≥ 50% of what curl gets from nginx for the same files (issue 13 item 4)',
        met: speed >= 0.5 && res.checkedOut === o.files,
        detail: `${(speed * 100).toFixed(0)}% (init ${(init.ms / 1000).toFixed(2)} s; curl\'s best ${(best / 1000).toFixed(2)} s: 8 at once ${(curl8Before / 1000).toFixed(2)} s before init and ${(curl8After / 1000).toFixed(2)} s after, 1 at a time ${(curl1 / 1000).toFixed(2)} s); ${res.checkedOut} files checked out, ${(res.bytesFromServers / MiB).toFixed(1)} MiB from the servers`,
      }, {
        goal: `an update of 1% and a status of ${o.files} files stay under 1 GiB of RSS (issue 13 item 6)`,
        met: updated.updated === changed && underGiB('update, 1% changed') && underGiB('status after the update') && underGiB('status after init'),
        detail: `peak RSS: update ${peakOf('update, 1% changed')?.toFixed(0) ?? '?'} MiB (r${updated.to}, ${updated.updated} of ${changed} files updated), status after init ${peakOf('status after init')?.toFixed(0) ?? '?'} MiB, after the update ${peakOf('status after the update')?.toFixed(0) ?? '?'} MiB`,
      }],
      notes: [
        'init: the CLI (node + dist/), a three-node cluster with credentials and TLS, one repository server holding the release in packs (docs/formats.md §1.9), the proxy; small files come by the batch (the server\'s `units` request), each verified (size, SHA-1, SHA-256), then written by a worker thread with the batch\'s history pack: straight into the directories the install makes (a journal names them first, so an interrupted install removes them), made durable with one syncfs.',
        'curl: Debian\'s nginx (unpacked into .tools/ by the bench) serving the same tree on 127.0.0.1; curl writes each file (--create-dirs) with no verification and no fsync.',
        'Each timed step starts after a `sync` and once the disk is quiet (no write or discard completed for 2 s, 60 s at most), so the writeback of the step before is not on its clock; curl with 8 connections runs before init and after it, and its best is the anchor. On this VM (ext4 mounted with online `discard`, so the deletes of earlier trees are still being discarded) creating the same 100 000 files takes 4–23 s from one run to the next, and curl\'s time moves up to 7×: compare figures of one run only.',
        'The steps after init: `status --offline`, then one file of each directory of 100 rewritten (1%) and published, `update` (planned from the tree diff and the stat index: docs/decisions.md), `status --offline`, `update` with nothing new; peak RSS by /usr/bin/time. No file monitor runs, so each status and update lstats every path.',
      ],
    })
  } finally {
    await repo.stop()
    if (!o.keep) await rm(dir, { recursive: true, force: true })
  }
}
