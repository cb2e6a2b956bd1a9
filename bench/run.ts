// `npm run bench [-- NAME ...] [--size tiny|default|large] [options]`: runs the benchmarks of
// issue 7 one after another (default: all), each printing its table and writing
// bench/results/<name>.json (+ .svg); then bench/results/summary.md gathers the latest tables.
// See docs/benchmarks.md.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { INCREMENTAL_DEFAULTS, runIncrementalBench, type IncrementalBenchOptions } from './incremental.ts'
import { markdownTable, RESULTS_DIR, type BenchResult } from './lib/report.ts'
import { quietDisk } from './lib/cluster.ts'
import { parseReleasePair } from './lib/release-pair.ts'
import { runStatusBench, STATUS_DEFAULTS, type StatusBenchOptions } from './status.ts'
import { runSwarmBench, SWARM_DEFAULTS, type SwarmBenchOptions } from './swarm.ts'
import { runThroughputBench, THROUGHPUT_DEFAULTS, type ThroughputBenchOptions } from './throughput.ts'
import { runTrackerBench } from './tracker.ts'
import { runStartupBench, STARTUP_DEFAULTS, type StartupBenchOptions } from './startup.ts'
import { METADATA_DEFAULTS, runMetadataBench, type MetadataBenchOptions } from './metadata.ts'
import { DAEMON_DEFAULTS, runDaemonBench, type DaemonBenchOptions } from './daemon.ts'
import { PUBLISH2_DEFAULTS, runPublish2Bench, type Publish2BenchOptions } from './publish2.ts'
import { INSTALL_DEFAULTS, runInstallBench, type InstallBenchOptions } from './install.ts'
import { META_DEFAULTS, runMetaBench, type MetaBenchOptions } from './meta.ts'
import { runSitesBench, SITES_DEFAULTS, type SitesBenchOptions } from './sites.ts'
import { runWatchersBench, WATCHERS_DEFAULTS, type WatchersBenchOptions } from './watchers.ts'

export const BENCHES = ['swarm', 'incremental', 'status', 'throughput', 'tracker', 'startup', 'metadata', 'daemon', 'publish2', 'install', 'meta', 'sites', 'watchers'] as const
export type BenchName = (typeof BENCHES)[number]

interface Plan {
  swarm: SwarmBenchOptions
  incremental: IncrementalBenchOptions
  status: StatusBenchOptions
  throughput: ThroughputBenchOptions
  tracker: { peers: number; rounds: number; profile?: string; resultsDir?: string }
  startup: StartupBenchOptions
  metadata: MetadataBenchOptions
  daemon: DaemonBenchOptions
  publish2: Publish2BenchOptions
  install: InstallBenchOptions
  meta: MetaBenchOptions
  sites: SitesBenchOptions
  watchers: WatchersBenchOptions
}

