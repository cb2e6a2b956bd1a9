// Swarm distribution (issue 7, benchmark 1): N clients upgrade to a release of F bytes while
// each repository server uploads at most u_s and each client at most u (daemon
// --max-upload-rate). Compared with the P2P lower bound max(F/u_s_total, N·F/(u_s_total + N·u))
// (Kumar & Ross 2006) and, in the same run, with the same N client processes downloading the
// same files from a plain HTTP server capped at u_s_total (client-server: N·F/u_s_total).
//
// How it is measured: one `up` cluster (3 NATS nodes, DHT, 3 servers, proxy, tracker) and a
// fresh product per N; r1 is a one-file release every client is initialised at (`upswarm init`); the
// daemons (`upswarm daemon --auto --json`) run; then r2 = the F tree is published. The daemons
// start the update when a server heartbeat says it holds r2; the time is from the first
// client's update start to the last client's `update.done` (all files verified and
// committed). Origin bytes are the servers' own counters (NATS range replies + swarm uploads,
// from their heartbeats), cross-checked with the clients' bytesFromServers.
import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateTree } from '../actors/demo/tree-gen.ts'
import { Swarm, type SwarmClient, type SwarmOptions, type UpdateDone } from '../actors/demo/swarm.ts'
import type { Launched } from '../actors/launcher/index.ts'
import { spawnGuarded, stopChild } from '../infra/cluster/children.ts'
import { SUMMARY_EVERY_MS } from '../infra/inspect/nats-inspector.ts'
import { isInspectionSummary, type InspectionSummary } from '../infra/inspect/summary.ts'
import { INSPECT_SUBJECTS, SERVER_HEARTBEATS } from '../infra/nats/names.ts'
import { scanTree } from '../infra/release/scan.ts'
import { withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { cpuWindow, type CpuWindow } from './lib/cpu-usage.ts'
import { startPlainServer, type FileToFetch } from './lib/plain-http.ts'
import { MiB, median, progress, round, startRecording, type BenchResult, type Cell, type CommonOptions, type Goal } from './lib/report.ts'
import { barChart } from './lib/svg.ts'

export interface SwarmBenchOptions extends CommonOptions {
  /** Client counts, one run each. */
  clients: number[]
  /** Release size F in MiB. */
  mib: number
  files: number
  servers: number
  /** Upload cap of each repository server, MiB/s. */
  serverMiBps: number
  /** Upload cap of each client daemon, MiB/s. */
  clientMiBps: number
  /** Skip the plain-HTTP run (it takes N·F/u_s_total by construction). */
  skipHttp?: boolean
  /** Turn live inspection on in every process (issue 12) and count what it publishes. */
  inspect?: boolean
  /** Release formats of the product (default [1]; [1, 2]: the daemons plan in format 2, a larger file by its chunks). */
  formats?: number[]
}

export const SWARM_DEFAULTS: SwarmBenchOptions = { clients: [4, 8, 16], mib: 32, files: 120, servers: 3, serverMiBps: 2, clientMiBps: 2 }

interface ServerCounters {
  bytesServed: number
  swarmUp: number
}

interface P2PRun {
  n: number
  seconds: number
  /** From the start of the r2 publish to the first client's update start (upload to the object store, server sync, heartbeat). */
  startLatency: number
  perClientMs: number[]
  originBytes: number
  clientServerBytes: number
  clientPeerBytes: number
  badPieces: number
  /** Why clients took pieces from the servers (update.done sources.serverReasons, added up). */
  serverReasons: Record<string, number>
  /** Daemon stderr lines that report trouble (stalled or timed-out peers, failed server ranges), by kind. */
  daemonWarnings: Record<string, number>
  cpu: CpuWindow
  /**
   * With --inspect: inspection messages seen on upswarm.inspect.> during the update and the most
   * one process's arrived in one second (receiver side); and what the processes say they sent,
   * from their last summaries (sender side: the busiest wall-clock second and the mean per second
   * of the process that sent most, and what their budgets left out).
   */
  inspection?: {
    messages: number; processes: number; maxPerSecond: number; maxPer3sAverage: number
    sender: { processes: number; busiestSecond: number; meanPerSecond: number; sent: number; droppedEvents: number; coalesced: number; droppedActors: number; uninspected: number }
  }
}

/**
 * Inspection messages per process (subject) and arrival second: the most in one second, and the
 * most in any 3 consecutive seconds divided by 3. A process busy at 100% CPU can hand its socket
 * two seconds' worth at once, so the 1-second figure overstates what it sent in that second.
 */
function inspectionRates(perSecond: Map<string, number>, messages: number, summaries: Map<string, InspectionSummary>): NonNullable<P2PRun['inspection']> {
  const bySubject = new Map<string, Map<number, number>>()
  for (const [key, count] of perSecond) {
    const [subject, second] = key.split('|') as [string, string]
    if (!bySubject.has(subject)) bySubject.set(subject, new Map())
    bySubject.get(subject)!.set(Number(second), count)
  }
  let maxPer3s = 0
  for (const seconds of bySubject.values()) {
    for (const s of seconds.keys()) maxPer3s = Math.max(maxPer3s, (seconds.get(s) ?? 0) + (seconds.get(s + 1) ?? 0) + (seconds.get(s + 2) ?? 0))
  }
  const last = [...summaries.values()]
  const sum = (k: 'sent' | 'droppedEvents' | 'coalesced' | 'droppedActors' | 'uninspected'): number => last.reduce((n, x) => n + (x[k] ?? 0), 0)
  const sender = {
    processes: last.length,
    busiestSecond: Math.max(0, ...last.map((x) => x.busiestSecond)),
    meanPerSecond: Math.max(0, ...last.map((x) => x.meanPerSecond)),
    sent: sum('sent'), droppedEvents: sum('droppedEvents'), coalesced: sum('coalesced'), droppedActors: sum('droppedActors'), uninspected: sum('uninspected'),
  }
  return { messages, processes: bySubject.size, maxPerSecond: Math.max(0, ...perSecond.values()), maxPer3sAverage: Math.round((maxPer3s / 3) * 10) / 10, sender }
}

/** Server upload counters from heartbeats, latest per server. */
function watchServers(swarm: Swarm): { snapshot(): Map<string, ServerCounters>; synced(rev: number): Promise<number>; stop(): void } {
  const latest = new Map<string, ServerCounters>()
  const syncWaiters: { rev: number; resolve: (t: number) => void }[] = []
  const sub = swarm.nc.subscribe(SERVER_HEARTBEATS, {
    callback: (err, msg) => {
      if (err) return
      const hb = msg.json<{ id: string; bytesServed: number; swarm?: { bytesUp?: number }; synced?: Record<string, number> }>()
      latest.set(hb.id, { bytesServed: hb.bytesServed, swarmUp: hb.swarm?.bytesUp ?? 0 })
      const synced = hb.synced?.[swarm.product] ?? 0
      for (const w of [...syncWaiters]) {
        if (synced >= w.rev) {
          syncWaiters.splice(syncWaiters.indexOf(w), 1)
          w.resolve(performance.now())
        }
      }
    },
  })
  return {
    snapshot: () => new Map([...latest].map(([k, v]) => [k, { ...v }])),
    synced: (rev) => new Promise((resolve) => syncWaiters.push({ rev, resolve })),
    stop: () => sub.unsubscribe(),
  }
}

function originDelta(before: Map<string, ServerCounters>, after: Map<string, ServerCounters>): number {
  let sum = 0
  for (const [id, a] of after) {
    const b = before.get(id) ?? { bytesServed: 0, swarmUp: 0 }
    sum += a.bytesServed - b.bytesServed + (a.swarmUp - b.swarmUp)
  }
  return sum
}

async function limited<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!)
  }))
}

