// A repository without the swarm parts, for the benchmarks that measure the server path alone
// (incremental update, single-source throughput): `up` with NATS, servers and the proxy, a
// publisher key, and the `upswarm` CLI run as a user would, with an environment that names no
// tracker and no DHT (so `upswarm update` takes the server source).
import { existsSync, readFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { deploymentEnv, up, type Launched } from '../../actors/launcher/index.ts'
import { publish, type PublishResult } from '../../actors/publisher/publish.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { generatePublisherKey, type PublisherKey } from '../../infra/release/keys.ts'

export const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

export interface Repo {
  launched: Launched
  nc: NatsConnection
  product: string
  key: PublisherKey
  /** What `upswarm init` pins: `--root D/root.json` when the product is in the root (`formats`), else `--pubkey KEY`. */
  pinArgs: string[]
  env: NodeJS.ProcessEnv
  publish(src: string, label?: string): Promise<PublishResult>
  /** Resolves when every server of the pool has synced `rev`. */
  synced(rev: number, timeoutMs?: number): Promise<void>
  /** Bytes the NATS nodes sent to client connections named `name` that have closed since `since`. */
  closedConnectionBytes(name: string): Promise<{ outBytes: number; inBytes: number; connections: number }>
  /** Bytes the NATS nodes have sent so far to the open client connections named `name` (a daemon's). */
  openConnectionBytes(name: string): Promise<{ outBytes: number; inBytes: number; connections: number }>
  stop(): Promise<void>
}

export async function startRepo(opts: { dir: string; servers: number; serverMaxUploadRate?: number; formats?: number[] }): Promise<Repo> {
  const launched = await up({
    dir: opts.dir,
    roles: ['nats', 'servers', 'proxy'],
    natsNodes: 3,
    servers: opts.servers,
    ...(opts.serverMaxUploadRate ? { serverMaxUploadRate: opts.serverMaxUploadRate } : {}),
  })
  const ep = launched.endpoints
  const nc = await connectNats(ep.nats, 'upswarm-bench', { creds: ep.creds?.admin, tlsCa: ep.tlsCa })
  const publisherNc = await connectNats(ep.nats, 'upswarm-bench-publish', { creds: ep.creds?.publisher, tlsCa: ep.tlsCa })
  const product = crypto.randomUUID()
  const key = generatePublisherKey()
  // With `formats`, the product joins the deployment's root first (as `upswarm root edit --dir D
  // --add-product P --formats P=1,2` would): releases are then written in those formats and
  // clients pin the root.
  const rooted = !!(opts.formats && ep.root && ep.rootKey)
  if (rooted) {
    const { addProductToDeployment } = await import('../../actors/root-holder/index.ts')
    await addProductToDeployment(nc, { root: ep.root!, rootKey: ep.rootKey! }, product, key.publicKey, opts.formats)
  }
  const { UPSWARM_TRACKER: _t, UPSWARM_BOOTSTRAP: _b, ...rest } = process.env
  const env = { ...rest, ...deploymentEnv(ep) }
  const seenClosed = new Set<string>()
  const connectionBytes = async (name: string, state: 'open' | 'closed', skip: (id: string) => boolean): Promise<{ outBytes: number; inBytes: number; connections: number }> => {
    let outBytes = 0
    let inBytes = 0
    let connections = 0
    for (const node of launched.cluster!.nodes) {
      const res = await fetch(`http://127.0.0.1:${node.monitorPort}/connz?state=${state}&limit=10000`)
      const connz = (await res.json()) as { connections?: { cid: number; name?: string; out_bytes: number; in_bytes: number }[] }
      for (const c of connz.connections ?? []) {
        if (c.name !== name || skip(`${node.name}:${c.cid}`)) continue
        outBytes += c.out_bytes
        inBytes += c.in_bytes
        connections++
      }
    }
    return { outBytes, inBytes, connections }
  }
  return {
    launched, nc, product, key, env,
    pinArgs: rooted ? ['--root', ep.root!] : ['--pubkey', key.publicKey],
    publish: (src, label) => publish({ nc: publisherNc, src, product, key, ...(label ? { label } : {}), ...(ep.trust ? { trust: ep.trust } : {}), skipFeed: true }),
    async synced(rev, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs
      const { requestJson } = await import('../../infra/nats/service.ts')
      const { proxySubject } = await import('../../infra/nats/names.ts')
      for (;;) {
        const stats = await requestJson<{ servers: { healthy: boolean; synced: Record<string, number>; synced2?: Record<string, number> }[] }>(nc, proxySubject('stats'), {})
        // Format 2 is copied by its own consumer (and with the deltas): a client reads it once every server holds it.
        const has = (s: { synced: Record<string, number>; synced2?: Record<string, number> }): boolean =>
          (!(opts.formats ?? [1]).includes(1) || (s.synced[product] ?? 0) >= rev) && (!opts.formats?.includes(2) || (s.synced2?.[product] ?? 0) >= rev)
        if (stats.servers.length >= opts.servers && stats.servers.every(has)) return
        if (Date.now() > deadline) throw new Error(`servers did not sync r${rev} within ${timeoutMs} ms`)
        await new Promise((r) => setTimeout(r, 200))
      }
    },
    // A closed connection is counted once: `seenClosed` records those counted.
    closedConnectionBytes: (name) => connectionBytes(name, 'closed', (id) => seenClosed.has(id) || !seenClosed.add(id)),
    openConnectionBytes: (name) => connectionBytes(name, 'open', () => false),
    async stop() {
      await Promise.all([nc.close(), publisherNc.close()]).catch(() => {})
      await launched.stop()
    },
  }
}

export interface Timed {
  ms: number
  stdout: string
  stderr: string
  code: number
}

/** Runs a program to completion, timing it from spawn to exit. */
export async function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; allowFail?: boolean } = {}): Promise<Timed> {
  const t0 = performance.now()
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, ...(opts.cwd ? { cwd: opts.cwd } : {}) })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (c) => resolve(c ?? 1))
  })
  const ms = performance.now() - t0
  if (code !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ').slice(0, 200)} failed (exit ${code}): ${stderr.trim().slice(-1500)}`)
  return { ms, stdout, stderr, code }
}