/** Sizes: `default` fits the whole run in 20 minutes on a 2-core machine; `tiny` is the smoke test's. */
export const PRESETS: Record<'tiny' | 'default' | 'large', Plan> = {
  tiny: {
    swarm: { ...SWARM_DEFAULTS, clients: [2], mib: 2, files: 12 },
    // No release pair: the tiny size (and npm test) never needs the npm registry.
    incremental: { ...INCREMENTAL_DEFAULTS, files: 100, mib: 2, release: false, rounds: 1 },
    status: { ...STATUS_DEFAULTS, files: 2_000, warmRuns: 1 },
    throughput: { ...THROUGHPUT_DEFAULTS, mib: 8, fileMiB: 4, ks: [1, 4], rounds: 1 },
    tracker: { peers: 1_000, rounds: 1 },
    startup: { ...STARTUP_DEFAULTS, runs: 5, warmup: 1 },
    metadata: { sizes: [10_000] },
    daemon: { ...DAEMON_DEFAULTS, settle: 2, idleSeconds: 5, updateMiB: 8, fileMiB: 4 },
    publish2: { files: 500 },
    install: { files: 200 },
    meta: { sizes: [2_000] },
    sites: { ...SITES_DEFAULTS, clients: 2, mib: 2 },
    watchers: { ...WATCHERS_DEFAULTS, watchers: 20, publishes: 2 },
  },
  default: {
    swarm: SWARM_DEFAULTS,
    incremental: INCREMENTAL_DEFAULTS,
    status: STATUS_DEFAULTS,
    throughput: THROUGHPUT_DEFAULTS,
    tracker: { peers: 10_000, rounds: 10 },
    startup: STARTUP_DEFAULTS,
    metadata: METADATA_DEFAULTS,
    daemon: DAEMON_DEFAULTS,
    publish2: PUBLISH2_DEFAULTS,
    install: INSTALL_DEFAULTS,
    meta: META_DEFAULTS,
    sites: SITES_DEFAULTS,
    watchers: WATCHERS_DEFAULTS,
  },
  large: {
    swarm: { ...SWARM_DEFAULTS, clients: [4, 8, 16], mib: 64, files: 240 },
    incremental: { ...INCREMENTAL_DEFAULTS, files: 4_000, mib: 128 },
    status: STATUS_DEFAULTS,
    throughput: { ...THROUGHPUT_DEFAULTS, mib: 1024, fileMiB: 64 },
    tracker: { peers: 10_000, rounds: 20 },
    startup: { ...STARTUP_DEFAULTS, runs: 100 },
    metadata: METADATA_DEFAULTS,
    daemon: { ...DAEMON_DEFAULTS, updateMiB: 1024, fileMiB: 256 },
    publish2: PUBLISH2_DEFAULTS,
    install: INSTALL_DEFAULTS,
    meta: META_DEFAULTS,
    sites: { ...SITES_DEFAULTS, mib: 64 },
    watchers: { ...WATCHERS_DEFAULTS, watchers: 4_000 },
  },
}

const USAGE = `usage: npm run bench [-- NAME ...] [options]
names: ${BENCHES.join(', ')} (default: all)
  --size tiny|default|large   preset sizes (default: default; large: N = 4,8,16, 64 MiB swarm, 1 GiB
                              throughput; well over 20 minutes)
  --clients 4,8,16            swarm: client counts          --swarm-mib 32      swarm: release size F
                                                            --swarm-files 120   swarm: files in it
  --server-rate 2             swarm: MiB/s per server (3)   --client-rate 2     swarm: MiB/s per client
  --skip-http                 swarm: no plain-HTTP baseline
  --swarm-formats 1,2         swarm: release formats of the product (default 1; with 2 the daemons plan in format 2)
  --daemon-formats 1          daemon: release formats of the product (default 1,2, as the demo; 1: the release feed loaded)
  --daemon-flags "--max-semi-space-size=1"   daemon: the daemon's node flags instead of the default ones (to compare)
  --inspect                   swarm: live inspection on in every process; counts its messages (issue 12)
  --incremental-files 1000    --incremental-mib 32    --incremental-rounds 3 (revisions timed per change, medians)
  --release-pair typescript@5.6.2:5.6.3   incremental: the release pair, NAME@FROM:TO from the npm registry
                              (cached in $XDG_CACHE_HOME or ~/.cache/upswarm-bench), or none
  --status-files 100000       --warm-runs 3                 --drop-caches (root; whole machine)
  --status-memory-only        status: only the peak RSS of a full and an indexed status (e.g. with --status-files 1000000)
  --throughput-mib 256        --file-mib 32                 --ks 1,4,8
  --tracker-peers 10000       --tracker-rounds 10
  --startup-runs 40           startup: timed runs of each command (hyperfine when installed)
  --metadata-files 100000,1000000   metadata: tree sizes (files) of the 1% update
  --idle-seconds 60           daemon: the idle window   --update-mib 128    daemon: the release the peak RSS is taken over
  --publish2-files 100000     publish2: files of the format-2-only publish
  --install-files 20000       install: small files of the first install (init against curl from nginx), then status and update of that copy
  --meta-files 10000,100000   meta: tree sizes of the metadata-on-the-wire bench (format 1 vs 2)
  --sites-clients 5           --sites-mib 16      --wan-rate 40mbit   sites (root: network namespaces)
  --watchers 2000             --watcher-publishes 5   watchers: release watchers (TLS connections) and releases
  --json                      print each result as JSON on stdout (one line per benchmark)
  --keep                      keep the temporary directories
  --settle-load 1.0           before each benchmark after the first, wait (at most 3 minutes) until the
                              1-minute load average is below this and the disk is quiet, so each starts
                              on a quiet machine (0: do not wait); the load it started at is in its JSON
  --results DIR               write results there instead of bench/results
  --profile DIR               write CPU profiles of the node processes the benches start (swarm:
                              cluster and daemons; incremental: upswarm update; status: upswarm
                              status; throughput: server, proxy and the fetching process;
                              tracker: both trackers; daemon: the idle
                              daemon over its idle window) under DIR, summarised in
                              bench/results/<name>-profile.txt`