/**
 * One product per client count, all on one cluster (a cluster start costs tens of seconds here):
 * a Swarm that borrows the running cluster and leaves it up when it stops.
 */
class ProductSwarm extends Swarm {
  constructor(opts: SwarmOptions, private readonly cluster: Launched) {
    super(opts)
  }

  override async start(): Promise<void> {
    this.launched = this.cluster
    await this.connect()
  }

  override async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.stop()))
    await this.disconnect()
  }
}

async function p2pRun(o: SwarmBenchOptions, n: number, cluster: Launched, work: string, tree: string, log: (m: string) => void): Promise<P2PRun> {
  const F = o.mib * MiB
  const swarm = new ProductSwarm({ dir: join(work, `swarm-${n}`), ...(o.formats ? { formats: o.formats } : {}) }, cluster)
  try {
    await swarm.start()
    const watch = watchServers(swarm)
    try {
      const r1 = join(work, 'r1')
      await mkdir(r1, { recursive: true })
      await writeFile(join(r1, 'VERSION'), 'r1\n')
      await swarm.publish(r1, 'r1')
      await swarm.serversSynced(1)
      log(`n=${n}: new product, r1 published; initialising ${n} working copies`)
      const names = Array.from({ length: n }, (_, i) => `c${String(i + 1).padStart(2, '0')}`)
      const clients: SwarmClient[] = []
      const rate = String(Math.round(o.clientMiBps * MiB))
      await withCpuProfiles(o.profile && join(o.profile, `n${n}-clients`), async () => {
        await limited(names, 2, async (name) => {
          clients.push(await swarm.addClient(name))
        })
        await limited(clients, 4, (c) => c.start(['--max-upload-rate', rate]))
      }, { onSignal: true })
      const daemonWarnings: Record<string, number> = {}
      for (const c of clients) {
        createInterface({ input: c.child!.stderr! }).on('line', (line) => {
          const kind = /stalled|timeout|banned|could not send|failed|unavailable/.exec(line)?.[0]
          if (kind) daemonWarnings[kind] = (daemonWarnings[kind] ?? 0) + 1
        })
      }
      log(`n=${n}: ${n} daemons running; publishing r2 (${o.mib} MiB, ${o.files} files)`)
      // Profiles of the daemons cover the update only (start-up and `upswarm init` left out).
      if (o.profile) for (const c of clients) c.child!.kill('SIGUSR2')
      const before = watch.snapshot()
      // Issue 12: with --inspect, what every process publishes for inspection, per identity and second.
      const perSecond = new Map<string, number>()
      // Each process's latest summary: its own count of what it sent, per wall-clock second.
      const summaries = new Map<string, InspectionSummary>()
      let inspected = 0
      const inspectSub = o.inspect ? swarm.nc.subscribe(INSPECT_SUBJECTS, {
        callback: (_e, m) => {
          const parsed: unknown = m.json()
          if (isInspectionSummary(parsed)) summaries.set(m.subject, parsed)
          inspected++
          const key = `${m.subject}|${Math.floor(Date.now() / 1000)}`
          perSecond.set(key, (perSecond.get(key) ?? 0) + 1)
        },
      }) : undefined
      const arrivals = clients.map((c) => c.reached(2, Math.max(300_000, 20 * 1000 * (n * F) / (o.serverMiBps * o.servers * MiB)))
        .then((e) => ({ e, at: performance.now() })))
      const pubStarted = performance.now()
      await swarm.publish(tree, 'r2')
      const published = performance.now()
      const roles = [...swarm.launched.children.entries()]
      const cpu = cpuWindow({
        daemons: clients.map((c) => c.child!.pid!),
        servers: roles.filter(([k]) => k.startsWith('server-')).map(([, c]) => c.pid!),
        'proxy+tracker+dht': roles.filter(([k]) => !k.startsWith('server-')).map(([, c]) => c.pid!),
        'nats-server': swarm.launched.cluster!.nodes.map((node) => node.pid!),
      })
      log(`n=${n}: r2 published in ${((published - pubStarted) / 1000).toFixed(1)} s; waiting for the clients`)
      const done = await Promise.all(arrivals)
      const cpuUsed = cpu.stop()
      // Every process that took an inspection event sends a summary within SUMMARY_EVERY_MS of it.
      if (inspectSub) await new Promise((r) => setTimeout(r, SUMMARY_EVERY_MS + 1000))
      inspectSub?.unsubscribe()
      const inspection = inspectSub
        ? inspectionRates(perSecond, inspected, summaries)
        : undefined
      const first = Math.min(...done.map(({ e, at }) => at - e.ms))
      const last = Math.max(...done.map(({ at }) => at))
      // One more heartbeat round so every server's counters include the last bytes.
      await new Promise((r) => setTimeout(r, 1500))
      const origin = originDelta(before, watch.snapshot())
      const events: UpdateDone[] = done.map((d) => d.e)
      return {
        n,
        seconds: (last - first) / 1000,
        startLatency: (first - pubStarted) / 1000,
        perClientMs: events.map((e) => e.ms),
        originBytes: origin,
        clientServerBytes: events.reduce((s, e) => s + e.bytesFromServers, 0),
        clientPeerBytes: events.reduce((s, e) => s + e.bytesFromPeers, 0),
        badPieces: events.reduce((s, e) => s + (e.sources?.badPieces ?? 0), 0),
        serverReasons: events.reduce<Record<string, number>>((acc, e) => {
          for (const [k, v] of Object.entries(e.sources?.serverReasons ?? {})) acc[k] = (acc[k] ?? 0) + v
          return acc
        }, {}),
        daemonWarnings,
        cpu: cpuUsed,
        ...(inspection ? { inspection } : {}),
      }
    } finally {
      watch.stop()
    }
  } finally {
    await swarm.stop()
    if (!o.keep) await rm(join(work, `swarm-${n}`), { recursive: true, force: true })
  }
}

