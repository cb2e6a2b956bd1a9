// Tracker benchmark: BitTorrent UDP announces (BEP 15) from 10 000 simulated peers against a
// UDP tracker URL; reports announces/s and latency percentiles. The load generator knows only the
// wire protocol, so the same run can measure upswarm's tracker and any other UDP tracker.
//
//   node --import tsx bench/tracker.ts                       # our tracker on an embedded NATS
//   node --import tsx bench/tracker.ts --target udp://h:p    # any running UDP tracker
//   options: --peers N --rounds R --swarms S --sockets K --concurrency C --nats URLS --nats-nodes N
//
// Each target runs in its own process (started by this file with --serve), so the generator and
// the tracker do not share an event loop. Our tracker runs with its rate limit off: every
// simulated peer comes from 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

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
}

const PROTOCOL_ID = 0x41727101980n

/** Drives `peers × rounds` UDP announces at `url` with a fixed window of requests in flight. */
export async function udpLoad(o: LoadOptions): Promise<LoadResult> {
  const peers = o.peers ?? 10_000
  const rounds = o.rounds ?? 3
  const swarms = o.swarms ?? 100
  const socketCount = o.sockets ?? 8
  const concurrency = o.concurrency ?? 256
  const timeoutMs = o.timeoutMs ?? 2_000
  const m = /^udp:\/\/([^:/]+):(\d+)/.exec(o.url)
  if (!m) throw new Error(`--target must be udp://host:port (got ${o.url})`)
  const host = m[1]!
  const port = Number(m[2])

  const hashes = Array.from({ length: swarms }, () => randomBytes(20))
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
  let done = 0
  let lost = 0
  let errors = 0
  let issued = 0
  const started = performance.now()
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
      const res = await exchange(sockets[si]!, packet)
      if (!res) lost++
      else if (res.readUInt32BE(0) !== 1) errors++
      else latencies[done++] = performance.now() - t0
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = (performance.now() - started) / 1000
  for (const s of sockets) s.close()
  const sorted = latencies.subarray(0, done).sort()
  const pct = (q: number): number => (done === 0 ? NaN : sorted[Math.min(done - 1, Math.floor(q * done))]!)
  return { target: o.url, announces: done, lost, errors, seconds, perSecond: done / seconds, p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: done ? sorted[done - 1]! : NaN }
}

/** Starts this file in `--serve <kind>` mode in a child process; resolves with its UDP URL. */
async function serveInChild(kind: 'upswarm' | 'reference', natsUrls: string[]): Promise<{ url: string; child: ChildProcess }> {
  const self = fileURLToPath(import.meta.url)
  const child = spawn(process.execPath, ['--import', 'tsx', self, '--serve', kind, '--nats', natsUrls.join(',')], { stdio: ['ignore', 'pipe', 'inherit'] })
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith('READY ')) return { url: JSON.parse(line.slice(6)).trackerUdp as string, child }
    if (line.startsWith('UNAVAILABLE ')) throw new Error(line.slice(12))
  }
  throw new Error(`${kind} tracker exited before it was ready`)
}

/** Child mode: run one tracker until SIGTERM. */
async function serve(kind: string, nats: string | undefined): Promise<void> {
  if (kind === 'upswarm') {
    const { connectNats } = await import('../infra/nats/connect.ts')
    const { startTracker } = await import('../actors/tracker/index.ts')
    const nc = await connectNats(nats, 'upswarm-bench-tracker')
    const tracker = await startTracker({ nc, id: 'bench', rateLimit: false })
    process.stdout.write(`READY ${JSON.stringify({ trackerUdp: tracker.udpUrl })}\n`)
    await new Promise((resolve) => process.once('SIGTERM', resolve))
    await tracker.close()
    await nc.close()
    return
  }
  // >>> bittorrent-tracker comparison ------------------------------------------------------------
  // The reference server: the `bittorrent-tracker` npm package, bound to 127.0.0.1 only. It is not
  // a dependency of upswarm (its WebRTC dependency does not build offline; see docs/tracker.md for
  // the npm `overrides` stub that makes it installable). When it is installed this runs it; when
  // it is not, the comparison is reported as skipped.
  const moduleName = 'bittorrent-tracker'
  let Server: new (o: object) => ReferenceServer
  try {
    ;({ Server } = (await import(moduleName)) as { Server: new (o: object) => ReferenceServer })
  } catch {
    process.stdout.write('UNAVAILABLE the bittorrent-tracker package is not installed\n')
    return
  }
  const server = new Server({ udp: true, http: false, ws: false, stats: false })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, { udp4: '127.0.0.1' }, () => resolve())
  })
  const udp = server.udp4 ?? server.udp
  process.stdout.write(`READY ${JSON.stringify({ trackerUdp: `udp://127.0.0.1:${udp!.address().port}` })}\n`)
  await new Promise((resolve) => process.once('SIGTERM', resolve))
  server.close()
  // <<< bittorrent-tracker comparison ------------------------------------------------------------
}