const list = (s: string): number[] => s.split(',').map(Number).filter((n) => Number.isFinite(n) && n > 0)

export function plan(argv: string[]): { names: BenchName[]; plan: Plan; resultsDir: string; json: boolean; settleLoad: number } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      size: { type: 'string', default: 'default' },
      clients: { type: 'string' },
      'swarm-mib': { type: 'string' },
      'swarm-files': { type: 'string' },
      'swarm-formats': { type: 'string' },
      'daemon-formats': { type: 'string' },
      'daemon-flags': { type: 'string' },
      'server-rate': { type: 'string' },
      'client-rate': { type: 'string' },
      'skip-http': { type: 'boolean' },
      inspect: { type: 'boolean' },
      'incremental-files': { type: 'string' },
      'incremental-mib': { type: 'string' },
      'incremental-rounds': { type: 'string' },
      'release-pair': { type: 'string' },
      'status-files': { type: 'string' },
      'warm-runs': { type: 'string' },
      'drop-caches': { type: 'boolean' },
      'status-memory-only': { type: 'boolean' },
      'throughput-mib': { type: 'string' },
      'file-mib': { type: 'string' },
      ks: { type: 'string' },
      'tracker-peers': { type: 'string' },
      'tracker-rounds': { type: 'string' },
      'startup-runs': { type: 'string' },
      'metadata-files': { type: 'string' },
      'idle-seconds': { type: 'string' },
      'update-mib': { type: 'string' },
      'publish2-files': { type: 'string' },
      'install-files': { type: 'string' },
      'meta-files': { type: 'string' },
      'sites-clients': { type: 'string' },
      'sites-mib': { type: 'string' },
      'wan-rate': { type: 'string' },
      watchers: { type: 'string' },
      'watcher-publishes': { type: 'string' },
      json: { type: 'boolean' },
      keep: { type: 'boolean' },
      'settle-load': { type: 'string', default: '1.0' },
      profile: { type: 'string' },
      results: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const preset = PRESETS[values.size as keyof typeof PRESETS]
  if (!preset) throw new Error(`--size must be tiny, default or large (got ${values.size})\n${USAGE}`)
  const bad = positionals.filter((n) => !(BENCHES as readonly string[]).includes(n))
  if (bad.length) throw new Error(`unknown benchmark ${bad.join(', ')}\n${USAGE}`)
  const keep = !!values.keep
  const p: Plan = structuredClone(preset)
  if (values.clients) p.swarm.clients = list(values.clients)
  if (values['swarm-mib']) p.swarm.mib = Number(values['swarm-mib'])
  if (values['swarm-files']) p.swarm.files = Number(values['swarm-files'])
  if (values['swarm-formats']) p.swarm.formats = list(values['swarm-formats'])
  if (values['daemon-formats']) p.daemon.formats = list(values['daemon-formats'])
  if (values['daemon-flags'] !== undefined) p.daemon.nodeFlags = values['daemon-flags'].split(' ').filter(Boolean)
  if (values['server-rate']) p.swarm.serverMiBps = Number(values['server-rate'])
  if (values['client-rate']) p.swarm.clientMiBps = Number(values['client-rate'])
  if (values['skip-http']) p.swarm.skipHttp = true
  if (values.inspect) p.swarm.inspect = true
  if (values['incremental-files']) p.incremental.files = Number(values['incremental-files'])
  if (values['incremental-mib']) p.incremental.mib = Number(values['incremental-mib'])
  if (values['incremental-rounds']) p.incremental.rounds = Math.max(1, Number(values['incremental-rounds']))
  if (values['release-pair']) p.incremental.release = values['release-pair'] === 'none' ? false : parseReleasePair(values['release-pair'])
  if (values['status-files']) p.status.files = Number(values['status-files'])
  if (values['warm-runs']) p.status.warmRuns = Number(values['warm-runs'])
  if (values['drop-caches']) p.status.dropCaches = true
  if (values['status-memory-only']) p.status.memoryOnly = true
  if (values['throughput-mib']) p.throughput.mib = Number(values['throughput-mib'])
  if (values['file-mib']) p.throughput.fileMiB = Number(values['file-mib'])
  if (values.ks) p.throughput.ks = list(values.ks)
  if (values['tracker-peers']) p.tracker.peers = Number(values['tracker-peers'])
  if (values['tracker-rounds']) p.tracker.rounds = Number(values['tracker-rounds'])
  if (values['startup-runs']) p.startup.runs = Number(values['startup-runs'])
  if (values['metadata-files']) p.metadata.sizes = list(values['metadata-files'])
  if (values['idle-seconds']) p.daemon.idleSeconds = Number(values['idle-seconds'])
  if (values['update-mib']) p.daemon.updateMiB = Number(values['update-mib'])
  if (values['publish2-files']) p.publish2.files = Number(values['publish2-files'])
  if (values['install-files']) p.install.files = Number(values['install-files'])
  if (values['meta-files']) p.meta.sizes = list(values['meta-files'])
  if (values['sites-clients']) p.sites.clients = Number(values['sites-clients'])
  if (values['sites-mib']) p.sites.mib = Number(values['sites-mib'])
  if (values['wan-rate']) p.sites.wanRate = values['wan-rate']
  if (values.watchers) p.watchers.watchers = Number(values.watchers)
  if (values['watcher-publishes']) p.watchers.publishes = Number(values['watcher-publishes'])
  for (const o of [p.swarm, p.incremental, p.status, p.throughput, p.startup, p.metadata, p.daemon, p.publish2, p.install, p.meta, p.sites, p.watchers]) {
    o.keep = keep
    if (values.results) o.resultsDir = resolve(values.results)
  }
  if (values.results) p.tracker.resultsDir = resolve(values.results)
  if (values.profile) {
    p.swarm.profile = resolve(values.profile, 'swarm')
    p.incremental.profile = resolve(values.profile, 'incremental')
    p.status.profile = resolve(values.profile, 'status')
    p.throughput.profile = resolve(values.profile, 'throughput')
    p.tracker.profile = resolve(values.profile, 'tracker')
    p.daemon.profile = resolve(values.profile, 'daemon')
    p.install.profile = resolve(values.profile, 'install')
  }
  const settleLoad = Number(values['settle-load'])
  return { names: positionals.length ? (positionals as BenchName[]) : [...BENCHES], plan: p, resultsDir: values.results ? resolve(values.results) : RESULTS_DIR, json: !!values.json, settleLoad: Number.isFinite(settleLoad) ? settleLoad : 1 }
}

