// Single-source throughput (issue 7, benchmark 4): one client, one repository server, files of
// random bytes; K = 1, 4, 8 concurrent range requests with RepoClient.fetchBlob (what
// serverSource, and so `upswarm update` without peers, uses: 1 MiB NATS range requests to the
// server the proxy assigns, each piece hash-checked, the blob re-hashed and fsynced on commit),
// side by side with `aria2c -x K -s K` (checksum-verified) and `curl` (one connection, no
// verification) from the proxy's HTTP gateway. Files are fetched one after another by every tool.
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { RepoClient } from '../infra/repo-client.ts'
import { fileEntries } from '../infra/release/manifest.ts'
import { BlobStore } from '../infra/store/blob-store.ts'
import { startRepo, timed, type Repo } from './lib/cluster.ts'
import { profileSelf, withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { MiB, progress, round, startRecording, type BenchResult, type Cell, type CommonOptions } from './lib/report.ts'
import { barChart } from './lib/svg.ts'

export interface ThroughputBenchOptions extends CommonOptions {
  mib: number
  fileMiB: number
  ks: number[]
}

export const THROUGHPUT_DEFAULTS: ThroughputBenchOptions = { mib: 256, fileMiB: 32, ks: [1, 4, 8] }

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
  try {
    const src = join(work, 'src')
    await mkdir(src, { recursive: true })
    const count = Math.max(1, Math.round(o.mib / o.fileMiB))
    for (let i = 0; i < count; i++) await randomFile(join(src, `blob${String(i).padStart(3, '0')}.bin`), o.fileMiB * MiB)
    const total = count * o.fileMiB * MiB
    log(`${count} files × ${o.fileMiB} MiB written; starting the repository (1 server) and publishing`)
    repo = await withCpuProfiles(o.profile && join(o.profile, 'cluster'), () => startRepo({ dir: join(work, 'cluster'), servers: 1 }))
    let t = performance.now()
    const pub = await repo.publish(src, 'r1')
    const publishS = (performance.now() - t) / 1000
    t = performance.now()
    await repo.synced(pub.rev, 600_000)
    const syncS = (performance.now() - t) / 1000
    log(`published in ${publishS.toFixed(1)} s (${(total / MiB / publishS).toFixed(1)} MiB/s into the object store), server synced ${syncS.toFixed(1)} s later`)
    const entries = fileEntries(pub.release!.manifest)
    const gateway = repo.launched.endpoints.http!
    const url = (path: string): string => `${gateway}/v1/products/${repo!.product}/revs/${pub.rev}/files/${path.split('/').map(encodeURIComponent).join('/')}`
    const client = new RepoClient(repo.nc, 30_000)
    const out = join(work, 'out')

    const upswarmRun = async (k: number): Promise<number> => {
      const store = new BlobStore(join(out, `store-${k}`))
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
    const curlS = await curlRun()
    log(`curl: ${mibps(curlS)} MiB/s`)
    for (const k of o.ks) {
      const us = await upswarmRun(k)
      const ar = await aria2Run(k)
      log(`K=${k}: upswarm ${mibps(us)} MiB/s, aria2c ${mibps(ar)} MiB/s`)
      rows.push({ K: k, 'upswarm fetchBlob MiB/s': mibps(us), 'aria2c -x K MiB/s': mibps(ar), 'curl MiB/s': k === 1 ? mibps(curlS) : null, 'upswarm / aria2c': round(ar / us, 3) })
    }
    const svg = barChart([{
      title: `One client, one server: ${(total / MiB).toFixed(0)} MiB in ${count} files`,
      yLabel: 'MiB/s',
      groups: o.ks.map((k) => `K = ${k}`),
      series: [
        { name: 'upswarm RepoClient.fetchBlob (NATS ranges)', values: rows.map((r) => r['upswarm fetchBlob MiB/s'] as number) },
        { name: 'aria2c -x K (HTTP gateway)', values: rows.map((r) => r['aria2c -x K MiB/s'] as number) },
        { name: 'curl, 1 connection (HTTP gateway)', values: rows.map((r) => r['curl MiB/s'] as number | null) },
      ],
    }], `no upload cap; publish ${(total / MiB / publishS).toFixed(1)} MiB/s into the object store; 127.0.0.1`)
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
      columns: ['K', 'upswarm fetchBlob MiB/s', 'aria2c -x K MiB/s', 'curl MiB/s', 'upswarm / aria2c'],
      rows,
      goals: [],
      notes: [
        'upswarm: each 1 MiB range is one NATS request/reply to the assigned server, SHA-256-checked per piece; the blob is re-hashed and fsynced when committed.',
        'aria2c and curl read the proxy\'s HTTP gateway, which itself reads the server through NATS (4 pipelined 1 MiB ranges per HTTP request). aria2c verifies each file\'s SHA-256; curl does not verify.',
      ],
    }, svg)
  } finally {
    await repo?.stop()
    if (!o.keep) await rm(work, { recursive: true, force: true })
  }
}