/** The same N clients as processes, each downloading every file of the tree from a capped plain HTTP server. */
async function httpRun(o: SwarmBenchOptions, n: number, work: string, tree: string, list: string, log: (m: string) => void): Promise<{ seconds: number; bytes: number; cpu: CpuWindow }> {
  const server = await startPlainServer(tree, Math.round(o.serverMiBps * o.servers * MiB))
  const self = join(fileURLToPath(new URL('.', import.meta.url)), 'lib', 'plain-http.ts')
  const children: ChildProcess[] = []
  try {
    const ready: Promise<{ child: ChildProcess; done: Promise<{ ms: number; bytes: number }> }>[] = []
    for (let i = 0; i < n; i++) {
      const child = spawnGuarded(process.execPath, ['--import', 'tsx', self, '--client', list, '--base', server.url, '--out', join(work, `http-${n}`, `c${i}`)], { stdio: ['pipe', 'pipe', 'inherit'] })
      children.push(child)
      const lines = createInterface({ input: child.stdout! })
      ready.push(new Promise((resolve, reject) => {
        let doneResolve!: (v: { ms: number; bytes: number }) => void
        let doneReject!: (err: Error) => void
        const done = new Promise<{ ms: number; bytes: number }>((res, rej) => {
          doneResolve = res
          doneReject = rej
        })
        done.catch(() => {})
        child.once('exit', (code) => {
          const err = new Error(`HTTP client ${i} exited with ${code} before it was done (see its output above)`)
          reject(err)
          doneReject(err)
        })
        lines.on('line', (line) => {
          if (line === 'READY') resolve({ child, done })
          else if (line.startsWith('DONE ')) doneResolve(JSON.parse(line.slice(5)))
        })
      }))
    }
    const clients = await Promise.all(ready)
    log(`n=${n}: ${n} plain HTTP clients ready; downloading from ${server.url} capped at ${o.serverMiBps * o.servers} MiB/s`)
    const cpu = cpuWindow({ clients: clients.map((c) => c.child.pid!), 'server (bench process)': [process.pid] })
    const t0 = performance.now()
    for (const c of clients) c.child.stdin!.write('go\n')
    await Promise.all(clients.map((c) => c.done))
    // Counted where it leaves (a fresh server per run), like the repository servers' origin bytes.
    return { seconds: (performance.now() - t0) / 1000, bytes: server.bytesSent(), cpu: cpu.stop() }
  } finally {
    await Promise.all(children.map((c) => stopChild(c)))
    await server.close()
    await rm(join(work, `http-${n}`), { recursive: true, force: true })
  }
}

