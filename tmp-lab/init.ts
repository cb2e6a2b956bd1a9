import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRepo, upswarm } from '../bench/lib/cluster.ts'
import { withCpuProfiles } from '../bench/lib/cpu-profile.ts'
import { startNginx, curlMany } from '../bench/lib/nginx.ts'
import { readdirSync } from 'node:fs'
const files = Number(process.argv[2] ?? 20000)
const dir = await mkdtemp(join(tmpdir(), 'lab-init-'))
const r = await startRepo({ dir: join(dir, 'd'), servers: Number(process.env.SERVERS ?? 1), formats: [2] })
try {
  const src = join(dir, 'src')
  for (let i = 0; i < files; i++) { const d = join(src, `d${Math.floor(i / 10000)}`, `d${Math.floor(i / 100) % 100}`); if (i % 100 === 0) await mkdir(d, { recursive: true }); await writeFile(join(d, `f${i % 100}.bin`), randomBytes(200 + ((i * 2654435761) % 3900))) }
  let t = performance.now()
  const p = await r.publish(src)
  await r.synced(p.rev, 600_000)
  console.log(`published+synced ${((performance.now() - t) / 1000).toFixed(1)} s`)
  const res = await withCpuProfiles(process.env.PROF, () => upswarm(['init', join(dir, 'wc'), '--product', r.product, ...r.pinArgs, '--json'], r.env))
  console.log(`init ${(res.ms / 1000).toFixed(2)} s`, res.stdout.slice(-400))
  const ng = await startNginx(src)
  const paths: string[] = []
  for (const a of readdirSync(src)) for (const b of readdirSync(join(src, a))) for (const f of readdirSync(join(src, a, b))) paths.push(`${a}/${b}/${f}`)
  for (const par of [1, 8]) console.log(`curl parallel ${par}: ${((await curlMany(ng.url, paths, join(dir, `curl${par}`), par)) / 1000).toFixed(2)} s`)
  await ng.stop()
} finally { await r.stop(); await rm(dir, { recursive: true, force: true }) }