export async function runBench(name: BenchName, p: Plan): Promise<BenchResult | undefined> {
  switch (name) {
    case 'swarm': return runSwarmBench(p.swarm)
    case 'incremental': return runIncrementalBench(p.incremental)
    case 'status': return runStatusBench(p.status)
    case 'throughput': return runThroughputBench(p.throughput)
    case 'tracker': return runTrackerBench([
      '--peers', String(p.tracker.peers), '--rounds', String(p.tracker.rounds),
      ...(p.tracker.profile ? ['--profile', p.tracker.profile] : []),
      ...(p.tracker.resultsDir ? ['--results', p.tracker.resultsDir] : []),
    ])
    case 'startup': return runStartupBench(p.startup)
    case 'metadata': return runMetadataBench(p.metadata)
    case 'daemon': return runDaemonBench(p.daemon)
    case 'publish2': return runPublish2Bench(p.publish2)
    case 'install': return runInstallBench(p.install)
    case 'meta': return runMetaBench(p.meta)
    case 'watchers': return runWatchersBench(p.watchers)
    case 'sites': return runSitesBench(p.sites)
  }
}

/** bench/results/summary.md: the latest result of every benchmark as Markdown tables. */
export async function writeSummary(dir = RESULTS_DIR): Promise<string> {
  const parts = ['# Latest benchmark results', '', 'Generated by `npm run bench` from bench/results/*.json. See docs/benchmarks.md.', '']
  const all = await readdir(dir).catch(() => [] as string[])
  const files = all.filter((f) => f.endsWith('.json'))
  for (const name of BENCHES) {
    const file = files.find((f) => f === `${name}.json`)
    if (!file) continue
    const r = JSON.parse(await readFile(join(dir, file), 'utf8')) as BenchResult
    parts.push(`## ${r.title}`, '')
    parts.push(`${r.timestamp}, ${r.seconds.toFixed(0)} s; ${r.machine.cores} × ${r.machine.cpuModel}, ${(r.machine.memoryMiB / 1024).toFixed(0)} GiB, load average ${r.machine.loadAverageAtStart} at start; node ${r.versions.node}, nats-server ${r.versions['nats-server']?.split(' ')[0]}, upswarm ${r.versions.upswarm}`, '')
    parts.push(markdownTable(r.columns, r.rows), '')
    for (const g of r.goals) parts.push(`- goal **${g.met ? 'met' : 'missed'}** — ${g.goal}: ${g.detail}`)
    for (const n of r.notes) parts.push(`- ${n}`)
    if (all.includes(`${name}.svg`)) parts.push('', `![${name}](${name}.svg)`)
    parts.push('')
  }
  const text = parts.join('\n')
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'summary.md'), text)
  return text
}