interface ReferenceServer {
  udp4?: { address(): { port: number } }
  udp?: { address(): { port: number } }
  once(event: 'error', fn: (err: Error) => void): void
  listen(port: number, hostname: object, cb: () => void): void
  close(): void
}

function report(name: string, r: LoadResult): void {
  process.stdout.write(
    `${name.padEnd(20)} ${r.perSecond.toFixed(0).padStart(8)} announces/s   p50 ${r.p50Ms.toFixed(2)} ms   p99 ${r.p99Ms.toFixed(2)} ms   max ${r.maxMs.toFixed(1)} ms   ` +
      `(${r.announces} answered, ${r.lost} lost, ${r.errors} errors, ${r.seconds.toFixed(2)} s)\n`,
  )
}

/** Entry for `npm run bench -- tracker` and for running this file directly. */
export async function runTrackerBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      serve: { type: 'string' },
      target: { type: 'string' },
      nats: { type: 'string' },
      'nats-nodes': { type: 'string', default: '3' },
      peers: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '3' },
      swarms: { type: 'string', default: '100' },
      sockets: { type: 'string', default: '8' },
      concurrency: { type: 'string', default: '256' },
      'skip-reference': { type: 'boolean', default: false },
    },
    allowPositionals: true,
  })
  if (values.serve) return serve(values.serve, values.nats)
  const load = {
    peers: Number(values.peers),
    rounds: Number(values.rounds),
    swarms: Number(values.swarms),
    sockets: Number(values.sockets),
    concurrency: Number(values.concurrency),
  }
  process.stdout.write(`tracker bench: ${load.peers} peers × ${load.rounds} announces, ${load.swarms} swarms, ${load.sockets} sockets, ${load.concurrency} in flight\n`)
  if (values.target) return report(values.target, await udpLoad({ url: values.target, ...load }))

  let cluster: { urls: string[]; stop(): Promise<void> } | undefined
  let dir: string | undefined
  const children: ChildProcess[] = []
  try {
    let natsUrls = values.nats?.split(',')
    if (!natsUrls) {
      const { NatsCluster } = await import('../infra/cluster/nats-cluster.ts')
      dir = await mkdtemp(join(tmpdir(), 'upswarm-bench-'))
      cluster = await NatsCluster.start({ dir, nodes: Number(values['nats-nodes']) })
      natsUrls = cluster.urls
    }
    const ours = await serveInChild('upswarm', natsUrls)
    children.push(ours.child)
    report('upswarm tracker', await udpLoad({ url: ours.url, ...load }))
    if (values['skip-reference']) return
    let reference: { url: string; child: ChildProcess }
    try {
      reference = await serveInChild('reference', natsUrls)
    } catch (err) {
      process.stdout.write(`bittorrent-tracker     skipped: ${(err as Error).message} (see docs/tracker.md, "Benchmark")\n`)
      return
    }
    children.push(reference.child)
    report('bittorrent-tracker', await udpLoad({ url: reference.url, ...load }))
  } finally {
    for (const c of children) {
      c.kill('SIGTERM')
      if (c.exitCode === null) await new Promise((resolve) => c.once('exit', resolve))
    }
    await cluster?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runTrackerBench(process.argv.slice(2))
}
