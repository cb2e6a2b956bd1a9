// A format-2-only publish of a tree past the format-1 cap (issue 13 item 3; docs/formats.md §5
// step 4): N small files (default 100 000: over the ~40 000 files a format-1 manifest can hold),
// published by the publisher's own code under a root whose `formats` is [2], on a cluster with
// credentials and TLS. Measures the first publish (scan and chunk in one read pass, blobs and tree
// nodes uploaded, the signed release appended) and an unchanged second one.
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
import { ensureResources } from '../infra/nats/resources.ts'
import { generatePublisherKey } from '../infra/release/keys.ts'
import { MiB, progress, round, startRecording, type BenchResult, type CommonOptions } from './lib/report.ts'

export interface Publish2BenchOptions extends CommonOptions {
  files: number
}
export const PUBLISH2_DEFAULTS: Publish2BenchOptions = { files: 100_000 }

/** The tree: FAN files per directory, FAN directories per parent, 200 B … 4 KiB each (random bytes). */
const FAN = 100

async function writeTree(root: string, files: number): Promise<number> {
  let bytes = 0
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${Math.floor(i / FAN / FAN)}`, `d${Math.floor(i / FAN) % FAN}`)
    if (i % FAN === 0) await mkdir(dir, { recursive: true })
    const data = randomBytes(200 + ((i * 2654435761) % 3900))
    await writeFile(join(dir, `f${i % FAN}.bin`), data)
    bytes += data.length
  }
  return bytes
}

export async function runPublish2Bench(o: Publish2BenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('publish2', rec.startedAt)
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-bench-publish2-'))
  let cluster: NatsCluster | undefined
  try {
    const authority = await Authority.open(join(dir, 'auth'))
    cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes: 1, authority })
    const connect = async (kind: 'admin' | 'publisher') =>
      connectNats(cluster!.urls, `bench-${kind}`, { creds: (await authority.issue({ kind, name: kind })).file, tlsCa: authority.paths.caFile })
    const admin = await connect('admin')
    const publisherNc = await connect('publisher')
    await ensureResources(admin, 1)
    const rootKey = generatePublisherKey()
    const key = generatePublisherKey()
    const product = crypto.randomUUID()
    const body = rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey], products: { [product]: { publish: [key.publicKey] } } }) as { products: Record<string, { formats: number[] }> }
    body.products[product]!.formats = [2]
    await appendRoot(admin, rootText(signRoot(body, [rootKey])))

    const src = join(dir, 'src')
    let t = performance.now()
    const bytes = await writeTree(src, o.files)
    log(`wrote ${o.files} files (${(bytes / MiB).toFixed(1)} MiB) in ${((performance.now() - t) / 1000).toFixed(1)} s`)

    t = performance.now()
    const first = await publish({ nc: publisherNc, src, product, key, skipFeed: true })
    const firstS = (performance.now() - t) / 1000
    log(`first publish: r${first.rev}, ${first.release2!.nodes} nodes, ${firstS.toFixed(1)} s`)
    t = performance.now()
    const again = await publish({ nc: publisherNc, src, product, key, skipFeed: true })
    const againS = (performance.now() - t) / 1000
    log(`unchanged publish: ${again.unchanged ? 'unchanged' : 'CHANGED'}, ${againS.toFixed(1)} s`)
    await publisherNc.close()
    await admin.close()
    return rec.finish({
      name: 'publish2',
      title: 'Format-2-only publish of a tree past the format-1 cap',
      parameters: { ...o, fan: FAN, natsNodes: 1 },
      columns: ['files', 'MiB', 'tree nodes', 'first publish s', 'files/s', 'unchanged publish s', 'format 1'],
      rows: [{
        files: o.files, MiB: round(bytes / MiB, 3), 'tree nodes': first.release2!.nodes, 'first publish s': round(firstS, 3),
        'files/s': Math.round(o.files / firstS), 'unchanged publish s': round(againS, 3), 'format 1': first.manifestSha256 === null ? 'not written' : 'written',
      }],
      goals: [{
        goal: `a release of ${o.files} files publishes in format 2 only (no 40 000-file cap)`,
        met: first.release2 !== undefined && first.manifestSha256 === null && again.unchanged,
        detail: `r${first.rev}: ${first.release2?.nodes} nodes; the unchanged publish appended nothing`,
      }],
      notes: [
        'One nats-server node with credentials and TLS (R1); every file is its own object of upswarm-blobs (packing is issue 13 item 4), each looked up before upload.',
        'first publish: scan (SHA-1, SHA-256, pieces and FastCDC chunks in one read pass), blob and node uploads, the signed format-2 release appended.',
      ],
    })
  } finally {
    await cluster?.stop()
    if (!o.keep) await rm(dir, { recursive: true, force: true })
  }
}
