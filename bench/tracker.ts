// Tracker benchmark: BitTorrent UDP announces (BEP 15) from 10 000 simulated peers (10 rounds) against a
// UDP tracker URL; reports announces/s and latency percentiles. The load generator knows only the
// wire protocol, so the same run can measure upswarm's tracker and any other UDP tracker.
//
//   node --import tsx bench/tracker.ts                       # our tracker on an embedded NATS
//   node --import tsx bench/tracker.ts --target udp://h:p    # any running UDP tracker
//   options: --peers N --rounds R --swarms S --sockets K --concurrency C --nats URLS --nats-nodes N
//            --skip-reference --skip-opentracker --no-pin
//            --profile DIR (CPU profiles of the two tracker processes)
//            --results DIR (where tracker.json goes; default bench/results)
//   UPSWARM_TRACKER_BENCH_DEBUG=1 prints each load's round timings (ms from its start).
//
// `npm run bench -- tracker` runs the null responder (the generator's ceiling), ours, the
// `bittorrent-tracker` package and Debian's opentracker, in that order, and writes
// bench/results/tracker.json (+ .svg). The load generator (this process) is pinned to core 0 and
// every tracker (and the NATS cluster) to core 1 with taskset, when there are 2 cores or more.
// After our run a fresh tracker instance, started once the staleness bound (1 s) has passed,
// must list ≥ 99% of the peers from the bucket, with no write dropped.
//
// Each target runs in its own process (started by this file with --serve), so the generator and
// the tracker do not share an event loop. Our tracker runs with its rate limit off: every
// simulated peer comes from 127.0.0.1.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { round, startRecording, type BenchResult, type Cell, type Goal } from './lib/report.ts'
import { barChart } from './lib/svg.ts'

export interface LoadOptions {
  url: string
  peers?: number
  /** Announces per peer: the first is `started`, the rest plain updates. */
  rounds?: number
  swarms?: number
  /** Client sockets the peers are spread over (each connects once, BEP 15). */
  sockets?: number
  /** Announces in flight at once. */
  concurrency?: number
  timeoutMs?: number
  /** The swarms' info hashes (default: `swarms` random ones); the same for every target of a run. */
  hashes?: readonly Buffer[]
}

export interface LoadResult {
  target: string
  announces: number
  lost: number
  errors: number
  seconds: number
  perSecond: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Announces/s of each round: the first (event `started`, new peers) and the updates after it. */
  perRound: number[]
}

const PROTOCOL_ID = 0x41727101980n