export async function runSwarmBench(o: SwarmBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('swarm', rec.startedAt)
  const work = await mkdtemp(join(tmpdir(), 'upswarm-bench-swarm-'))
  const F = o.mib * MiB
  const usTotal = o.serverMiBps * o.servers * MiB
  const u = o.clientMiBps * MiB
  const rows: Record<string, Cell>[] = []
  const goals: Goal[] = []
  let host: Swarm | undefined
  const runs: { n: number; p2p: P2PRun; http: { seconds: number; bytes: number; cpu: CpuWindow } | null; bound: number; csBound: number }[] = []
  try {
    const tree = join(work, 'tree')
    const gen = await generateTree(tree, { files: o.files, totalBytes: F, seed: 'bench-swarm' })
    const { entries } = await scanTree(tree)
    const list: FileToFetch[] = entries.flatMap((e) => (e.kind === 'file' ? [{ path: e.path, size: e.size, sha256: e.sha256 }] : []))
    const listFile = join(work, 'files.json')
    await writeFile(listFile, JSON.stringify(list))
    log(`tree: ${gen.files} files, ${(gen.bytes / MiB).toFixed(1)} MiB; starting the cluster`)
    // Issue 12: --inspect turns live inspection on in every process of the run (servers, proxy, daemons).
    if (o.inspect) process.env.UPSWARM_INSPECT = '1'
    host = new Swarm({ dir: join(work, 'host'), servers: o.servers, serverMaxUploadRate: Math.round(o.serverMiBps * MiB) })
    await withCpuProfiles(o.profile && join(o.profile, 'cluster'), () => host!.start())
    for (const n of o.clients) {
      const p2p = await p2pRun(o, n, host.launched, work, tree, log)
      log(`n=${n}: swarm ${p2p.seconds.toFixed(1)} s, origin ${(p2p.originBytes / F).toFixed(2)}×F`)
      const http = o.skipHttp ? null : await httpRun(o, n, work, tree, listFile, log)
      if (http) log(`n=${n}: plain HTTP ${http.seconds.toFixed(1)} s`)
      const bound = Math.max(gen.bytes / usTotal, (n * gen.bytes) / (usTotal + n * u))
      const csBound = (n * gen.bytes) / usTotal
      runs.push({ n, p2p, http, bound, csBound })
      rows.push({
        N: n,
        'swarm s': round(p2p.seconds),
        'P2P bound s': round(bound),
        'swarm/bound': round(p2p.seconds / bound, 3),
        'origin/F': round(p2p.originBytes / gen.bytes, 3),
        'peer share': round(p2p.clientPeerBytes / Math.max(1, p2p.clientPeerBytes + p2p.clientServerBytes), 3),
        'client s (min/med/max)': `${(Math.min(...p2p.perClientMs) / 1000).toFixed(1)}/${(median(p2p.perClientMs) / 1000).toFixed(1)}/${(Math.max(...p2p.perClientMs) / 1000).toFixed(1)}`,
        'HTTP s': http ? round(http.seconds) : null,
        'C-S bound s': round(csBound),
        'HTTP/swarm': http ? round(http.seconds / p2p.seconds, 3) : null,
        'CPU busy': `${(p2p.cpu.machineBusy * 100).toFixed(0)}%`,
        ...(p2p.inspection ? {
          'inspect msgs': p2p.inspection.messages,
          'inspect sent/s/process (busiest s, mean)': `${p2p.inspection.sender.busiestSecond}, ${p2p.inspection.sender.meanPerSecond}`,
          'inspect received/s/process (1 s, 3 s avg)': `${p2p.inspection.maxPerSecond}, ${p2p.inspection.maxPer3sAverage}`,
        } : {}),
      })
      if (p2p.inspection) {
        const s = p2p.inspection.sender
        goals.push({
          goal: `N=${n}, --inspect: ≤ 50 inspection messages/s per process (counted by the sender, per wall-clock second)`,
          met: s.processes > 0 && s.busiestSecond <= 50,
          detail: `${s.processes} processes summarised: busiest second ${s.busiestSecond}, mean ${s.meanPerSecond}/s (the process that sent most); ${s.sent} sent, ${s.droppedEvents} events dropped, ${s.coalesced} snapshots coalesced, ${s.droppedActors} actors dropped, ${s.uninspected} per-file actors run uninspected. ` +
            `Received: ${p2p.inspection.messages} messages from ${p2p.inspection.processes} processes; per process, the most in one arrival second ${p2p.inspection.maxPerSecond}, in any 3 s ${p2p.inspection.maxPer3sAverage}/s on average`,
        })
      }
      goals.push({ goal: `N=${n}: time ≤ 1.5 × P2P bound`, met: p2p.seconds <= 1.5 * bound, detail: `${p2p.seconds.toFixed(1)} s vs bound ${bound.toFixed(1)} s (${(p2p.seconds / bound).toFixed(2)}×)` })
      if (n >= 16) goals.push({ goal: `N=${n}: origin bytes ≤ 1.5 × F`, met: p2p.originBytes <= 1.5 * gen.bytes, detail: `${(p2p.originBytes / gen.bytes).toFixed(2)} × F` })
    }
    const svg = barChart([
      {
        title: `Time until the last of N clients holds a verified ${o.mib} MiB release`,
        yLabel: 'seconds',
        groups: runs.map((r) => `N = ${r.n}`),
        series: [
          { name: 'upswarm swarm', values: runs.map((r) => round(r.p2p.seconds)) },
          { name: 'plain HTTP (client-server)', values: runs.map((r) => (r.http ? round(r.http.seconds) : null)) },
        ],
        mark: { name: 'P2P bound (Kumar & Ross)', values: runs.map((r) => round(r.bound)) },
      },
      {
        title: 'Bytes uploaded by the origin servers, in multiples of F',
        yLabel: 'origin bytes / F',
        groups: runs.map((r) => `N = ${r.n}`),
        series: [
          { name: 'upswarm swarm', values: runs.map((r) => round(r.p2p.originBytes / gen.bytes, 3)) },
          { name: 'plain HTTP', values: runs.map((r) => (r.http ? round(r.http.bytes / gen.bytes, 3) : null)) },
        ],
        mark: { name: 'goal 1.5 × F', values: runs.map(() => 1.5) },
      },
    ], `u_s = ${o.serverMiBps} MiB/s × ${o.servers} servers, u = ${o.clientMiBps} MiB/s per client, F = ${o.mib} MiB in ${gen.files} files, 127.0.0.1`)
    await host.stop()
    host = undefined
    if (o.profile) {
      await writeProfileReport('swarm', o.profile, [
        ...o.clients.map((n) => ({ dir: join(o.profile!, `n${n}-clients`), merge: true })),
        { dir: join(o.profile, 'cluster'), merge: false },
      ], o.resultsDir)
    }
    return await rec.finish({
      name: 'swarm',
      title: `Swarm distribution: N clients, F = ${o.mib} MiB, u_s = ${o.servers}×${o.serverMiBps} MiB/s, u = ${o.clientMiBps} MiB/s`,
      parameters: { ...o, fileCount: gen.files, bytes: gen.bytes, serverUploadTotalBytesPerSecond: usTotal, clientUploadBytesPerSecond: u, runs: runs.map((r) => ({ ...r.p2p, http: r.http })) },
      columns: Object.keys(rows[0] ?? { N: 0 }),
      rows,
      goals,
      notes: [
        'swarm s: first client update start → last client update.done (all files verified); P2P bound = max(F/u_s_total, N·F/(u_s_total + N·u)).',
        'origin/F: bytes the repository servers uploaded (their heartbeat counters: NATS ranges + swarm pieces) divided by F.',
        'HTTP s: the same N client processes fetch every file from one node:http server capped at u_s_total (4 connections each).',
        'CPU busy: share of the machine\'s cores busy (all processes, also other users\') during the swarm run; parameters.runs[].cpu has the CPU seconds of the daemons, servers and nats-servers.',
        'origin bytes count what the servers sent; clients count only the server pieces they kept (parameters.runs[].clientServerBytes): the difference is pieces a client received from a server and discarded because another source had delivered them first.',
      ],
    }, svg)
  } finally {
    await host?.stop()
    if (!o.keep) await rm(work, { recursive: true, force: true })
  }
}