/** Waits until the 1-minute load average is below `maxLoad` (at most SETTLE_MAX_MS), then for a quiet disk. */
async function settle(maxLoad: number): Promise<{ ms: number; load: number }> {
  const t0 = performance.now()
  while (loadavg()[0]! >= maxLoad && performance.now() - t0 < SETTLE_MAX_MS) await new Promise((r) => setTimeout(r, 2_000))
  await quietDisk()
  return { ms: performance.now() - t0, load: loadavg()[0]! }
}
const SETTLE_MAX_MS = 180_000

async function main(): Promise<void> {
  const { names, plan: p, resultsDir, json, settleLoad } = plan(process.argv.slice(2))
  const t0 = performance.now()
  const failed: string[] = []
  for (const [i, name] of names.entries()) {
    // Issues 13 item 6 and 14 item 6: each benchmark starts on a quiet machine, not in the wake of the one before.
    if (i > 0 && settleLoad > 0) {
      const s = await settle(settleLoad)
      process.stderr.write(`[bench] ${name}: waited ${(s.ms / 1000).toFixed(0)} s for a quiet machine; load average ${s.load.toFixed(2)}${s.load >= settleLoad ? ` (still ≥ ${settleLoad} after the 3-minute limit)` : ''}\n`)
    }
    try {
      const result = await runBench(name, p)
      if (json && result) process.stdout.write(`${JSON.stringify(result)}\n`)
    } catch (err) {
      failed.push(name)
      process.stderr.write(`bench ${name} failed: ${(err as Error).stack ?? err}\n`)
    }
  }
  await writeSummary(resultsDir)
  process.stdout.write(`\n${names.length - failed.length}/${names.length} benchmarks in ${((performance.now() - t0) / 1000 / 60).toFixed(1)} min; results in ${resultsDir} (summary.md)${failed.length ? `; FAILED: ${failed.join(', ')}` : ''}\n`)
  process.exitCode = failed.length ? 1 : 0
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  await main()
  // Lingering sockets of NATS clients or the DHT must not keep the process up.
  process.exit(process.exitCode ?? 0)
}
