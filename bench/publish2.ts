// A format-2-only publish of a tree past the format-1 cap (issue 13 items 3, 4; docs/formats.md §5
// step 4, §1.9): N small files (default 100 000: over the ~40 000 files a format-1 manifest can
// hold), published by the publisher's own code under a root whose `formats` is [2], on a
// three-node cluster with credentials and TLS whose object store keeps 3 replicas, and synced by
// three repository servers. Measures the first publish (scan and chunk in one read pass, small
// files packed, tree nodes uploaded, the signed release appended), the time until every server
// holds the release (verified, unit by unit), an unchanged second publish, and beside them
// `git add -A && git commit` of the same tree.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { publish } from '../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../actors/repo-server/index.ts'
import { TrustStore } from '../infra/release/trust.ts'
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
  /** NATS nodes (and object store replicas); default 3. */
  nodes?: number
  /** Repository servers that sync the release; default 3. */
  servers?: number
}
export const PUBLISH2_DEFAULTS: Publish2BenchOptions = { files: 100_000 }

/** `git add -A && git commit` of `src` into a repository of its own: seconds. */
async function gitCommit(src: string, gitDir: string): Promise<number> {
  const env = { ...process.env, GIT_DIR: gitDir, GIT_WORK_TREE: src, GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'bench@localhost', GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'bench@localhost' }
  const run = (args: string[]): Promise<void> => new Promise((resolve, reject) => {
    execFile('git', args, { env, maxBuffer: 64 * MiB }, (err) => (err ? reject(err) : resolve()))
  })
  await run(['init', '-q'])
  // No background `gc --auto` after the commit (it would still be writing when the bench cleans up).
  await run(['config', 'gc.auto', '0'])
  const t = performance.now()
  await run(['add', '-A'])
  await run(['commit', '-q', '-m', 'bench'])
  return (performance.now() - t) / 1000
}

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
  const servers: RepoServer[] = []
  const nodes = o.nodes ?? 3
  const serverCount = o.servers ?? 3
  try {
    const authority = await Authority.open(join(dir, 'auth'))
    cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes, authority })
    const connect = async (kind: 'admin' | 'publisher' | 'server', name: string = kind) =>
      connectNats(cluster!.urls, `bench-${name}`, { creds: (await authority.issue({ kind, name })).file, tlsCa: authority.paths.caFile })
    const admin = await connect('admin')
    const publisherNc = await connect('publisher')
    await ensureResources(admin, nodes)
    const rootKey = generatePublisherKey()
    const key = generatePublisherKey()
    const product = crypto.randomUUID()
    const body = rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey], products: { [product]: { publish: [key.publicKey] } } }) as { products: Record<string, { formats: number[] }> }
    body.products[product]!.formats = [2]
    const root = signRoot(body, [rootKey])
    await appendRoot(admin, rootText(root))
    const trustFile = join(dir, 'trust.json')
    await writeFile(trustFile, JSON.stringify({ format: 3, root: root.env }))
    for (let i = 0; i < serverCount; i++) {
      servers.push(await startRepoServer({ nc: await connect('server', `rs${i}`), id: `rs${i}`, dataDir: join(dir, `rs${i}`), trust: await new TrustStore(trustFile).ready(), log: () => {} }))
    }
    const synced = async (rev: number): Promise<number> => {
      const t0 = performance.now()
      while (!servers.every((s) => s.meta.store.synced[product] === rev)) {
        if (performance.now() - t0 > 30 * 60_000) throw new Error(`the servers did not sync r${rev} in 30 minutes`)
        await new Promise((r) => setTimeout(r, 50))
      }
      return performance.now()
    }

    const src = join(dir, 'src')
    let t = performance.now()
    const bytes = await writeTree(src, o.files)
    log(`wrote ${o.files} files (${(bytes / MiB).toFixed(1)} MiB) in ${((performance.now() - t) / 1000).toFixed(1)} s`)

    const gitS = await gitCommit(src, join(dir, 'git'))
    log(`git add -A && git commit: ${gitS.toFixed(1)} s`)

    t = performance.now()
    const first = await publish({ nc: publisherNc, src, product, key, skipFeed: true })
    const firstS = (performance.now() - t) / 1000
    log(`first publish: r${first.rev}, ${first.release2!.nodes} nodes, ${firstS.toFixed(1)} s`)
    const syncedS = ((await synced(first.rev)) - t) / 1000
    log(`${serverCount} servers synced r${first.rev} ${syncedS.toFixed(1)} s after the publish started`)
    t = performance.now()
    const again = await publish({ nc: publisherNc, src, product, key, skipFeed: true })
    const againS = (performance.now() - t) / 1000
    log(`unchanged publish: ${again.unchanged ? 'unchanged' : 'CHANGED'}, ${againS.toFixed(1)} s`)
    await publisherNc.close()
    await admin.close()
    return rec.finish({
      name: 'publish2',
      title: 'Format-2-only publish of a tree past the format-1 cap',
      parameters: { ...o, fan: FAN, natsNodes: nodes, servers: serverCount },
      columns: ['files', 'MiB', 'tree nodes', 'first publish s', 'files/s', 'servers synced s', 'unchanged publish s', 'git add+commit s', 'publish / git'],
      rows: [{
        files: o.files, MiB: round(bytes / MiB, 3), 'tree nodes': first.release2!.nodes, 'first publish s': round(firstS, 3),
        'files/s': Math.round(o.files / firstS), 'servers synced s': round(syncedS, 3), 'unchanged publish s': round(againS, 3),
        'git add+commit s': round(gitS, 3), 'publish / git': round(firstS / gitS, 3),
      }],
      goals: [{
        goal: `a release of ${o.files} files publishes in format 2 only (no 40 000-file cap)`,
        met: first.release2 !== undefined && first.manifestSha256 === null && again.unchanged,
        detail: `r${first.rev}: ${first.release2?.nodes} nodes; the unchanged publish appended nothing`,
      }, {
        goal: `published into the replicated store and synced by ${serverCount} servers well under a minute (issue 13 item 4)`,
        met: syncedS < 45,
        detail: `${syncedS.toFixed(1)} s from the start of the publish until every server held r${first.rev} (publish ${firstS.toFixed(1)} s; git add -A && git commit ${gitS.toFixed(1)} s)`,
      }],
      notes: [
        `${nodes} nats-server node(s) with credentials and TLS, object store with ${nodes} replica(s); ${serverCount} repository servers in this process.`,
        'first publish: scan (SHA-1, SHA-256, pieces and FastCDC chunks in one read pass), small files packed (docs/formats.md §1.9), tree nodes uploaded, the signed format-2 release appended.',
        'servers synced: each server streams every pack once, checks its header against its id and every unit against its name, keeps it whole; walks the tree; reports the release synced.',
        'git: `git add -A && git commit` of the same tree into a fresh repository (loose objects, zlib), run before the publish.',
      ],
    })
  } finally {
    for (const s of servers) await s.close().catch(() => {})
    await cluster?.stop()
    if (!o.keep) await rm(dir, { recursive: true, force: true })
  }
}
