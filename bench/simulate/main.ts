// `npm run simulate [-- --clients 100,1000,10000] [--seed 1] [--churn 0.1] ...`: the swarm
// simulator (issue 14 item 3; bench/simulate/swarm-sim.ts), one run per N, each printed as a
// row; writes bench/results/simulate.json (or --results DIR). docs/benchmarks.md, "Swarm
// simulator", explains the model and the figures.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { formatTable, machine, RESULTS_DIR, round, type Cell, type Goal } from '../lib/report.ts'
import { MiB, SIM_DEFAULTS, simulate, type SimOptions, type SimResult } from './swarm-sim.ts'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '100,1000,10000' },
    seed: { type: 'string', default: String(SIM_DEFAULTS.seed) },
    mib: { type: 'string', default: String(SIM_DEFAULTS.fileBytes / MiB) },
    'piece-kib': { type: 'string', default: '0' },
    churn: { type: 'string', default: String(SIM_DEFAULTS.churn) },
    nat: { type: 'string', default: String(SIM_DEFAULTS.nat) },
    bad: { type: 'string', default: String(SIM_DEFAULTS.bad) },
    servers: { type: 'string', default: String(SIM_DEFAULTS.servers) },
    'server-rate': { type: 'string', default: String(SIM_DEFAULTS.serverUp / MiB) },
    'plan-gap': { type: 'string', default: String(SIM_DEFAULTS.planGapMs) },
    'max-virtual-s': { type: 'string', default: String(SIM_DEFAULTS.maxVirtualMs / 1000) },
    sites: { type: 'string', default: '1' },
    'wan-latency': { type: 'string', default: String(SIM_DEFAULTS.wanLatencyMs) },
    locality: { type: 'string', default: 'both' },
    results: { type: 'string', default: RESULTS_DIR },
    'no-agree': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})

if (values.help) {
  process.stdout.write(`npm run simulate -- [options]
  --clients LIST     client counts, one run each (default 100,1000,10000)
  --seed N           seed of the run's random choices (default 1)
  --mib F            release size in MiB (default 32)
  --piece-kib K      piece size in KiB (default 0: the daemon's run of a format-2 file's chunks for
                     the swarm's size, 1024 or 256 in a large swarm: piece-scheduler.ts runLength)
  --churn SHARE      clients that leave early, and as many that join late (default 0.1)
  --nat SHARE        clients that cannot be dialled (default 0.2)
  --bad SHARE        clients that send garbage (default 0.01)
  --servers N        repository servers (default 3), --server-rate MiB/s each (default 2)
  --plan-gap MS      a client's scheduler runs at most once per MS of virtual time (default 50)
  --max-virtual-s S  stop a run after S seconds of virtual time, reporting it unfinished (default 3600)
  --sites S          clients spread over S sites (default 1); with S > 1 each N runs twice, without and
                     with locality (issue 14 item 4), reporting cross-site bytes / (S × F)
  --wan-latency MS   extra one-way latency between sites (default 20)
  --locality WHICH   with S > 1, the runs to make: both (default), on or off
  --results DIR      where simulate.json goes (default bench/results)
  --no-agree         skip the agreement runs against the real swarm bench (bench/results/swarm.json)
`)
  process.exit(0)
}

/** A number option, checked: a clear error naming the option rather than a NaN run. */
function num(name: string, raw: string, ok: (v: number) => boolean, what: string): number {
  const v = Number(raw)
  if (!Number.isFinite(v) || !ok(v)) {
    process.stderr.write(`simulate: --${name} must be ${what}, got '${raw}'\n`)
    process.exit(2)
  }
  return v
}

