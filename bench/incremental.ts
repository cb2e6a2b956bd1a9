// Incremental update (issue 7, benchmark 2; issue 15 item 4): a working copy at r1 goes to r2
// where 1% of the files changed; bytes transferred and wall time of `upswarm update` (CLI, server
// source: NATS range requests to the server the proxy assigns) side by side with `rsync -a` and
// `rsync -az` from an rsync daemon on 127.0.0.1, each into its own copy of r1, in the same run;
// and the same update of a second working copy run inside this process, to tell the CLI's
// start-up from the update's own cost; and the same command on a third copy whose sharing
// daemon runs (`upswarm daemon`, as on every machine of a fleet), which hands the daemon the run
// over the copy's control socket (issue 15 item 4). Three kinds of change:
//   replaced — 1% of the files rewritten with new contents (tree-gen's mutateTree);
//   edited   — 1% of the files with one 4 KiB block overwritten in place (rsync's delta case);
//   release  — a realistic release pair: two consecutive versions of a real package tree from
//              the npm registry (lib/release-pair.ts), on fresh working copies and rsync copies,
//              with "whole changed files" beside them: what an updater without deltas moves.
// Each change is timed over `rounds` revisions (a synthetic one changing other files each time;
// the release pair from fresh copies at A each time): the wall times are their medians, the
// bytes their means.
// Goals (issue 15): upswarm's wire bytes ≤ rsync -a's and ≤ rsync -az's, and the CLI's wall
// time ≤ rsync -a's, for each change (judged for the command alone and with the daemon running).
import { existsSync } from 'node:fs'
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { editTree, generateTree, mutateTree } from '../actors/demo/tree-gen.ts'
import { serverSource } from '../actors/share-daemon/sources.ts'
import * as updater from '../actors/updater/index.ts'
import { spawnGuarded, stopChild } from '../infra/cluster/children.ts'
import { freePort } from '../infra/cluster/ports.ts'
import { jetStreamAlertSink } from '../infra/nats/alert-sink.ts'
import { cliStartupMs, startRepo, timed, upswarm, type Repo } from './lib/cluster.ts'
import { startCopyDaemon } from './lib/copy-daemon.ts'
import { withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { MiB, median, progress, round, startRecording, type BenchResult, type Cell, type CommonOptions, type Goal } from './lib/report.ts'
import { applyRelease, changedInB, DEFAULT_RELEASE_PAIR, releaseTrees, type ReleaseChange, type ReleasePair } from './lib/release-pair.ts'
import { barChart } from './lib/svg.ts'

export interface IncrementalBenchOptions extends CommonOptions {
  files: number
  mib: number
  /** Fraction of the files changed per revision. */
  changeFraction: number
  editBytes: number
  /** The release scenario's pair (npm: fetched once into a cache), or false to leave it out (the tiny size: no registry). */
  release: ReleasePair | false
  /**
   * Revisions timed per change (each a new one: other files, or the release pair again from
   * fresh copies at A), the median time kept: one update of a few files varies by ±30 % from run
   * to run on this machine.
   */
  rounds: number
}

export const INCREMENTAL_DEFAULTS: IncrementalBenchOptions = { files: 1000, mib: 32, changeFraction: 0.01, editBytes: 4096, release: DEFAULT_RELEASE_PAIR, rounds: 3 }

interface RsyncStats {
  ms: number
  sent: number
  received: number
  literal: number
  matched: number
  transferred: number
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

/** An rsync daemon on 127.0.0.1 exporting each of `modules` (name → path) read-only. */
async function startRsyncDaemon(work: string, modules: Record<string, string>): Promise<{ url(module: string): string; stop(): Promise<void> }> {
  const port = await freePort()
  const conf = join(work, 'rsyncd.conf')
  await writeFile(conf, [
    `port = ${port}`,
    'address = 127.0.0.1',
    'use chroot = no',
    `pid file = ${join(work, 'rsyncd.pid')}`,
    `log file = ${join(work, 'rsyncd.log')}`,
    ...Object.entries(modules).flatMap(([name, path]) => [
      `[${name}]`,
      `  path = ${path}`,
      '  read only = yes',
      // As root the daemon would switch to `nobody`; keep the files' owner so it can read them.
      ...(process.getuid?.() === 0 ? ['  uid = root', '  gid = root'] : []),
    ]),
    '',
  ].join('\n'))
  const child = spawnGuarded('rsync', ['--daemon', '--no-detach', `--config=${conf}`], { stdio: 'ignore' })
  await waitForPort(port)
  return { url: (module) => `rsync://127.0.0.1:${port}/${module}/`, stop: () => stopChild(child) }
}

/** The same update in this process (no node start-up, no module loading): what the updater itself costs. */
async function inProcessUpdate(repo: Repo, dir: string): Promise<{ ms: number; payload: number; wire: number }> {
  const before = repo.nc.stats().inBytes
  const t0 = performance.now()
  const r = await updater.update(dir, { source: serverSource(repo.nc, repo.product), alerts: jetStreamAlertSink(repo.nc), threads: 4 })
  return { ms: performance.now() - t0, payload: r.bytesFromServers, wire: repo.nc.stats().inBytes - before }
}

async function upswarmUpdate(repo: Repo, dir: string): Promise<{ ms: number; payload: number; wire: number; updated: number; how: string }> {
  const r = await upswarm(['update', dir, '--json'], repo.env)
  const json = JSON.parse(r.stdout) as { bytesFromServers: number; updated: number; checkedOut: number; from: number; to: number; format: number; deltas?: { files: number; bytes: number; fileBytes: number; failed: number } }
  const wire = await repo.closedConnectionBytes('upswarm-update')
  const d = json.deltas
  const how = `r${json.from} → r${json.to}, format ${json.format}${d ? `, ${d.files} files from deltas (${d.bytes} B for ${d.fileBytes} B${d.failed ? `, ${d.failed} failed` : ''})` : ', no deltas'}`
  return { ms: r.ms, payload: json.bytesFromServers, wire: wire.outBytes, updated: json.updated + json.checkedOut, how }
}


/**
 * The command on a copy whose sharing daemon runs: the daemon's NATS connection moves the bytes.
 * `before`: the daemons' bytes taken before the release was published, since a daemon fetches a
 * release's tree nodes when it hears of it (the bytes count, wherever they fall).
 */
async function daemonUpdate(repo: Repo, dir: string, before: { outBytes: number }): Promise<{ ms: number; payload: number; wire: number }> {
  const r = await upswarm(['update', dir, '--json'], repo.env)
  const json = JSON.parse(r.stdout) as { bytesFromServers: number; bytesFromPeers: number; uploadedBytes?: number }
  if (json.uploadedBytes === undefined) throw new Error(`update of ${dir} was not run by its daemon: ${r.stdout.slice(0, 300)}`)
  const after = await repo.openConnectionBytes('upswarm-daemon')
  return { ms: r.ms, payload: json.bytesFromServers + json.bytesFromPeers, wire: after.outBytes - before.outBytes }
}

/** Where one scenario's update lands: three working copies, the rsync module it pulls and its two rsync copies. */
interface Target {
  wc: string
  wcInProcess: string
  /** A copy whose sharing daemon runs: `update` hands the run to it. */
  wcDaemon: string
  module: string
  /** `rsync -a`'s destination and `rsync -az`'s, both `cp -a` copies of the same tree. */
  mirror: string
  mirrorZ: string
}

interface Change {
  files: number
  bytes: number
  /** Sizes of the files that differ, whole: what an updater without deltas would move. */
  wholeBytes: number
  describe: string
}

interface Measured {
  name: string
  change: Change
  cli: { ms: number; payload: number; wire: number; updated: number }
  inproc: { ms: number; payload: number; wire: number }
  daemon: { ms: number; payload: number; wire: number }
  rsyncA: RsyncStats
  rsyncZ: RsyncStats
}

const mib = (b: number): string => (b / MiB).toFixed(3)

/** The issue 15 goals of one change, judged on the figures of this run. */
function goalsOf(m: Measured): Goal[] {
  const wireA = m.rsyncA.sent + m.rsyncA.received
  const wireZ = m.rsyncZ.sent + m.rsyncZ.received
  const whole = `; whole changed files ${mib(m.change.wholeBytes)} MiB`
  const ratio = (x: number, y: number): string => (y > 0 ? `${(x / y).toFixed(2)}×` : 'n/a')
  return [
    { goal: `${m.name}: upswarm wire bytes ≤ rsync -a`, met: m.cli.wire <= wireA, detail: `${mib(m.cli.wire)} vs ${mib(wireA)} MiB (${ratio(m.cli.wire, wireA)})${whole}` },
    { goal: `${m.name}: upswarm wire bytes ≤ rsync -az`, met: m.cli.wire <= wireZ, detail: `${mib(m.cli.wire)} vs ${mib(wireZ)} MiB (${ratio(m.cli.wire, wireZ)})${whole}` },
    { goal: `${m.name}: \`upswarm update\` (CLI) wall time ≤ rsync -a`, met: m.cli.ms <= m.rsyncA.ms, detail: `${(m.cli.ms / 1000).toFixed(2)} vs ${(m.rsyncA.ms / 1000).toFixed(2)} s (${ratio(m.cli.ms, m.rsyncA.ms)}); in-process ${(m.inproc.ms / 1000).toFixed(2)} s` },
    { goal: `${m.name}: \`upswarm update\` (CLI) with the copy's daemon running, wall time ≤ rsync -a`, met: m.daemon.ms <= m.rsyncA.ms, detail: `${(m.daemon.ms / 1000).toFixed(2)} vs ${(m.rsyncA.ms / 1000).toFixed(2)} s (${ratio(m.daemon.ms, m.rsyncA.ms)}); wire ${mib(m.daemon.wire)} MiB` },
  ]
}

function rowsOf(m: Measured): Record<string, Cell>[] {
  const base = { change: m.name, 'files changed': m.change.files, 'changed MiB': round(m.change.bytes / MiB) }
  const rsync = (tool: string, r: RsyncStats): Record<string, Cell> => ({ ...base, tool, 'payload MiB': round(r.literal / MiB), 'wire MiB': round((r.received + r.sent) / MiB), 'wall s': round(r.ms / 1000) })
  return [
    { ...base, tool: '`upswarm update` (CLI)', 'payload MiB': round(m.cli.payload / MiB), 'wire MiB': round(m.cli.wire / MiB), 'wall s': round(m.cli.ms / 1000) },
    { ...base, tool: 'updater.update() in-process', 'payload MiB': round(m.inproc.payload / MiB), 'wire MiB': round(m.inproc.wire / MiB), 'wall s': round(m.inproc.ms / 1000) },
    { ...base, tool: '`upswarm update` (CLI), the copy\'s daemon running', 'payload MiB': round(m.daemon.payload / MiB), 'wire MiB': round(m.daemon.wire / MiB), 'wall s': round(m.daemon.ms / 1000) },
    rsync('`rsync -a` from rsyncd', m.rsyncA),
    rsync('`rsync -az` from rsyncd', m.rsyncZ),
    { ...base, tool: 'whole changed files', 'payload MiB': round(m.change.wholeBytes / MiB), 'wire MiB': round(m.change.wholeBytes / MiB), 'wall s': null },
  ]
}

/**
 * The rounds as one measure: each wall time (`ms`) their median, each count of bytes or files their
 * mean (so the ratios of bytes are those of the rounds' sums); the words of the first round.
 */
function medianMeasured(rounds: Measured[]): Measured {
  if (rounds.length === 1) return rounds[0]!
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
  const merge = (parts: unknown[], key: string): unknown => {
    const first = parts[0]
    if (typeof first === 'number') return key === 'ms' ? median(parts as number[]) : mean(parts as number[])
    if (first && typeof first === 'object') return Object.fromEntries(Object.keys(first).map((k) => [k, merge(parts.map((p) => (p as Record<string, unknown>)[k]), k)]))
    return first
  }
  const m = merge(rounds, '') as Measured
  return { ...m, change: { ...m.change, describe: `${m.change.describe}; over ${rounds.length} revisions${m.name === 'release' ? ', each from fresh copies at A' : ', each changing other files'}: times their medians, bytes their means` } }
}

export async function runIncrementalBench(o: IncrementalBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('incremental', rec.startedAt)
  const work = await mkdtemp(join(tmpdir(), 'upswarm-bench-incr-'))
  let repo: Repo | undefined
  let rsyncd: { url(module: string): string; stop(): Promise<void> } | undefined
  const daemons: { stop(): Promise<void> }[] = []
  try {
    // The pair first: a registry that cannot be reached fails the run before anything starts.
    const pair = o.release ? await releaseTrees(o.release) : undefined
    if (pair) log(`release pair ${pair.label}: ${pair.a} and ${pair.b}`)
    const src = join(work, 'src')
    const relSrc = join(work, 'release-src')
    const gen = await generateTree(src, { files: o.files, totalBytes: o.mib * MiB, seed: 'bench-incremental' })
    log(`r1: ${gen.files} files, ${(gen.bytes / MiB).toFixed(1)} MiB; starting the repository`)
    repo = await startRepo({ dir: join(work, 'cluster'), servers: 1, formats: [1, 2] })
    const r = repo
    const p1 = await r.publish(src, 'r1')
    await r.synced(p1.rev)
    const initBoth = async (t: Target): Promise<number> => {
      const init = await upswarm(['init', t.wc, '--product', r.product, ...r.pinArgs, '--json'], r.env)
      await upswarm(['init', t.wcInProcess, '--product', r.product, ...r.pinArgs, '--json'], r.env)
      await upswarm(['init', t.wcDaemon, '--product', r.product, ...r.pinArgs, '--json'], r.env)
      daemons.push(await startCopyDaemon(t.wcDaemon, r.env))
      await r.closedConnectionBytes('upswarm-init')
      return init.ms
    }
    const synthetic: Target = { wc: join(work, 'client'), wcInProcess: join(work, 'client-in-process'), wcDaemon: join(work, 'client-daemon'), module: 'tree', mirror: join(work, 'rsync-mirror'), mirrorZ: join(work, 'rsync-mirror-z') }
    const initMs = await initBoth(synthetic)
    log(`working copy at r1 (init ${(initMs / 1000).toFixed(1)} s); copying r1 for rsync -a and rsync -az`)
    await timed('cp', ['-a', src, synthetic.mirror])
    await timed('cp', ['-a', src, synthetic.mirrorZ])
    rsyncd = await startRsyncDaemon(work, { tree: src, release: relSrc })
    const daemon = rsyncd
    const cliStartup = await cliStartupMs(r.env)

    const scenarios: { name: string; prepare?: (round: number) => Promise<Target>; change: (round: number) => Promise<Change> }[] = [
      {
        name: 'replaced',
        change: async (round) => {
          const m = await mutateTree(src, { seed: round === 0 ? 'bench-r2' : `bench-r2-${round}`, changeFraction: o.changeFraction, add: 0, remove: 0 })
          return { files: m.changed, bytes: m.changedBytes, wholeBytes: m.changedBytes, describe: `${m.changed} files rewritten (${(m.changedBytes / MiB).toFixed(2)} MiB)` }
        },
      },
      {
        name: 'edited',
        change: async (round) => {
          const e = await editTree(src, round === 0 ? 'bench-r3' : `bench-r3-${round}`, o.changeFraction, o.editBytes)
          return { files: e.edited, bytes: e.editedBytes, wholeBytes: e.fileBytes, describe: `${e.edited} files with ${o.editBytes} B overwritten (${(e.fileBytes / MiB).toFixed(2)} MiB of files touched)` }
        },
      },
    ]
    let release: (ReleaseChange & { label: string; initMs: number }) | undefined
    let releaseInitMs = 0
    if (pair) {
      // Version A as the product's next revision, on fresh working copies and fresh rsync
      // copies (the synthetic ones stay as they are); then B as the revision after it.
      // Each round starts over from A: A published again as the next revision, fresh working
      // copies (and a fresh daemon: each round times a daemon's first run, as a fleet's daemon,
      // idle for days, meets a release) and fresh rsync copies; then B. One pair timed once moved
      // by a fifth from run to run on this machine, so it is timed `rounds` times like the others.
      let previousDaemon: { stop(): Promise<void> } | undefined
      let changed: string[] | undefined
      const changedPaths = async (): Promise<string[]> => (changed ??= await changedInB(pair.a, pair.b))
      const roundMark = (round: number): string => `\n/* upswarm bench, round ${round + 1} */\n`
      scenarios.push({
        name: 'release',
        prepare: async (round) => {
          await previousDaemon?.stop()
          await rm(relSrc, { recursive: true, force: true })
          await timed('cp', ['-a', pair.a, relSrc])
          // From the second round on, the files the pair changes end with a line naming the round,
          // in A and in B alike: B's files are then new to the servers and to the publish's deltas
          // as they were in the first round (else the second publish of B lists no deltas and the
          // update takes another path), and the delta from A to B is what it was.
          if (round > 0) for (const f of await changedPaths()) if (existsSync(join(relSrc, f))) await appendFile(join(relSrc, f), roundMark(round))
          const pa = await r.publish(relSrc, 'release-a')
          await r.synced(pa.rev)
          const at = (name: string): string => join(work, round === 0 ? name : `${name}-${round}`)
          const t: Target = { wc: at('release-client'), wcInProcess: at('release-client-in-process'), wcDaemon: at('release-client-daemon'), module: 'release', mirror: at('release-rsync-mirror'), mirrorZ: at('release-rsync-mirror-z') }
          const ms = await initBoth(t)
          previousDaemon = daemons.at(-1)
          await timed('cp', ['-a', relSrc, t.mirror])
          await timed('cp', ['-a', relSrc, t.mirrorZ])
          log(`release: r${pa.rev} = ${pair.label.split(' → ')[0]} published, fresh working copies at it (init ${(ms / 1000).toFixed(1)} s)`)
          releaseInitMs = ms
          return t
        },
        change: async (round) => {
          const c = await applyRelease(pair.a, pair.b, relSrc)
          if (round > 0) for (const f of await changedPaths()) await appendFile(join(relSrc, f), roundMark(round))
          release = { ...c, label: pair.label, initMs: releaseInitMs }
          return { files: c.changed + c.added + c.removed, bytes: c.wholeChangedBytes, wholeBytes: c.wholeChangedBytes, describe: `${pair.label}: ${c.changed} files changed, ${c.added} added, ${c.removed} removed of ${c.files} (${(c.wholeChangedBytes / MiB).toFixed(2)} of ${(c.bytes / MiB).toFixed(2)} MiB)` }
        },
      })
    }

    const measured: Measured[] = []
    const roundsEach = Math.max(1, o.rounds)
    /** Each round's path and times, per change: the medians hide a round that took another way. */
    const perRound: Record<string, { how: string; payload: number; cliMs: number; daemonMs: number; rsyncMs: number }[]> = {}
    for (const s of scenarios) {
      const rounds: Measured[] = []
      for (let round = 0; round < roundsEach; round++) {
        const t = s.prepare ? await s.prepare(round) : synthetic
        const change = await s.change(round)
        const daemonBytes = await r.openConnectionBytes('upswarm-daemon')
        const p = await r.publish(s.name === 'release' ? relSrc : src, s.name)
        await r.synced(p.rev)
        log(`${s.name}: r${p.rev} published (${change.describe}); upswarm update, then rsync -a, then rsync -az`)
        const cli = await withCpuProfiles(o.profile && join(o.profile, s.name), () => upswarmUpdate(r, t.wc))
        const inproc = await inProcessUpdate(r, t.wcInProcess)
        const viaDaemon = await daemonUpdate(r, t.wcDaemon, daemonBytes)
        const ra = await timed('rsync', ['-a', '--delete', '--stats', daemon.url(t.module), `${t.mirror}/`])
        const rz = await timed('rsync', ['-az', '--delete', '--stats', daemon.url(t.module), `${t.mirrorZ}/`])
        const m: Measured = { name: s.name, change, cli, inproc, daemon: viaDaemon, rsyncA: parseRsyncStats(ra.stdout, ra.ms), rsyncZ: parseRsyncStats(rz.stdout, rz.ms) }
        rounds.push(m)
        ;(perRound[s.name] ??= []).push({ how: cli.how, payload: cli.payload, cliMs: Math.round(cli.ms), daemonMs: Math.round(viaDaemon.ms), rsyncMs: Math.round(m.rsyncA.ms) })
        const wire = (x: RsyncStats): string => mib(x.received + x.sent)
        log(`${s.name}${roundsEach > 1 ? ` (round ${round + 1} of ${roundsEach})` : ''}: upswarm ${(cli.ms / 1000).toFixed(2)} s ${mib(cli.wire)} MiB (${cli.how}); with its daemon ${(viaDaemon.ms / 1000).toFixed(2)} s ${mib(viaDaemon.wire)} MiB; rsync -a ${(m.rsyncA.ms / 1000).toFixed(2)} s ${wire(m.rsyncA)} MiB; rsync -az ${(m.rsyncZ.ms / 1000).toFixed(2)} s ${wire(m.rsyncZ)} MiB; whole changed files ${mib(change.wholeBytes)} MiB`)
      }
      measured.push(medianMeasured(rounds))
    }
    const groups = measured.map((m) => m.name)
    const svg = barChart([
      { title: 'Wall time of the update', yLabel: 'seconds', groups, series: [
        { name: 'upswarm update (CLI)', values: measured.map((m) => round(m.cli.ms / 1000)) },
        { name: 'updater.update() in-process', values: measured.map((m) => round(m.inproc.ms / 1000)) },
        { name: 'upswarm update (CLI), daemon running', values: measured.map((m) => round(m.daemon.ms / 1000)) },
        { name: 'rsync -a (daemon, loopback)', values: measured.map((m) => round(m.rsyncA.ms / 1000)) },
        { name: 'rsync -az (daemon, loopback)', values: measured.map((m) => round(m.rsyncZ.ms / 1000)) },
      ] },
      { title: 'Bytes on the wire', yLabel: 'MiB', groups, series: [
        { name: 'upswarm update (NATS, to the client)', values: measured.map((m) => round(m.cli.wire / MiB)) },
        { name: 'rsync -a (sent + received)', values: measured.map((m) => round((m.rsyncA.received + m.rsyncA.sent) / MiB)) },
        { name: 'rsync -az (sent + received)', values: measured.map((m) => round((m.rsyncZ.received + m.rsyncZ.sent) / MiB)) },
        { name: 'whole changed files', values: measured.map((m) => round(m.change.wholeBytes / MiB)) },
      ] },
    ], `${gen.files} files, ${(gen.bytes / MiB).toFixed(0)} MiB, ${(o.changeFraction * 100).toFixed(0)}% changed${release ? `; release ${release.label}` : ''}; upswarm CLI start-up alone ${(cliStartup / 1000).toFixed(2)} s; 127.0.0.1`)
    if (o.profile) await writeProfileReport('incremental', o.profile, scenarios.map((s) => ({ dir: join(o.profile!, s.name), merge: false })), o.resultsDir)
    return await rec.finish({
      name: 'incremental',
      title: `Incremental update: ${gen.files} files, ${(gen.bytes / MiB).toFixed(0)} MiB, ${(o.changeFraction * 100).toFixed(0)}% of files changed${release ? `; release pair ${release.label}` : ''}`,
      parameters: {
        ...o, fileCount: gen.files, bytes: gen.bytes, cliStartupMs: round(cliStartup), initMs: round(initMs),
        release: release ? { ...release, initMs: round(release.initMs) } : false,
        roundFigures: perRound,
        // The unrounded figures the rows and goals come from (bytes; ms rounded).
        measured: measured.map((m) => ({
          ...m,
          cli: { ...m.cli, ms: round(m.cli.ms) },
          inproc: { ...m.inproc, ms: round(m.inproc.ms) },
          daemon: { ...m.daemon, ms: round(m.daemon.ms) },
          rsyncA: { ...m.rsyncA, ms: round(m.rsyncA.ms) },
          rsyncZ: { ...m.rsyncZ, ms: round(m.rsyncZ.ms) },
        })),
      },
      columns: ['change', 'tool', 'files changed', 'changed MiB', 'payload MiB', 'wire MiB', 'wall s'],
      rows: measured.flatMap(rowsOf),
      goals: measured.flatMap(goalsOf),
      notes: [
        'payload: file bytes the client received (upswarm bytesFromServers; rsync "Literal data", before -z compresses it). wire: upswarm = bytes the NATS nodes sent to the update\'s connection (connz); rsync = total bytes sent + received.',
        'rsync -a and rsync -az each pull into their own `cp -a` copy of the same revision, one after the other (-a first), from the same rsync daemon.',
        'whole changed files: the sum of the sizes of the files that differ (added ones included), i.e. what an updater without deltas moves; for edited, the whole files touched.',
        ...(release ? [`release: ${release.label}, ${release.files} files, ${(release.bytes / MiB).toFixed(1)} MiB; A published as a revision of the same product and brought to fresh working copies (init ${(release.initMs / 1000).toFixed(1)} s) and fresh rsync copies, then B; ${o.release && o.release.kind === 'npm' ? 'fetched once by npm pack into the bench cache and unpacked with tar' : 'two local trees'}. Changed files are written with a new mtime, unchanged ones keep theirs, as a build would leave them.`] : ['release: left out (no release pair: the tiny size and --release-pair none never use the npm registry).']),
        `in-process: the same update of a second working copy from the benchmark process (no node start-up, no module loading); \`upswarm --help\` alone takes ${(cliStartup / 1000).toFixed(2)} s here (median of 3).`,
        'wire for in-process: bytes the benchmark\'s NATS connection received during the update.',
        'daemon running: a third working copy with `upswarm daemon DIR` running beside it (no --auto, no peers: it fetches from the servers alone); `upswarm update DIR` hands it the run over the copy\'s control socket and prints its result. wire: bytes the NATS nodes sent the daemons\' connections from before the publish to the end of the command (a daemon fetches a release\'s tree nodes when it hears of it; the bytes count where they fall).',
      ],
    }, svg)
  } finally {
    for (const d of daemons) await d.stop()
    await rsyncd?.stop()
    await repo?.stop()
    if (!o.keep) await rm(work, { recursive: true, force: true })
  }
}
