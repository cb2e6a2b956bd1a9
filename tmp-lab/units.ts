import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { randomBytes, createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRepo } from '../bench/lib/cluster.ts'
import { RepoClient } from '../infra/repo-client.ts'
const files = Number(process.argv[2] ?? 20000)
const dir = await mkdtemp(join(tmpdir(), 'lab-units-'))
const r = await startRepo({ dir: join(dir, 'd'), servers: 1, formats: [2] })
try {
  const src = join(dir, 'src'); const hashes: string[] = []
  for (let i = 0; i < files; i++) { const d = join(src, `d${Math.floor(i / 10000)}`, `d${Math.floor(i / 100) % 100}`); if (i % 100 === 0) await mkdir(d, { recursive: true }); const b = randomBytes(200 + ((i * 2654435761) % 3900)); hashes.push(createHash('sha256').update(b).digest('hex')); await writeFile(join(d, `f${i % 100}.bin`), b) }
  const p = await r.publish(src); await r.synced(p.rev, 600_000)
  const reader = new RepoClient(r.nc).rangeReader(r.product)
  for (const batch of [256, 700]) {
    const t = performance.now(); let n = 0
    let next = 0
    await Promise.all(Array.from({ length: 4 }, async () => { while (next < hashes.length) { const g = hashes.slice(next, next + batch); next += batch; n += (await reader.readUnits(g)).size } }))
    console.log(`batch ${batch}: ${n} units in ${(performance.now() - t).toFixed(0)} ms`)
  }
} finally { await r.stop(); await rm(dir, { recursive: true, force: true }) }