const ns = values.clients.split(',').map((s) => num('clients', s, (v) => Number.isInteger(v) && v >= 2, 'a comma-separated list of integers ≥ 2'))
const base: Partial<SimOptions> = {
  seed: num('seed', values.seed, Number.isInteger, 'an integer'),
  fileBytes: Math.round(num('mib', values.mib, (v) => v > 0, 'a size in MiB > 0') * MiB),
  pieceSize: 1024 * num('piece-kib', values['piece-kib'], (v) => Number.isInteger(v) && (v === 0 || (v >= 4 && v <= 65_536)), '0 or an integer number of KiB in [4, 65536]'),
  churn: num('churn', values.churn, (v) => v >= 0 && v < 0.5, 'a share in [0, 0.5)'),
  nat: num('nat', values.nat, (v) => v >= 0 && v < 1, 'a share in [0, 1)'),
  bad: num('bad', values.bad, (v) => v >= 0 && v < 0.5, 'a share in [0, 0.5)'),
  servers: num('servers', values.servers, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
  serverUp: num('server-rate', values['server-rate'], (v) => v > 0, 'MiB/s > 0') * MiB,
  planGapMs: num('plan-gap', values['plan-gap'], (v) => v >= 0, 'ms ≥ 0'),
  maxVirtualMs: 1000 * num('max-virtual-s', values['max-virtual-s'], (v) => v > 0, 'seconds > 0'),
  sites: num('sites', values.sites, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'),
  wanLatencyMs: num('wan-latency', values['wan-latency'], (v) => v >= 0, 'ms ≥ 0'),
}
const sites = base.sites ?? 1

const timestamp = new Date().toISOString()
const m = machine()
const s = (ms: number): number => round(ms / 1000, 3)
const runs: Array<Omit<SimResult, 'finishMs'>> = []
const rows: Record<string, Cell>[] = []
const goals: Goal[] = []
const localities = ({ both: [false, true], on: [true], off: [false] } as Record<string, boolean[]>)[values.locality]
if (!localities) {
  process.stderr.write(`simulate: --locality must be both, on or off, got '${values.locality}'\n`)
  process.exit(2)
}
for (const n of ns) for (const locality of sites > 1 ? localities : [true]) {
  process.stderr.write(`[simulate] N = ${n}${sites > 1 ? `, ${sites} sites, locality ${locality ? 'on' : 'off'}` : ''} …\n`)
  const wall0 = performance.now()
  const r = simulate({ ...base, n, locality }, {
    everyMs: 10_000,
    report: (p) => process.stderr.write(`[simulate] N = ${n}: ${(p.virtualMs / 1000).toFixed(0)} s virtual, ${p.finished} done, ${p.downloading} downloading, origin ${(p.originBytes / (base.fileBytes ?? 1)).toFixed(1)} × F sent + ${(p.originQueuedBytes / (base.fileBytes ?? 1)).toFixed(1)} × F queued, ${p.events} events, ${((performance.now() - wall0) / 1000).toFixed(0)} s wall\n`),
  })
  const F = (base.fileBytes ?? SIM_DEFAULTS.fileBytes)
  const { finishMs: _perClient, ...summary } = r
  runs.push(summary)
  rows.push({
    N: n,
    ...(sites > 1 ? { sites, locality: locality ? 'on' : 'off', 'cross-site/(sites·F)': round(r.crossSiteBytes / (sites * F), 3), 'far withdrawn': r.farWithdrawn } : {}),
    'piece KiB': r.pieceSize / 1024,
    'bound s': s(r.boundMs),
    'p50 s': s(r.p50Ms),
    'p99 s': s(r.p99Ms),
    'max s': s(r.maxMs),
    'p99/bound': round(r.p99Ms / r.boundMs, 3),
    'all done s': s(r.allDoneMs),
    'origin/F': round(r.originBytes / F, 3),
    'dup/F': round(r.duplicateBytes / F, 3),
    'timeouts': r.timeouts,
    'bad recv': r.badPiecesReceived,
    'bad accepted': r.badPiecesAccepted,
    'finished': `${r.finished}/${r.finishers}`,
    'events': r.events,
    'events/s': Math.round(r.eventsPerSecond),
    'wall s': s(r.wallMs),
  })
  if (sites > 1 && locality) {
    goals.push({ goal: `N=${n}, ${sites} sites: the WAN carries each piece about once per site (cross-site bytes ≤ 2 × sites × F)`, met: r.crossSiteBytes <= 2 * sites * F, detail: `${(r.crossSiteBytes / (sites * F)).toFixed(2)} × sites × F` })
  }
  if (n >= 10_000 && locality) {
    goals.push({ goal: `N=${n}, churn ${base.churn}: p99 ≤ 1.5 × the Kumar–Ross bound`, met: r.p99Ms <= 1.5 * r.boundMs, detail: `p99 ${s(r.p99Ms)} s vs bound ${s(r.boundMs)} s (${(r.p99Ms / r.boundMs).toFixed(2)}×)` })
    goals.push({ goal: `N=${n}, churn ${base.churn}: origin ≤ 1.5 × F`, met: r.originBytes <= 1.5 * F, detail: `${(r.originBytes / F).toFixed(2)} × F (+ ${(r.originQueuedBytes / F).toFixed(2)} × F still queued at the servers when the last client was done)` })
  }
  const tag = sites > 1 ? `, locality ${locality ? 'on' : 'off'}` : ''
  goals.push({ goal: `N=${n}${tag}: no bad piece accepted`, met: r.badPiecesAccepted === 0, detail: `${r.badPiecesReceived} bad pieces received, ${r.badPiecesAccepted} accepted, ${r.bannedLinks} connections banned` })
  goals.push({ goal: `N=${n}${tag}: every client that stayed finished`, met: r.finished === r.finishers && !r.truncated, detail: `${r.finished} of ${r.finishers}${r.truncated ? ' (run stopped at its virtual time limit)' : ''}` })
}

/**
 * Agreement with the real swarm (issue 14 item 3): the same N, F and caps as the last
 * `npm run bench -- swarm` (bench/results/swarm.json), on 127.0.0.1 (no churn, NAT or bad peers,
 * sub-millisecond latency, downloads not capped), simulated and compared run by run.
 */
async function agreement(): Promise<{ rows: Record<string, Cell>[]; goals: Goal[]; source: string } | undefined> {
  const file = join(RESULTS_DIR, 'swarm.json')
  let bench: { timestamp: string; parameters: { mib: number; bytes: number; servers: number; serverMiBps: number; clientMiBps: number; runs: Array<{ n: number; seconds: number; originBytes: number; perClientMs: number[] }> } }
  try {
    bench = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    process.stderr.write(`[simulate] no agreement runs: cannot read ${file} (${(err as Error).message}); run npm run bench -- swarm first\n`)
    return undefined
  }
  const p = bench.parameters
  const out: Record<string, Cell>[] = []
  const agreeGoals: Goal[] = []
  for (const run of p.runs) {
    process.stderr.write(`[simulate] agreement with the swarm bench, N = ${run.n} …\n`)
    const r = simulate({
      n: run.n, seed: base.seed ?? 1, fileBytes: p.bytes, servers: p.servers, serverUp: p.serverMiBps * MiB,
      clientUp: [p.clientMiBps * MiB], clientDown: [1024 * MiB], latencyMs: [0.1, 0.5], serverLatencyMs: 0.5,
      churn: 0, nat: 0, bad: 0, startSpreadMs: 500,
    })
    const ratio = r.allDoneMs / 1000 / run.seconds
    out.push({
      N: run.n, 'bench s': round(run.seconds, 3), 'sim s': s(r.allDoneMs), 'sim/bench': round(ratio, 3),
      'bench origin/F': round(run.originBytes / p.bytes, 3), 'sim origin/F': round(r.originBytes / p.bytes, 3),
      'bound s': s(r.boundMs),
    })
    if (run.n === 8) agreeGoals.push({ goal: 'N=8: simulated time within 20% of the real swarm bench', met: Math.abs(ratio - 1) <= 0.2, detail: `${s(r.allDoneMs)} s simulated vs ${run.seconds.toFixed(1)} s measured (${ratio.toFixed(2)}×)` })
  }
  return { rows: out, goals: agreeGoals, source: `bench/results/swarm.json of ${bench.timestamp}` }
}
const agreed = values['no-agree'] ? undefined : await agreement()
if (agreed) goals.push(...agreed.goals)

const columns = Object.keys(rows[0] ?? { N: 0 })
const notes = [
  'Virtual time; the decisions are the daemon\'s own (actors/share-daemon/piece-scheduler.ts), the links are modelled (bench/simulate/swarm-sim.ts).',
  'p50/p99/max: per client, from its download start to its last piece verified, over the clients that stayed (late joiners included, leavers and bad peers not).',
  'bound: Kumar & Ross, max(F/u_s, F/d_min, N·F/(u_s + Σu_i)) over the honest clients; all done: first start → last client done.',
  ...(sites > 1 ? [`sites: clients round robin over ${sites} sites, ${base.wanLatencyMs} ms more one-way latency between sites; locality on: each client tells its site, the tracker hands out peers of its site first, and the scheduler takes a piece from the site when a peer of it holds it, else brings it in through about one client of the site (the stripe owner among its connected site peers, or in a site larger than its view the client whose score is in the top 1/size: actors/share-daemon/piece-scheduler.ts); cross-site: bytes clients uploaded to clients of another site, over sites × F.`] : []),
  'origin/F: what the servers had uploaded when the last client was done; dup/F: bytes uploaded that the receiver did not keep (already verified, aborted, departed).',
]
const result = {
  name: 'simulate',
  title: `Swarm simulator: F = ${(base.fileBytes ?? 0) / MiB} MiB${base.pieceSize ? ` in ${base.pieceSize / 1024} KiB pieces` : ''}, ${base.servers} servers × ${(base.serverUp ?? 0) / MiB} MiB/s, churn ${base.churn}, NAT ${base.nat}, bad ${base.bad}`,
  timestamp,
  machine: m,
  parameters: { ...SIM_DEFAULTS, ...base, clients: ns },
  columns,
  rows,
  goals,
  notes,
  runs,
  ...(agreed ? { agreement: { source: agreed.source, columns: Object.keys(agreed.rows[0] ?? {}), rows: agreed.rows } } : {}),
}
await mkdir(values.results, { recursive: true })
const file = join(values.results, 'simulate.json')
await writeFile(file, `${JSON.stringify(result, null, 2)}\n`)
process.stdout.write([
  '', `== ${result.title}`, formatTable(columns, rows),
  ...(agreed ? ['', `Agreement with the real swarm (${agreed.source}; same N, F and caps, 127.0.0.1):`, formatTable(Object.keys(agreed.rows[0] ?? {}), agreed.rows)] : []),
  ...goals.map((g) => `goal ${g.met ? 'MET   ' : 'MISSED'} ${g.goal}: ${g.detail}`),
  ...notes.map((n) => `note: ${n}`),
  `(load average ${m.loadAverageAtStart} at start; ${file})`, '',
].join('\n') + '\n')
