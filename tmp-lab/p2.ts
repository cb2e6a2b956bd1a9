import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { publish } from '../actors/publisher/publish.ts'
import { Authority } from '../infra/auth/authority.ts'
import { NatsCluster } from '../infra/cluster/nats-cluster.ts'
import { appendRoot } from '../infra/formats/meta-stream.ts'
import { rootBody, rootText, signRoot } from '../infra/formats/root.ts'
import { connectNats } from '../infra/nats/connect.ts'
import { ensureResources, openRepository } from '../infra/nats/resources.ts'
import { generatePublisherKey } from '../infra/release/keys.ts'
import { readPackIndex } from '../infra/formats/pack-objects.ts'
import { newestRelease2 } from '../infra/formats/release-stream.ts'
const files = Number(process.argv[2] ?? 20000)
const dir = await mkdtemp(join(tmpdir(), 'lab-p2-'))
const authority = await Authority.open(join(dir, 'auth'))
const cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes: Number(process.env.NODES ?? 1), authority })
const connect = async (kind: 'admin' | 'publisher') => connectNats(cluster.urls, `lab-${kind}`, { creds: (await authority.issue({ kind, name: kind })).file, tlsCa: authority.paths.caFile })
const admin = await connect('admin'); const nc = await connect('publisher')
await ensureResources(admin, Number(process.env.NODES ?? 1))
const rootKey = generatePublisherKey(); const key = generatePublisherKey(); const product = crypto.randomUUID()
const body = rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey], products: { [product]: { publish: [key.publicKey] } } }) as any
body.products[product].formats = [2]
await appendRoot(admin, rootText(signRoot(body, [rootKey])))
const src = join(dir, 'src')
for (let i = 0; i < files; i++) { const d = join(src, `d${Math.floor(i / 10000)}`, `d${Math.floor(i / 100) % 100}`); if (i % 100 === 0) await mkdir(d, { recursive: true }); await writeFile(join(d, `f${i % 100}.bin`), randomBytes(200 + ((i * 2654435761) % 3900))) }
for (const round of [1, 2]) {
  const t0 = performance.now(); let last = ''
  const r = await publish({ nc, src, product, key, skipFeed: true, onProgress: (p) => { if (p.phase !== last) { console.log(`  ${((performance.now() - t0) / 1000).toFixed(2)} s: ${p.phase}`); last = p.phase } } })
  console.log(`round ${round}: ${((performance.now() - t0) / 1000).toFixed(2)} s unchanged=${r.unchanged}`)
}
const { blobs: os } = await openRepository(nc)
let t = performance.now()
const s2 = await newestRelease2(nc, product, { leader: true })
const idx = await readPackIndex(os, s2!.signed.release.packs)
console.log(`readPackIndex ${idx.refs.size} packs ${idx.unitPack.size} units ${(performance.now() - t).toFixed(0)} ms`)
await nc.close(); await admin.close(); await cluster.stop(); await rm(dir, { recursive: true, force: true })
