// Single-source throughput (issue 7, benchmark 4; issue 14 item 2): one client, one repository
// server, files of random bytes. The issue's figure: `upswarm update` (the CLI, as a user runs it)
// from r1 to the release that adds the files, against curl fetching the same files from Debian's
// nginx (1 connection, and 8 at once), each run after `sync` on a quiet disk; the update once with
// the servers' bulk port (HTTPS ranges, the default) and once over NATS alone (UPSWARM_BULK=0).
// Then RepoClient.fetchBlob alone with K = 1, 4, 8 ranges in flight (bulk port and NATS), beside
// `aria2c -x K -s K` (checksum-verified) and `curl` (one connection, no verification) from the
// proxy's HTTP gateway. Files are fetched one after another by fetchBlob, aria2c and curl.
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { RepoClient } from '../infra/repo-client.ts'
import { fileEntries } from '../infra/release/manifest.ts'
import { BlobStore } from '../infra/store/blob-store.ts'
import { quietDisk, startRepo, timed, upswarm, type Repo } from './lib/cluster.ts'
import { startCopyDaemon } from './lib/copy-daemon.ts'
import { curlMany, startNginx } from './lib/nginx.ts'
import { profileSelf, withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { MiB, median, progress, round, startRecording, type BenchResult, type Cell, type CommonOptions } from './lib/report.ts'
import { barChart } from './lib/svg.ts'

export interface ThroughputBenchOptions extends CommonOptions {
  mib: number
  fileMiB: number
  ks: number[]
  /**
   * Times each of curl from nginx and the update over the bulk port (cold, and with the copy's
   * daemon) is run: curl's best, the update's median. The same 256 MiB took curl 0.31–1.22 s
   * across runs here (this VM's cost of fresh memory and of the page cache moves).
   */
  rounds: number
}

export const THROUGHPUT_DEFAULTS: ThroughputBenchOptions = { mib: 256, fileMiB: 32, ks: [1, 4, 8], rounds: 3 }

async function randomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path)
  for (let left = bytes; left > 0; left -= 4 * MiB) {
    if (!out.write(randomBytes(Math.min(4 * MiB, left)))) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

export async function runThroughputBench(o: ThroughputBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('throughput', rec.startedAt)
  const work = await mkdtemp(join(tmpdir(), 'upswarm-bench-tput-'))
  let repo: Repo | undefined
  const copyDaemons: { stop(): Promise<void> }[] = []
  try {
    const src = join(work, 'src')
    await mkdir(src, { recursive: true })
    const count = Math.max(1, Math.round(o.mib / o.fileMiB))
    for (let i = 0; i < count; i++) await randomFile(join(src, `blob${String(i).padStart(3, '0')}.bin`), o.fileMiB * MiB)
    const total = count * o.fileMiB * MiB
    log(`${count} files × ${o.fileMiB} MiB written; starting the repository (1 server) and publishing`)
    repo = await withCpuProfiles(o.profile && join(o.profile, 'cluster'), () => startRepo({ dir: join(work, 'cluster'), servers: 1 }))
    // r1 holds one small file; working copies at r1 take the files as an update to r2.
    const first = join(work, 'r1')
    await mkdir(first, { recursive: true })
    await writeFile(join(first, 'readme.txt'), 'r1\n')
    const r1 = await repo.publish(first, 'r1')
    await repo.synced(r1.rev, 600_000)
    const rounds = Math.max(1, o.rounds)
    const each = (name: string): string[] => Array.from({ length: rounds }, (_, i) => join(work, `${name}-${i + 1}`))
    const copies = { bulk: each('wc-bulk'), nats: [join(work, 'wc-nats')], daemon: each('wc-daemon') }
    for (const wc of Object.values(copies).flat()) await upswarm(['init', wc, '--product', repo.product, ...repo.pinArgs, '--json'], repo.env)
    // The daemon copies' sharing daemons run, as on every machine of a fleet: their `update` is the daemon's run.
    for (const wc of copies.daemon) copyDaemons.push(await startCopyDaemon(wc, repo.env))
    await writeFile(join(src, 'readme.txt'), 'r1\n')
    let t = performance.now()
    const pub = await repo.publish(src, 'r2')
    const publishS = (performance.now() - t) / 1000
    t = performance.now()
    await repo.synced(pub.rev, 600_000)
    const syncS = (performance.now() - t) / 1000
    log(`published in ${publishS.toFixed(1)} s (${(total / MiB / publishS).toFixed(1)} MiB/s into the object store), server synced ${syncS.toFixed(1)} s later`)
    const entries = fileEntries(pub.release!.manifest).filter((e) => e.path !== 'readme.txt')
    const gateway = repo.launched.endpoints.http!
    const url = (path: string): string => `${gateway}/v1/products/${repo!.product}/revs/${pub.rev}/files/${path.split('/').map(encodeURIComponent).join('/')}`
    const clients = { bulk: new RepoClient(repo.nc, 30_000, { bulk: true }), nats: new RepoClient(repo.nc, 30_000, { bulk: false }) }
    const out = join(work, 'out')

    const upswarmRun = async (k: number, bulk: boolean): Promise<number> => {
      const store = new BlobStore(join(out, `store-${k}`))
      const client = clients[bulk ? 'bulk' : 'nats']
      const t0 = performance.now()
      await profileSelf(o.profile && join(o.profile, 'client'), `k${k}`, async () => {
        for (const e of entries) await client.fetchBlob(repo!.product, e, store, { threads: k })
      })
      const s = (performance.now() - t0) / 1000
      await rm(out, { recursive: true, force: true })
      return s
    }
    const aria2Run = async (k: number): Promise<number> => {
      const input = join(work, 'aria2-input.txt')
      await writeFile(input, entries.map((e) => `${url(e.path)}\n  out=${e.path}\n  checksum=sha-256=${e.sha256}\n`).join(''))
      const r = await timed('aria2c', [
        '-x', String(k), '-s', String(k), '-k', '1M', '-j', '1', '--file-allocation=none', '--allow-overwrite=true',
        '--auto-file-renaming=false', '--console-log-level=warn', '--summary-interval=0', '--download-result=hide',
        '-d', out, '-i', input,
      ])
      await rm(out, { recursive: true, force: true })
      return r.ms / 1000
    }
    const curlRun = async (): Promise<number> => {
      await mkdir(out, { recursive: true })
      const r = await timed('curl', ['-sS', '--fail', ...entries.flatMap((e) => ['-o', join(out, e.path), url(e.path)])])
      await rm(out, { recursive: true, force: true })
      return r.ms / 1000
    }

    const mibps = (s: number): number => round(total / MiB / s)
    const rows: Record<string, Cell>[] = []
    const row = (way: string, seconds: number, k: number | null = null): void => {
      rows.push({ way, K: k, s: round(seconds, 3), 'MiB/s': mibps(seconds) })
      log(`${way}${k === null ? '' : ` K=${k}`}: ${seconds.toFixed(2)} s, ${mibps(seconds)} MiB/s`)
    }
    // The issue's anchor: curl from nginx on the same files, the best of every run of 1 connection and 8 at once.
    const nginx = await startNginx(src)
    let curlNginx: number
    try {
      const paths = entries.map((e) => e.path)
      const best = { one: Infinity, eight: Infinity }
      for (let i = 0; i < rounds; i++) {
        await quietDisk()
        best.one = Math.min(best.one, (await curlMany(nginx.url, paths, join(work, 'curl1'), 1)) / 1000)
        await quietDisk()
        best.eight = Math.min(best.eight, (await curlMany(nginx.url, paths, join(work, 'curl8'), 8)) / 1000)
        await rm(join(work, 'curl1'), { recursive: true, force: true })
        await rm(join(work, 'curl8'), { recursive: true, force: true })
      }
      row(`curl from nginx, 1 connection${rounds > 1 ? `, best of ${rounds}` : ''}`, best.one)
      row(`curl from nginx, 8 at once${rounds > 1 ? `, best of ${rounds}` : ''}`, best.eight)
      curlNginx = Math.min(best.one, best.eight)
    } finally {
      await nginx.stop()
    }
    /** `upswarm update` of each copy in turn (each its own r1 → r2), after `sync`: the median. */
    const updateAll = async (wcs: string[], env: NodeJS.ProcessEnv, what: string, profile?: string): Promise<number> => {
      const times: number[] = []
      for (const wc of wcs) {
        await quietDisk()
        const r = await withCpuProfiles(profile, () => upswarm(['update', wc, '--json'], env))
        const got = JSON.parse(r.stdout) as { to: number; bytesFromServers: number; uploadedBytes?: number }
        if (got.to !== pub.rev || got.bytesFromServers < total || (what === 'daemon') !== (got.uploadedBytes !== undefined)) throw new Error(`upswarm update (${what}) did not fetch the release as asked: ${r.stdout.slice(0, 300)}`)
        times.push(r.ms / 1000)
      }
      return median(times)
    }
    const suffix = rounds > 1 ? `, median of ${rounds}` : ''
    const updates: Record<'bulk' | 'nats', number> = {
      bulk: await updateAll(copies.bulk, { ...repo.env, UPSWARM_BULK: '1' }, 'bulk', o.profile && join(o.profile, 'update-bulk')),
      nats: await updateAll(copies.nats, { ...repo.env, UPSWARM_BULK: '0' }, 'nats', o.profile && join(o.profile, 'update-nats')),
    }
    row(`upswarm update (CLI), bulk port${suffix}`, updates.bulk)
    row('upswarm update (CLI), NATS only', updates.nats)
    const daemonS = await updateAll(copies.daemon, repo.env, 'daemon')
    row(`upswarm update (CLI), the copy's daemon running, bulk port${suffix}`, daemonS)
    for (const d of copyDaemons.splice(0)) await d.stop()
    const curlGateway = await curlRun()
    row('curl from the HTTP gateway, 1 connection', curlGateway)
    const fetchRows: { k: number; bulk: number; nats: number; aria2c: number }[] = []
    for (const k of o.ks) {
      await quietDisk()
      const bulk = await upswarmRun(k, true)
      await quietDisk()
      const nats = await upswarmRun(k, false)
      const aria2c = await aria2Run(k)
      row('RepoClient.fetchBlob, bulk port', bulk, k)
      row('RepoClient.fetchBlob, NATS only', nats, k)
      row('aria2c -x K from the HTTP gateway', aria2c, k)
      fetchRows.push({ k, bulk, nats, aria2c })
    }
    const speed = curlNginx / updates.bulk
    const svg = barChart([{
      title: `One client, one server: ${(total / MiB).toFixed(0)} MiB in ${count} files`,
      yLabel: 'MiB/s',
      groups: ['update (CLI) / curl from nginx', ...o.ks.map((k) => `fetchBlob, K = ${k}`)],
      series: [
        { name: 'upswarm, bulk port (HTTPS ranges)', values: [mibps(updates.bulk), ...fetchRows.map((r) => mibps(r.bulk))] },
        { name: 'upswarm, NATS ranges only', values: [mibps(updates.nats), ...fetchRows.map((r) => mibps(r.nats))] },
        { name: 'curl from nginx (best of 1 and 8 connections) / aria2c -x K from the gateway', values: [mibps(curlNginx), ...fetchRows.map((r) => mibps(r.aria2c))] },
      ],
    }], `no upload cap; 127.0.0.1; update = the whole CLI run (start, connect, plan, fetch, verify, write, fsync)`)
    if (o.profile) {
      // The repository's processes write their profiles when they exit.
      await repo.stop()
      repo = undefined
      await writeProfileReport('throughput', o.profile, [{ dir: join(o.profile, 'client'), merge: false }, { dir: join(o.profile, 'cluster'), merge: false }], o.resultsDir)
    }
    return await rec.finish({
      name: 'throughput',
      title: `Single-source throughput: ${(total / MiB).toFixed(0)} MiB, ${count} files, one server`,
      parameters: { ...o, files: count, bytes: total, publishSeconds: round(publishS), serverSyncSeconds: round(syncS) },
      columns: ['way', 'K', 's', 'MiB/s'],
      rows,
      goals: [{
        goal: '`upswarm update` from a single server at ≥ 0.8× what curl gets from nginx for the same bytes (issue 14 item 2)',
        met: speed >= 0.8,
        detail: `${speed.toFixed(2)}× (update ${updates.bulk.toFixed(2)} s over the bulk port, ${updates.nats.toFixed(2)} s over NATS only; curl from nginx ${curlNginx.toFixed(2)} s)`,
      }, {
        goal: '`upswarm update` with the copy\'s sharing daemon running (it takes the run), from a single server, at ≥ 0.8× what curl gets from nginx',
        met: curlNginx / daemonS >= 0.8,
        detail: `${(curlNginx / daemonS).toFixed(2)}× (${daemonS.toFixed(2)} s against curl's ${curlNginx.toFixed(2)} s)`,
      }],
      notes: [
        'upswarm update: the CLI (node + dist/) from r1 to r2, which adds the files: start, NATS connect (TLS, credentials), plan, ranges of 1 MiB from the assigned server (4 files at once, 4 ranges per file), SHA-256 and SHA-1 of each file taken as its pieces arrive, the blob written once, into the history store, and hard-linked as the working copy\'s file, fsynced, renamed by the journal (bytes received over the bulk port by the client\'s own TLS connections, each decrypting into one reused buffer). Bulk port: ranges over HTTPS from the server (its self-signed certificate pinned from its NATS offer); NATS only: UPSWARM_BULK=0, each range a NATS request/reply through the cluster.',
        'rounds: curl from nginx is run that many times (its best kept), and the update over the bulk port, cold and with the daemon, on that many copies at r1 in turn (its median kept); NATS only once.',
        'the copy\'s daemon running: copies at r1, each with `upswarm daemon DIR` beside it (no peers: it fetches from the server alone); `upswarm update DIR` hands it the run over the copy\'s control socket (no node start-up, NATS connection or module loading of the command\'s own in the update).',
        'curl from nginx: Debian\'s nginx serving the same files on 127.0.0.1, curl writing them with no verification and no fsync; each timed run starts after `sync` on a quiet disk.',
        'fetchBlob: RepoClient.fetchBlob alone, in the bench\'s process, K ranges in flight per file. aria2c and curl from the gateway read the proxy\'s HTTP gateway, which itself reads the server through NATS (4 pipelined 1 MiB ranges per HTTP request); aria2c verifies each file\'s SHA-256, curl does not.',
      ],
    }, svg)
  } finally {
    for (const d of copyDaemons.splice(0)) await d.stop()
    await repo?.stop()
    if (!o.keep) await rm(work, { recursive: true, force: true })
  }
}