/** Writes and discards completed on every block device (/proc/diskstats), or undefined where it cannot be read. */
function diskCounters(): number | undefined {
  try {
    let n = 0
    for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/)
      // Fields after the name: reads 1-4, writes 5-8 (5: completed), in flight, io ms, weighted ms, discards 12-15 (12: completed).
      if (f.length >= 14) n += Number(f[7]) + (f.length >= 18 ? Number(f[14]) : 0)
    }
    return n
  } catch {
    return undefined
  }
}

/**
 * `sync`, then waits (polling, `quietMs` at a time, `maxMs` at most) until no block device
 * completed a write or a discard for `quietMs`: a step timed after it does not pay for the
 * writeback or the online discards (an ext4 `discard` mount) of what was written or deleted
 * before. Returns the time waited.
 */
export async function quietDisk(quietMs = 2_000, maxMs = 60_000): Promise<number> {
  const t0 = performance.now()
  await timed('sync', [])
  let last = diskCounters()
  if (last === undefined) return performance.now() - t0
  while (performance.now() - t0 < maxMs) {
    await new Promise((resolve) => setTimeout(resolve, quietMs))
    const now = diskCounters()
    if (now === last) break
    last = now
  }
  return performance.now() - t0
}

/** `upswarm <args>` as a user runs it (node + the built CLI in dist/); profiled inside withCpuProfiles. */
export function upswarm(args: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  const { NODE_OPTIONS, UPSWARM_BENCH_CPU_PROF_DIR, UPSWARM_TIMINGS } = process.env
  const profiling = UPSWARM_BENCH_CPU_PROF_DIR ? { NODE_OPTIONS, UPSWARM_BENCH_CPU_PROF_DIR } : {}
  // UPSWARM_TIMINGS=1 npm run bench …: each CLI run's marks (infra/timings.ts) on the bench's stderr.
  const timings = UPSWARM_TIMINGS ? { UPSWARM_TIMINGS } : {}
  return timed(process.execPath, [CLI, ...args], { env: { ...env, ...profiling, ...timings } }).then((r) => {
    if (UPSWARM_TIMINGS) process.stderr.write(`upswarm ${args[0]}:\n${r.stderr.split('\n').filter((l) => l.startsWith('upswarm timings:')).join('\n')}\n`)
    return r
  })
}

/**
 * `upswarm ARGS` with its peak RSS, read by /usr/bin/time when the machine has it (null
 * otherwise, or while CPU-profiling: the profiler's environment goes through upswarm()).
 */
export async function upswarmWithPeak(args: string[], env: NodeJS.ProcessEnv): Promise<Timed & { peakMiB: number | null }> {
  if (!existsSync(TIME_TOOL) || process.env.UPSWARM_BENCH_CPU_PROF_DIR) return { ...(await upswarm(args, env)), peakMiB: null }
  const r = await timed(TIME_TOOL, ['-f', 'upswarm-peak-rss-kib %M', process.execPath, CLI, ...args], { env: { ...env, ...(process.env.UPSWARM_TIMINGS ? { UPSWARM_TIMINGS: '1' } : {}) } })
  const peak = /upswarm-peak-rss-kib (\d+)/.exec(r.stderr)
  return { ...r, peakMiB: peak ? Number(peak[1]) / 1024 : null }
}

const TIME_TOOL = '/usr/bin/time'

/** Median wall time of `upswarm --help` (node + the CLI's entry chunk), run one at a time. */
export async function cliStartupMs(env: NodeJS.ProcessEnv, runs = 3): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < runs; i++) times.push((await upswarm(['--help'], env)).ms)
  return times.sort((a, b) => a - b)[times.length >> 1]!
}
