// Incremental update (issue 7, benchmark 2): a working copy at r1 goes to r2 where 1% of the
// files changed; bytes transferred and wall time of `upswarm update` (CLI, server source: NATS
// range requests to the server the proxy assigns) side by side with `rsync -a` from an rsync
// daemon on 127.0.0.1 into a copy of r1, in the same run; and the same update of a second
// working copy run inside this process, to tell the CLI's start-up from the update's own cost.
// Two kinds of change:
//   replaced — 1% of the files rewritten with new contents (tree-gen's mutateTree);
//   edited   — 1% of the files with one 4 KiB block overwritten in place (rsync's delta case).
import { createHash } from 'node:crypto'
import { open, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateTree, listFiles, mutateTree, seededBytes } from '../actors/demo/tree-gen.ts'
import { serverSource } from '../actors/share-daemon/sources.ts'
import * as updater from '../actors/updater/index.ts'
import { spawnGuarded, stopChild } from '../infra/cluster/children.ts'
import { freePort } from '../infra/cluster/ports.ts'
import { jetStreamAlertSink } from '../infra/nats/alert-sink.ts'
import { cliStartupMs, startRepo, timed, upswarm, type Repo } from './lib/cluster.ts'
import { withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { MiB, progress, round, startRecording, type BenchResult, type Cell, type CommonOptions } from './lib/report.ts'
import { barChart } from './lib/svg.ts'

export interface IncrementalBenchOptions extends CommonOptions {
  files: number
  mib: number
  /** Fraction of the files changed per revision. */
  changeFraction: number
  editBytes: number
}

export const INCREMENTAL_DEFAULTS: IncrementalBenchOptions = { files: 1000, mib: 32, changeFraction: 0.01, editBytes: 4096 }

interface RsyncStats {
  ms: number
  sent: number
  received: number
  literal: number
  matched: number
  transferred: number
}

/** Overwrites `bytes` bytes at a seeded offset of a seeded `fraction` of the files. */
async function editTree(root: string, seed: string, fraction: number, bytes: number): Promise<{ edited: number; editedBytes: number; fileBytes: number }> {
  const files = await listFiles(root)
  const pick = files
    .map((f) => ({ f, k: createHash('sha256').update(`${seed}:${f}`).digest().readUInt32BE(0) }))
    .sort((a, b) => a.k - b.k)
    .slice(0, Math.max(1, Math.round(files.length * fraction)))
  let editedBytes = 0
  let fileBytes = 0
  for (const { f, k } of pick) {
    const path = join(root, f)
    const size = (await stat(path)).size
    const len = Math.min(bytes, size)
    const offset = size > len ? k % (size - len) : 0
    const fh = await open(path, 'r+')
    try {
      await fh.write(seededBytes(`${seed}:${f}:edit`, len), 0, len, offset)
    } finally {
      await fh.close()
    }
    editedBytes += len
    fileBytes += size
  }
  return { edited: pick.length, editedBytes, fileBytes }
}

function parseRsyncStats(out: string, ms: number): RsyncStats {
  const num = (label: string): number => {
    const m = new RegExp(`${label}:\\s*([\\d,]+)`).exec(out)
    return m ? Number(m[1]!.replace(/,/g, '')) : NaN
  }
  return {
    ms,
    sent: num('Total bytes sent'),
    received: num('Total bytes received'),
    literal: num('Literal data'),
    matched: num('Matched data'),
    transferred: num('Number of regular files transferred'),
  }
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`rsync daemon did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** An rsync daemon on 127.0.0.1 exporting `path` read-only as module "tree". */
async function startRsyncDaemon(work: string, path: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort()
  const conf = join(work, 'rsyncd.conf')
  await writeFile(conf, [
    `port = ${port}`,
    'address = 127.0.0.1',
    'use chroot = no',
    `pid file = ${join(work, 'rsyncd.pid')}`,
    `log file = ${join(work, 'rsyncd.log')}`,
    '[tree]',
    `  path = ${path}`,
    '  read only = yes',
    // As root the daemon would switch to `nobody`; keep the files' owner so it can read them.
    ...(process.getuid?.() === 0 ? ['  uid = root', '  gid = root'] : []),
    '',
  ].join('\n'))
  const child = spawnGuarded('rsync', ['--daemon', '--no-detach', `--config=${conf}`], { stdio: 'ignore' })
  await waitForPort(port)
  return { url: `rsync://127.0.0.1:${port}/tree/`, stop: () => stopChild(child) }
}

/** The same update in this process (no node start-up, no module loading): what the updater itself costs. */
async function inProcessUpdate(repo: Repo, dir: string): Promise<{ ms: number; payload: number; wire: number }> {
  const before = repo.nc.stats().inBytes
  const t0 = performance.now()
  const r = await updater.update(dir, { source: serverSource(repo.nc, repo.product), alerts: jetStreamAlertSink(repo.nc), threads: 4 })
  return { ms: performance.now() - t0, payload: r.bytesFromServers, wire: repo.nc.stats().inBytes - before }
}

async function upswarmUpdate(repo: Repo, dir: string): Promise<{ ms: number; payload: number; wire: number; updated: number }> {
  const r = await upswarm(['update', dir, '--json'], repo.env)
  const json = JSON.parse(r.stdout) as { bytesFromServers: number; updated: number; checkedOut: number; to: number }
  const wire = await repo.closedConnectionBytes('upswarm-update')
  return { ms: r.ms, payload: json.bytesFromServers, wire: wire.outBytes, updated: json.updated + json.checkedOut }
}

export async function runIncrementalBench(o: IncrementalBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('incremental', rec.startedAt)
  const work = await mkdtemp(join(tmpdir(), 'upswarm-bench-incr-'))
  let repo: Repo | undefined
  let rsyncd: { url: string; stop(): Promise<void> } | undefined
  try {
    const src = join(work, 'src')
    const gen = await generateTree(src, { files: o.files, totalBytes: o.mib * MiB, seed: 'bench-incremental' })
    log(`r1: ${gen.files} files, ${(gen.bytes / MiB).toFixed(1)} MiB; starting the repository`)
    repo = await startRepo({ dir: join(work, 'cluster'), servers: 1 })
    const p1 = await repo.publish(src, 'r1')
    await repo.synced(p1.rev)
    const wc = join(work, 'client')
    const wcInProcess = join(work, 'client-in-process')
    const init = await upswarm(['init', wc, '--product', repo.product, '--pubkey', repo.key.publicKey, '--json'], repo.env)
    await upswarm(['init', wcInProcess, '--product', repo.product, '--pubkey', repo.key.publicKey, '--json'], repo.env)
    await repo.closedConnectionBytes('upswarm-init')
    log(`working copy at r1 (init ${(init.ms / 1000).toFixed(1)} s); copying r1 for rsync`)
    const mirror = join(work, 'rsync-mirror')
    await timed('cp', ['-a', src, mirror])
    rsyncd = await startRsyncDaemon(work, src)
    const cliStartup = await cliStartupMs(repo.env)

    const rows: Record<string, Cell>[] = []
    const scenarios: { name: string; change: () => Promise<{ files: number; bytes: number; describe: string }> }[] = [
      {
        name: 'replaced',
        change: async () => {
          const m = await mutateTree(src, { seed: 'bench-r2', changeFraction: o.changeFraction, add: 0, remove: 0 })
          return { files: m.changed, bytes: m.changedBytes, describe: `${m.changed} files rewritten (${(m.changedBytes / MiB).toFixed(2)} MiB)` }
        },
      },
      {
        name: 'edited',
        change: async () => {
          const e = await editTree(src, 'bench-r3', o.changeFraction, o.editBytes)
          return { files: e.edited, bytes: e.editedBytes, describe: `${e.edited} files with ${o.editBytes} B overwritten (${(e.fileBytes / MiB).toFixed(2)} MiB of files touched)` }
        },
      },
    ]
    const chart: { name: string; upswarmS: number; inprocS: number; rsyncS: number; upswarmMiB: number; rsyncMiB: number }[] = []
    for (const s of scenarios) {
      const change = await s.change()
      const p = await repo.publish(src, s.name)
      await repo.synced(p.rev)
      log(`${s.name}: r${p.rev} published (${change.describe}); upswarm update, then rsync`)
      const u = await withCpuProfiles(o.profile && join(o.profile, s.name), () => upswarmUpdate(repo!, wc))
      const inproc = await inProcessUpdate(repo, wcInProcess)
      const r = await timed('rsync', ['-a', '--delete', '--stats', rsyncd.url, `${mirror}/`])
      const rs = parseRsyncStats(r.stdout, r.ms)
      rows.push(
        { change: s.name, tool: '`upswarm update` (CLI)', 'files changed': change.files, 'changed MiB': round(change.bytes / MiB), 'payload MiB': round(u.payload / MiB), 'wire MiB': round(u.wire / MiB), 'wall s': round(u.ms / 1000) },
        { change: s.name, tool: 'updater.update() in-process', 'files changed': change.files, 'changed MiB': round(change.bytes / MiB), 'payload MiB': round(inproc.payload / MiB), 'wire MiB': round(inproc.wire / MiB), 'wall s': round(inproc.ms / 1000) },
        { change: s.name, tool: '`rsync -a` from rsyncd', 'files changed': change.files, 'changed MiB': round(change.bytes / MiB), 'payload MiB': round(rs.literal / MiB), 'wire MiB': round((rs.received + rs.sent) / MiB), 'wall s': round(rs.ms / 1000) },
      )
      chart.push({ name: s.name, upswarmS: u.ms / 1000, inprocS: inproc.ms / 1000, rsyncS: rs.ms / 1000, upswarmMiB: u.wire / MiB, rsyncMiB: (rs.received + rs.sent) / MiB })
      log(`${s.name}: upswarm ${(u.ms / 1000).toFixed(2)} s ${(u.wire / MiB).toFixed(2)} MiB; rsync ${(rs.ms / 1000).toFixed(2)} s ${((rs.received + rs.sent) / MiB).toFixed(2)} MiB`)
    }
    const svg = barChart([
      { title: 'Wall time of the update (1% of files changed)', yLabel: 'seconds', groups: chart.map((c) => c.name), series: [{ name: 'upswarm update (CLI)', values: chart.map((c) => round(c.upswarmS)) }, { name: 'updater.update() in-process', values: chart.map((c) => round(c.inprocS)) }, { name: 'rsync -a (daemon, loopback)', values: chart.map((c) => round(c.rsyncS)) }] },
      { title: 'Bytes on the wire', yLabel: 'MiB', groups: chart.map((c) => c.name), series: [{ name: 'upswarm update (NATS, to the client)', values: chart.map((c) => round(c.upswarmMiB)) }, { name: 'rsync (sent + received)', values: chart.map((c) => round(c.rsyncMiB)) }] },
    ], `${gen.files} files, ${(gen.bytes / MiB).toFixed(0)} MiB; upswarm CLI start-up alone ${(cliStartup / 1000).toFixed(2)} s; 127.0.0.1`)
    if (o.profile) await writeProfileReport('incremental', o.profile, scenarios.map((s) => ({ dir: join(o.profile!, s.name), merge: false })), o.resultsDir)
    return await rec.finish({
      name: 'incremental',
      title: `Incremental update: ${gen.files} files, ${(gen.bytes / MiB).toFixed(0)} MiB, ${(o.changeFraction * 100).toFixed(0)}% of files changed`,
      parameters: { ...o, fileCount: gen.files, bytes: gen.bytes, cliStartupMs: round(cliStartup), initMs: round(init.ms) },
      columns: ['change', 'tool', 'files changed', 'changed MiB', 'payload MiB', 'wire MiB', 'wall s'],
      rows,
      goals: [],
      notes: [
        'payload: file bytes the client received (upswarm bytesFromServers; rsync "Literal data"). wire: upswarm = bytes the NATS nodes sent to the update\'s connection (connz); rsync = total bytes sent + received.',
        `in-process: the same update of a second working copy from the benchmark process (no node start-up, no module loading); \`upswarm --help\` alone takes ${(cliStartup / 1000).toFixed(2)} s here (median of 3).`,
        'wire for in-process: bytes the benchmark\'s NATS connection received during the update.',
      ],
    }, svg)
  } finally {
    await rsyncd?.stop()
    await repo?.stop()
    if (!o.keep) await rm(work, { recursive: true, force: true })
  }
}