/** Drives `peers × rounds` UDP announces at `url` with a fixed window of requests in flight. */
export async function udpLoad(o: LoadOptions): Promise<LoadResult> {
  const peers = o.peers ?? 10_000
  const rounds = o.rounds ?? 10
  const swarms = o.swarms ?? 100
  const socketCount = o.sockets ?? 8
  const concurrency = o.concurrency ?? 256
  const timeoutMs = o.timeoutMs ?? 2_000
  const m = /^udp:\/\/([^:/]+):(\d+)/.exec(o.url)
  if (!m) throw new Error(`--target must be udp://host:port (got ${o.url})`)
  const host = m[1]!
  const port = Number(m[2])

  const hashes = o.hashes ?? Array.from({ length: swarms }, () => randomBytes(20))
  const sim = Array.from({ length: peers }, (_, i) => ({ id: randomBytes(20), port: 10_000 + (i % 50_000), hash: hashes[i % swarms]! }))
  const sockets: Socket[] = []
  const waiting = new Map<number, (packet: Buffer | null) => void>()
  for (let i = 0; i < socketCount; i++) {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 })
    s.on('message', (packet) => {
      if (packet.byteLength >= 8) waiting.get(packet.readUInt32BE(4))?.(packet)
    })
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
    sockets.push(s)
  }
  let nextTx = 1
  const exchange = (s: Socket, packet: Buffer): Promise<Buffer | null> =>
    new Promise((resolve) => {
      const tx = nextTx++ >>> 0
      packet.writeUInt32BE(tx, 12)
      const timer = setTimeout(() => finish(null), timeoutMs)
      const finish = (res: Buffer | null): void => {
        clearTimeout(timer)
        waiting.delete(tx)
        resolve(res)
      }
      waiting.set(tx, finish)
      s.send(packet, port, host)
    })

  const connectionIds: Buffer[] = []
  for (const s of sockets) {
    const req = Buffer.alloc(16)
    req.writeBigUInt64BE(PROTOCOL_ID, 0)
    const res = await exchange(s, req)
    if (!res || res.readUInt32BE(0) !== 0) throw new Error(`no connect answer from ${o.url}`)
    connectionIds.push(Buffer.from(res.subarray(8, 16)))
  }

  const total = peers * rounds
  const latencies = new Float64Array(total)
  const roundStart = new Float64Array(rounds).fill(Infinity)
  const roundEnd = new Float64Array(rounds)
  const roundDone = new Uint32Array(rounds)
  let done = 0
  let lost = 0
  let errors = 0
  let issued = 0
  const started = performance.now()
  let firstAnswer = 0
  let lastAnswer = started
  const worker = async (): Promise<void> => {
    while (issued < total) {
      const n = issued++
      const round = Math.floor(n / peers)
      const p = sim[n % peers]!
      const si = n % socketCount
      const packet = Buffer.alloc(98)
      connectionIds[si]!.copy(packet, 0)
      packet.writeUInt32BE(1, 8)
      p.hash.copy(packet, 16)
      p.id.copy(packet, 36)
      packet.writeUInt32BE(round === 0 ? 2 : 0, 80) // started, then updates
      packet.writeInt32BE(50, 92)
      packet.writeUInt16BE(p.port, 96)
      const t0 = performance.now()
      roundStart[round] = Math.min(roundStart[round]!, t0)
      const res = await exchange(sockets[si]!, packet)
      const t1 = performance.now()
      if (!res) lost++
      else if (res.readUInt32BE(0) !== 1) errors++
      else {
        latencies[done++] = t1 - t0
        lastAnswer = t1
        if (firstAnswer === 0) firstAnswer = t1
        roundDone[round]!++
        roundEnd[round] = Math.max(roundEnd[round]!, t1)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  // Up to the last answer: a lost announce at the end would add its whole timeout to the run.
  const seconds = (lastAnswer - started) / 1000
  if (process.env.UPSWARM_TRACKER_BENCH_DEBUG) process.stderr.write(`first answer after ${(firstAnswer - started).toFixed(0)} ms; rounds ${Array.from(roundStart, (t, r) => `${(t - started).toFixed(0)}-${(roundEnd[r]! - started).toFixed(0)}`).join(' ')} ms\n`)
  for (const s of sockets) s.close()
  const sorted = latencies.subarray(0, done).sort()
  const pct = (q: number): number => (done === 0 ? NaN : sorted[Math.min(done - 1, Math.floor(q * done))]!)
  const perRound = Array.from(roundDone, (n, r) => (n > 0 ? n / ((roundEnd[r]! - roundStart[r]!) / 1000) : NaN))
  return { target: o.url, announces: done, lost, errors, seconds, perSecond: done / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: done ? sorted[done - 1]! : NaN, perRound }
}

interface Served {
  url: string
  child: ChildProcess
  /** Asks the child for its counters (the upswarm tracker only): one `STATS {json}` line. */
  stats(): Promise<TrackerStats>
}

/** What the upswarm tracker child reports on SIGUSR2. */
interface TrackerStats {
  peers: number
  droppedWrites: number
  unflushedWrites: number
  writesInFlight: number
}

/**
 * Starts this file in `--serve <kind>` mode in a child process (`prefix` before node, e.g.
 * taskset); resolves with its UDP URL once it prints READY.
 */
async function serveInChild(kind: 'upswarm' | 'reference' | 'null', natsUrls: string[], prefix: readonly string[] = []): Promise<Served> {
  const self = fileURLToPath(import.meta.url)
  const [cmd, ...pre] = [...prefix, process.execPath]
  const child = spawn(cmd!, [...pre, '--import', 'tsx', self, '--serve', kind, '--nats', natsUrls.join(',')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const rl = createInterface({ input: child.stdout! })
  const statsWaiting: ((s: TrackerStats) => void)[] = []
  return new Promise<Served>((resolve, reject) => {
    rl.on('line', (line) => {
      if (line.startsWith('READY ')) {
        const url = JSON.parse(line.slice(6)).trackerUdp as string
        resolve({
          url,
          child,
          stats: () =>
            new Promise<TrackerStats>((res) => {
              statsWaiting.push(res)
              child.kill('SIGUSR2')
            }),
        })
      } else if (line.startsWith('STATS ')) statsWaiting.shift()?.(JSON.parse(line.slice(6)) as TrackerStats)
      else if (line.startsWith('UNAVAILABLE ')) reject(new Error(line.slice(12)))
    })
    child.once('exit', () => reject(new Error(`${kind} tracker exited before it was ready`)))
  })
}

/** Child mode: run one tracker until SIGTERM. */
async function serve(kind: string, nats: string | undefined): Promise<void> {
  if (kind === 'null') return serveNull()
  if (kind === 'upswarm') {
    const { connectNats } = await import('../infra/nats/connect.ts')
    const { startTracker } = await import('../actors/tracker/index.ts')
    const nc = await connectNats(nats, 'upswarm-bench-tracker')
    const tracker = await startTracker({ nc, id: 'bench', rateLimit: false })
    process.on('SIGUSR2', () => {
      const r = tracker.registry
      const stats: TrackerStats = { peers: r.size, droppedWrites: r.droppedWrites, unflushedWrites: r.unflushedWrites, writesInFlight: r.writesInFlight }
      process.stdout.write(`STATS ${JSON.stringify(stats)}\n`)
    })
    process.stdout.write(`READY ${JSON.stringify({ trackerUdp: tracker.udpUrl })}\n`)
    await new Promise((resolve) => process.once('SIGTERM', resolve))
    await tracker.close()
    await nc.close()
    return
  }
  // >>> bittorrent-tracker comparison ------------------------------------------------------------
  // The reference server: the `bittorrent-tracker` npm package (a dev dependency, its WebRTC
  // dependency replaced by bench/stubs/webrtc-polyfill through package.json `overrides`), UDP
  // only, bound to loopback only. Its listen() reads the IPv4 UDP address from `hostname.udp`
  // (server.js: `isObject(hostname) ? hostname.udp : hostname`), and it always opens a udp6
  // socket too, so both are given; the bound address is checked before the load starts.
  const moduleName = 'bittorrent-tracker'
  let Server: new (o: object) => ReferenceServer
  try {
    ;({ Server } = (await import(moduleName)) as { Server: new (o: object) => ReferenceServer })
  } catch (err) {
    process.stdout.write(`UNAVAILABLE the bittorrent-tracker package cannot be loaded: ${(err as Error).message}\n`)
    return
  }
  // The same 4 MiB receive buffer as our UDP door (infra/tracker/udp-server.ts): with the
  // default 208 KiB the kernel drops bursts of the 256 announces in flight.
  const server = new Server({ udp: { recvBufferSize: 4 * 1024 * 1024 }, http: false, ws: false, stats: false })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, { http: '127.0.0.1', udp: '127.0.0.1', udp6: '::1' }, () => resolve())
  })
  const bound = server.udp4!.address()
  if (bound.address !== '127.0.0.1') {
    server.close()
    process.stdout.write(`UNAVAILABLE bittorrent-tracker bound ${bound.address}, not 127.0.0.1\n`)
    return
  }
  process.stdout.write(`READY ${JSON.stringify({ trackerUdp: `udp://127.0.0.1:${bound.port}` })}\n`)
  await new Promise((resolve) => process.once('SIGTERM', resolve))
  server.close()
  // <<< bittorrent-tracker comparison ------------------------------------------------------------
}

/**
 * The load generator's ceiling: a UDP responder that answers every connect and announce at once
 * with a fixed, valid BEP 15 reply (no registry), so a tracker's figures can be read against
 * what this generator can drive at all on this machine.
 */
async function serveNull(): Promise<void> {
  const socket = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 })
  socket.on('message', (msg, rinfo) => {
    if (msg.byteLength < 16) return
    const action = msg.readUInt32BE(8)
    const reply = Buffer.alloc(action === 0 ? 16 : 20)
    reply.writeUInt32BE(action === 0 ? 0 : 1, 0)
    msg.copy(reply, 4, 12, 16)
    if (action === 0) msg.copy(reply, 8, 0, 8)
    else reply.writeUInt32BE(1800, 8)
    socket.send(reply, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  process.stdout.write(`READY ${JSON.stringify({ trackerUdp: `udp://127.0.0.1:${socket.address().port}` })}\n`)
  await new Promise((resolve) => process.once('SIGTERM', resolve))
  socket.close()
}

interface ReferenceServer {
  udp4?: { address(): { address: string; port: number } }
  once(event: 'error', fn: (err: Error) => void): void
  listen(port: number, hostname: { http?: string; udp?: string; udp6?: string }, cb: () => void): void
  close(): void
}

function hasTaskset(): boolean {
  return spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0
}

/** Pins every thread of this process to `cpus` (a taskset list). */
function pinSelf(cpus: string): void {
  spawnSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' })
}

function report(name: string, r: LoadResult): void {
  process.stderr.write(
    `${name.padEnd(20)} ${r.perSecond.toFixed(0).padStart(8)} announces/s   p50 ${r.p50Ms.toFixed(2)} ms   p99 ${r.p99Ms.toFixed(2)} ms   max ${r.maxMs.toFixed(1)} ms   ` +
      `(${r.announces} answered, ${r.lost} lost, ${r.errors} errors, ${r.seconds.toFixed(2)} s)\n`,
  )
}

function row(name: string, r: LoadResult): Record<string, Cell> {
  return {
    tracker: name,
    'announces/s': round(r.perSecond),
    'started/s': round(r.perRound[0] ?? NaN),
    'updates/s': r.perRound.length > 1 ? round(r.perRound.slice(1).reduce((a, b) => a + b, 0) / (r.perRound.length - 1)) : null,
    'p50 ms': round(r.p50Ms, 3),
    'p99 ms': round(r.p99Ms, 3),
    'max ms': round(r.maxMs, 3),
    answered: r.announces,
    lost: r.lost,
    errors: r.errors,
    's': round(r.seconds),
  }
}

/**
 * Entry for `npm run bench -- tracker` and for running this file directly. With --target it
 * only loads that tracker and prints; otherwise it measures ours and the reference and writes
 * bench/results/tracker.json and .svg.
 */
export async function runTrackerBench(argv: string[]): Promise<BenchResult | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: {
      serve: { type: 'string' },
      target: { type: 'string' },
      nats: { type: 'string' },
      'nats-nodes': { type: 'string', default: '3' },
      peers: { type: 'string', default: '10000' },
      // Ten rounds (about 3 s for ours): the run spans several of the registry's 1 s bucket
      // flushes, the first of them holding all 10 000 new peers, so their cost is in the figure.
      rounds: { type: 'string', default: '10' },
      swarms: { type: 'string', default: '100' },
      sockets: { type: 'string', default: '8' },
      concurrency: { type: 'string', default: '256' },
      'skip-reference': { type: 'boolean', default: false },
      'skip-opentracker': { type: 'boolean', default: false },
      pin: { type: 'boolean', default: true },
      'no-pin': { type: 'boolean', default: false },
      profile: { type: 'string' },
      results: { type: 'string' },
    },
    allowPositionals: true,
  })
  if (values.serve) {
    await serve(values.serve, values.nats)
    return undefined
  }
  if (values['no-pin']) values.pin = false
  const load = {
    peers: Number(values.peers),
    rounds: Number(values.rounds),
    swarms: Number(values.swarms),
    sockets: Number(values.sockets),
    concurrency: Number(values.concurrency),
  }
  process.stderr.write(`tracker bench: ${load.peers} peers × ${load.rounds} announces, ${load.swarms} swarms, ${load.sockets} sockets, ${load.concurrency} in flight\n`)
  if (values.target) {
    report(values.target, await udpLoad({ url: values.target, ...load }))
    return undefined
  }

  const rec = startRecording(values.results)
  let cluster: { urls: string[]; stop(): Promise<void> } | undefined
  let dir: string | undefined
  const children: ChildProcess[] = []
  const stops: (() => Promise<void>)[] = []
  const rows: Record<string, Cell>[] = []
  const goals: Goal[] = []
  // Issue 14 item 5: the load generator (this process) on a core of its own, every tracker (and
  // the NATS cluster ours keeps its registry in) on the other.
  const pin = values.pin && availableParallelism() >= 2 && hasTaskset()
  const trackerCore = pin ? ['taskset', '-c', '1'] : []
  const notes = [
    'started/s: the first round (event started: every peer is new to the tracker); updates/s: the later rounds (re-announces), mean of their rates.',
    'null responder: answers every packet at once with a fixed reply, no registry; the most this load generator can drive here.',
    'UDP announces (BEP 15) from one load-generator process; each tracker in its own process. Ours keeps its registry in a JetStream KV bucket on a 3-node cluster (in-memory view for reads, writes batched to the bucket once per second); its per-address rate limit is off (every simulated peer is 127.0.0.1).',
    'opentracker: Debian\'s package (C; fetched into .tools/ by bench/lib/opentracker.ts), UDP on 127.0.0.1, the run\'s info hashes as its whitelist (Debian builds it in whitelist mode).',
    pin
      ? 'Cores: the load generator pinned to core 0 (taskset), every tracker and the NATS cluster to core 1.'
      : 'Cores: not pinned (--no-pin, fewer than 2 cores, or no taskset).',
  ]
  // The same swarms for every target (opentracker answers only the hashes it was given).
  const hashes = Array.from({ length: load.swarms }, () => randomBytes(20))
  const loadOf = { ...load, hashes }
  const loadAverage: number[] = []
  const measure = async (name: string, label: string, url: string): Promise<LoadResult> => {
    const before = loadavg()[0]!
    const r = await udpLoad({ url, ...loadOf })
    loadAverage.push(before)
    report(name, r)
    rows.push({ ...row(label, r), 'load avg': round(before, 2) })
    return r
  }
  let fresh: { listed: number; total: number; lagMs: number; storedMs: number; stats: TrackerStats } | undefined
  try {
    let natsUrls = values.nats?.split(',')
    if (!natsUrls) {
      const [{ NatsCluster }, { Authority }] = await Promise.all([import('../infra/cluster/nats-cluster.ts'), import('../infra/auth/authority.ts')])
      dir = await mkdtemp(join(tmpdir(), 'upswarm-bench-'))
      // Credentials and TLS on, as in production: the tracker runs as the tracker identity.
      const authority = await Authority.open(join(dir, 'auth'))
      // Started from core 1 (the cluster's processes keep the affinity they are started with).
      if (pin) pinSelf('1')
      cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes: Number(values['nats-nodes']), authority })
      natsUrls = cluster.urls
      process.env.UPSWARM_TLS_CA = authority.paths.caFile
      process.env.UPSWARM_CREDS = (await authority.issue({ kind: 'tracker', name: 'bench' })).file
    }
    if (pin) pinSelf('0')
    const ceiling = await serveInChild('null', natsUrls, trackerCore)
    children.push(ceiling.child)
    await measure('null responder', 'null responder (generator ceiling)', ceiling.url)
    const ours = await withCpuProfiles(values.profile && join(values.profile, 'upswarm'), () => serveInChild('upswarm', natsUrls!, trackerCore))
    children.push(ours.child)
    const oursResult = await measure('upswarm tracker', 'upswarm tracker', ours.url)
    const runEnded = performance.now()
    // Then: how long the serving instance takes to have every change stored in the bucket (a
    // burst of new peers faster than the stream stores them waits in its window), and a fresh
    // instance started after that (and at least the staleness bound, one flush interval, after the
    // last announce) must list ≥ 99% of the peers from the bucket, with no write dropped.
    {
      const { WRITE_FLUSH_MS } = await import('../infra/tracker/registry.ts')
      let stats = await ours.stats()
      while ((stats.unflushedWrites > 0 || stats.writesInFlight > 0) && performance.now() - runEnded < 60_000) {
        await new Promise((r) => setTimeout(r, 50))
        stats = await ours.stats()
      }
      const storedMs = performance.now() - runEnded
      await new Promise((r) => setTimeout(r, Math.max(0, WRITE_FLUSH_MS - (performance.now() - runEnded))))
      const { connectNats } = await import('../infra/nats/connect.ts')
      const { startTracker } = await import('../actors/tracker/index.ts')
      const nc = await connectNats(natsUrls, 'upswarm-bench-fresh-tracker')
      try {
        const lagMs = performance.now() - runEnded
        const t = await startTracker({ nc, id: 'bench-fresh', rateLimit: false })
        let listed = 0
        for (const h of hashes) {
          const st = t.registry.scrape(h.toString('hex'))
          listed += st.seeders + st.leechers
        }
        await t.close()
        fresh = { listed, total: load.peers, lagMs, storedMs, stats: await ours.stats() }
      } finally {
        await nc.close()
      }
      process.stderr.write(`every change stored in the bucket ${fresh.storedMs.toFixed(0)} ms after the last announce; a fresh tracker instance started ${fresh.lagMs.toFixed(0)} ms after it lists ${fresh.listed} of ${fresh.total} peers (${((100 * fresh.listed) / fresh.total).toFixed(2)}%); serving instance: ${fresh.stats.peers} peers, ${fresh.stats.droppedWrites} writes dropped\n`)
    }
    let refResult: LoadResult | undefined
    if (values['skip-reference']) {
      notes.push('bittorrent-tracker: skipped (--skip-reference).')
    } else {
      try {
        const reference = await withCpuProfiles(values.profile && join(values.profile, 'reference'), () => serveInChild('reference', natsUrls!, trackerCore))
        children.push(reference.child)
        refResult = await measure('bittorrent-tracker', 'bittorrent-tracker', reference.url)
      } catch (err) {
        notes.push(`bittorrent-tracker: skipped: ${(err as Error).message} (see docs/tracker.md, "Benchmark").`)
      }
    }
    let openResult: LoadResult | undefined
    if (values['skip-opentracker']) {
      notes.push('opentracker: skipped (--skip-opentracker).')
    } else {
      try {
        const { startOpentracker } = await import('./lib/opentracker.ts')
        const ot = await startOpentracker(hashes, trackerCore)
        stops.push(ot.stop)
        openResult = await measure('opentracker', 'opentracker (Debian, C)', ot.url)
        if (openResult.errors > 0) notes.push(`opentracker: ${openResult.errors} announces refused (not in its whitelist?)`)
      } catch (err) {
        notes.push(`opentracker: skipped: ${(err as Error).message}`)
      }
    }
    if (openResult) {
      goals.push({
        goal: 'announces/s ≥ 0.5× opentracker\'s',
        met: oursResult.perSecond >= 0.5 * openResult.perSecond,
        detail: `${oursResult.perSecond.toFixed(0)} vs ${openResult.perSecond.toFixed(0)} (${(oursResult.perSecond / openResult.perSecond).toFixed(2)}×)`,
      })
    }
    if (refResult) {
      goals.push({
        goal: 'p99 ≤ bittorrent-tracker\'s',
        met: oursResult.p99Ms <= refResult.p99Ms,
        detail: `p99 ${oursResult.p99Ms.toFixed(2)} ms vs ${refResult.p99Ms.toFixed(2)} ms; announces/s ${oursResult.perSecond.toFixed(0)} vs ${refResult.perSecond.toFixed(0)} (${(oursResult.perSecond / refResult.perSecond).toFixed(2)}×)`,
      })
    }
    if (fresh) {
      goals.push({
        goal: 'after the run, a fresh instance lists ≥ 99% of the peers from the bucket; no write dropped',
        met: fresh.listed >= 0.99 * fresh.total && fresh.stats.droppedWrites === 0,
        detail: `${fresh.listed} of ${fresh.total} (${((100 * fresh.listed) / fresh.total).toFixed(2)}%), started ${fresh.lagMs.toFixed(0)} ms after the last announce; every change stored ${fresh.storedMs.toFixed(0)} ms after it; ${fresh.stats.droppedWrites} writes dropped`,
      })
    }
  } finally {
    for (const c of children) {
      c.kill('SIGTERM')
      if (c.exitCode === null) await new Promise((resolve) => c.once('exit', resolve))
    }
    for (const stop of stops) await stop().catch(() => {})
    if (pin) pinSelf(`0-${availableParallelism() - 1}`)
    await cluster?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  }
  if (values.profile) await writeProfileReport('tracker', values.profile, ['upswarm', 'reference'].map((k) => ({ dir: join(values.profile!, k), merge: false })), values.results)
  const names = rows.map((r) => String(r.tracker))
  const svg = barChart([
    { title: 'UDP announces per second (higher is better)', yLabel: 'announces/s', groups: names, series: [{ name: 'announces/s', values: rows.map((r) => r['announces/s'] as number) }] },
    { title: 'Announce latency (lower is better)', yLabel: 'ms', groups: names, series: [{ name: 'p50', values: rows.map((r) => r['p50 ms'] as number) }, { name: 'p99', values: rows.map((r) => r['p99 ms'] as number) }] },
  ], `${load.peers} peers × ${load.rounds} announces, ${load.swarms} swarms, ${load.sockets} sockets, ${load.concurrency} in flight; 127.0.0.1`)
  return rec.finish({
    name: 'tracker',
    title: `Tracker: UDP announces from ${load.peers.toLocaleString('en')} simulated peers`,
    parameters: { ...load, natsNodes: Number(values['nats-nodes']) },
    columns: ['tracker', 'announces/s', 'started/s', 'updates/s', 'p50 ms', 'p99 ms', 'max ms', 'answered', 'lost', 'errors', 's', 'load avg'],
    rows,
    goals,
    notes,
  }, svg)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runTrackerBench(process.argv.slice(2))
}
