// Metadata a client fetches (issue 13 item 3; docs/formats.md §4, §5 step 6), measured on the
// wire: the updater's own check phase (RunSession.check: refresh, verify, and in format 2 the
// tree walk that fetches only the nodes it lacks) against a real NATS cluster with credentials and
// TLS, format 1 (the revision list and the whole signed manifest) vs format 2 (the signed release
// document and the tree nodes), for a first install, an update of 1% of the files, and a
// no-change check, at 10 000 and 100 000 files.
//
// Publishing 100 000 files through the object store took ~40 min here before packs (publish2 bench), so the
// revisions are built in-process (the publisher's tree builder and signers) and served by a
// stand-in for the proxy on `upswarm.proxy.{revs,manifest,meta,nodes}` that answers exactly the
// bytes a repository server would (a server re-serves documents and nodes as received; the proxy
// forwards its bytes). Bytes are counted where the client receives them (serverSource's `meta`).
// The file bytes that follow are not part of this figure (they are the same in both formats).
import { headers, type MsgHdrs } from '@nats-io/transport-node'
import { createHash, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serverSource } from '../actors/share-daemon/sources.ts'
import { RunSession } from '../actors/updater/run-session.ts'
import { silentLog } from '../actors/updater/session.ts'
import { Authority } from '../infra/auth/authority.ts'
import { NatsCluster } from '../infra/cluster/nats-cluster.ts'
import { encodeNodesReply, type NodesRequest } from '../infra/formats/meta-wire.ts'
import { DEFAULT_CHUNKER, signRelease } from '../infra/formats/release.ts'
import { rootBody, rootText, signRoot } from '../infra/formats/root.ts'
import { buildTree, type ScannedEntry } from '../infra/formats/tree-builder.ts'
import { connectNats, type NatsConnection } from '../infra/nats/connect.ts'
import { proxySubject } from '../infra/nats/names.ts'
import { ensureResources } from '../infra/nats/resources.ts'
import { generatePublisherKey } from '../infra/release/keys.ts'
import { encodeRelease, manifestSha256, signManifest, type Entry } from '../infra/release/manifest.ts'
import type { ReleaseSource } from '../infra/release/source.ts'
import { WorkingCopy } from '../infra/store/working-copy/working-copy.ts'
import { MiB, progress, round, startRecording, type BenchResult, type CommonOptions } from './lib/report.ts'

export interface MetaBenchOptions extends CommonOptions {
  sizes: number[]
}
export const META_DEFAULTS: MetaBenchOptions = { sizes: [10_000, 100_000] }

const FAN = 20
/** What one NATS message may carry here (`max_payload`), less room for headers: a bigger format-1 manifest cannot be served at all. */
const MAX_PAYLOAD = 8 * MiB - 64 * 1024
const DAY = 86_400_000

/** A deterministic tree of `files` files, FAN per leaf directory, FAN subdirectories per inner one (as bench/metadata.ts). */
function syntheticTree(files: number): ScannedEntry[] {
  const leaves = Math.ceil(files / FAN)
  const depth = Math.max(1, Math.ceil(Math.log(leaves) / Math.log(FAN)))
  const out: ScannedEntry[] = []
  const dirs = new Set<string>()
  const digit = (n: number): string => `d${String(n).padStart(2, '0')}`
  for (let leaf = 0; leaf < leaves; leaf++) {
    const parts: string[] = []
    for (let l = depth - 1, x = leaf; l >= 0; l--) parts.push(digit(Math.floor(x / FAN ** l) % FAN))
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/')
      if (!dirs.has(p)) {
        dirs.add(p)
        out.push({ path: p, kind: 'dir', mode: 0o755 })
      }
    }
    const dir = parts.join('/')
    for (let f = 0; f < FAN && leaf * FAN + f < files; f++) out.push(fileEntry(`${dir}/file-${String(f).padStart(2, '0')}.dat`, 0))
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

function fileEntry(path: string, version: number): ScannedEntry {
  const h = createHash('sha256').update(`${path}@${version}`).digest()
  return { path, kind: 'file', mode: 0o644, size: 1000 + (h.readUInt16BE(0) % 60_000), sha1: h.subarray(0, 20).toString('hex'), sha256: createHash('sha256').update(h).digest('hex') }
}

/** What the stand-in proxy serves for the product: format-2 releases and nodes, format-1 manifests (when they fit a message). */
interface Served {
  releases2: Map<number, string>
  nodes: Map<string, Uint8Array>
  v1: Map<number, Buffer>
  revs: { rev: number; manifestSha256: string; label: null; createdAt: string }[]
}

function standInProxy(nc: NatsConnection, product: string, served: Served): () => void {
  const fail = (code: string, msg: string): { headers: MsgHdrs } => {
    const h = headers()
    h.set('Nats-Service-Error', `${code}: ${msg}`)
    h.set('Nats-Service-Error-Code', '404')
    return { headers: h }
  }
  const subs = [
    nc.subscribe(proxySubject('meta'), {
      callback: (_e, m) => {
        const req = m.json<{ kind: string; product: string; rev?: number }>()
        const rev = req.rev ?? Math.max(0, ...served.releases2.keys())
        const text = req.kind === 'release' && req.product === product ? served.releases2.get(rev) : undefined
        if (text === undefined) m.respond('', fail('UPSWARM_E_UNKNOWN_REVISION', `no format-2 release r${rev}`))
        else m.respond(text)
      },
    }),
    nc.subscribe(proxySubject('nodes'), {
      callback: (_e, m) => {
        const { hashes } = m.json<NodesRequest>()
        const found: [string, Uint8Array][] = []
        let size = 16
        let i = 0
        for (; i < hashes.length; i++) {
          const bytes = served.nodes.get(hashes[i]!)
          if (!bytes) {
            m.respond('', fail('UPSWARM_E_NOT_FOUND', `no node ${hashes[i]}`))
            return
          }
          size += 36 + bytes.length
          if (size > 4 * MiB - 32 * (hashes.length - i) && found.length > 0) break
          found.push([hashes[i]!, bytes])
        }
        m.respond(encodeNodesReply(found, hashes.slice(i)))
      },
    }),
    nc.subscribe(proxySubject('revs'), {
      callback: (_e, m) => {
        m.respond(JSON.stringify({ product, latest: Math.max(0, ...served.revs.map((r) => r.rev)), revs: served.revs }))
      },
    }),
    nc.subscribe(proxySubject('manifest'), {
      callback: (_e, m) => {
        const bytes = served.v1.get(m.json<{ rev: number }>().rev)
        if (!bytes) m.respond('', fail('UPSWARM_E_UNKNOWN_REVISION', 'no such manifest'))
        else m.respond(bytes)
      },
    }),
  ]
  return () => { for (const s of subs) s.unsubscribe() }
}

export async function runMetaBench(o: MetaBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('meta', rec.startedAt)
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-bench-meta-'))
  const authority = await Authority.open(join(dir, 'auth'))
  const cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes: 1, authority })
  const connect = async (name: string, kind: 'admin' | 'proxy' | 'client'): Promise<NatsConnection> =>
    connectNats(cluster.urls, name, { creds: (await authority.issue({ kind, name })).file, tlsCa: authority.paths.caFile })
  const admin = await connect('bench-meta-admin', 'admin')
  await ensureResources(admin, 1)
  const proxyNc = await connect('bench-meta-proxy', 'proxy')
  const clientNc = await connect('bench-meta-client', 'client')
  const rows: BenchResult['rows'] = []
  const goals: BenchResult['goals'] = []
  const rootKey = generatePublisherKey()
  const key = generatePublisherKey()
  try {
    for (const files of o.sizes) {
      const product = randomUUID()
      const body = rootBody({
        version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey],
        products: { [product]: { publish: [key.publicKey] } },
      }) as { products: Record<string, { formats: number[] }> }
      body.products[product]!.formats = [1, 2]
      const root = rootText(signRoot(body, [rootKey]))
      const served: Served = { releases2: new Map(), nodes: new Map(), v1: new Map(), revs: [] }
      const fits: Record<number, boolean> = {}
      const v1Size: Record<number, number> = {}
      let parent2: string | undefined
      let parent1: string | undefined
      /** Builds revision `rev` of `entries` in-process, as the publisher would, and serves it. */
      const publishInProcess = (rev: number, entries: ScannedEntry[]): void => {
        const built = buildTree(entries, DEFAULT_CHUNKER)
        for (const [h, b] of built.nodes) served.nodes.set(h, b)
        const createdAtMs = Math.floor(Date.now() / 1000) * 1000
        const v1 = signManifest({ format: 1, product, rev, createdAt: new Date(createdAtMs).toISOString(), pieceSize: 1024 * 1024, ...(parent1 ? { parent: parent1 } : {}), entries: entries as Entry[] }, key)
        const v1Bytes = encodeRelease(v1)
        fits[rev] = v1Bytes.length <= MAX_PAYLOAD
        v1Size[rev] = v1Bytes.length
        if (fits[rev]) served.v1.set(rev, v1Bytes)
        parent1 = manifestSha256(v1.manifest)
        served.revs.push({ rev, manifestSha256: parent1, label: null, createdAt: v1.manifest.createdAt })
        const r2 = signRelease({ product, rev, ...(parent2 ? { parent: parent2 } : {}), createdAtMs, root: 1, tree: built.top, stats: built.stats, v1: parent1 }, [key])
        served.releases2.set(rev, r2.bytes.toString('utf8'))
        parent2 = r2.id
        log(`${files} files: r${rev} built, ${built.stats.nodes} nodes; format-1 manifest ${(v1Bytes.length / MiB).toFixed(2)} MiB${fits[rev] ? '' : ' (over one message: format 1 cannot serve it)'}`)
      }
      const base = syntheticTree(files)
      publishInProcess(1, base)
      const stop = standInProxy(proxyNc, product, served)
      try {
        // One working copy per format; the check phase of each run, as `upswarm init` / `update` run it.
        const copies = { 1: await newCopy(dir, product, root, `wc1-${files}`), 2: await newCopy(dir, product, root, `wc2-${files}`) }
        const source = (format: 1 | 2): ReleaseSource & { meta: { bytes: number; requests: number } } => {
          const s = serverSource(clientNc, product)
          return format === 2 ? s : Object.assign(s, { release2: async () => undefined })
        }
        const check = async (format: 1 | 2, kind: 'checkout' | 'update'): Promise<{ bytes: number; requests: number; seconds: number; peakRssMiB: number; growthMiB: number; used: number } | undefined> => {
          const wc = copies[format]
          const src = source(format)
          const session = new RunSession(wc, { source: src, threads: 4, log: silentLog })
          const before = process.memoryUsage().rss
          let peak = before
          const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 20)
          const t = performance.now()
          try {
            const target = await session.check({ kind, onConflict: 'alert' })
            // As if the files were installed: the next check starts from this revision.
            wc.state = { ...wc.state, current: target.to, topInstalled: Math.max(wc.state.topInstalled, target.to) }
            await wc.saveState()
          } catch (err) {
            if (format === 1 && !fits[Math.max(...served.revs.map((r) => r.rev))]) return undefined
            throw err
          } finally {
            clearInterval(timer)
          }
          return { bytes: src.meta.bytes, requests: src.meta.requests, seconds: (performance.now() - t) / 1000, peakRssMiB: Math.max(peak, process.memoryUsage().rss) / MiB, growthMiB: (Math.max(peak, process.memoryUsage().rss) - before) / MiB, used: session.format }
        }
        const row = (scenario: string, changed: number, f1: Awaited<ReturnType<typeof check>>, f2: Awaited<ReturnType<typeof check>>): void => {
          rows.push({
            files, scenario, 'changed files': changed,
            'format-1 manifest KiB': round(v1Size[Math.max(...served.revs.map((r) => r.rev))]! / 1024, 4),
            'format 1 KiB': f1 ? round(f1.bytes / 1024, 4) : null, 'format 1 requests': f1?.requests ?? null,
            'format 2 KiB': f2 ? round(f2.bytes / 1024, 4) : null, 'format 2 requests': f2?.requests ?? null,
            '÷ format 1': f1 && f2 ? round(f2.bytes / f1.bytes, 4) : null,
            'format 2 check s': f2 ? round(f2.seconds, 3) : null, 'peak RSS MiB': f2 ? Math.round(f2.peakRssMiB) : null, 'RSS growth MiB': f2 ? Math.round(f2.growthMiB) : null,
          })
          log(`${files} files, ${scenario}: format 1 ${f1 ? `${(f1.bytes / 1024).toFixed(1)} KiB` : 'cannot be served'}, format 2 ${((f2?.bytes ?? 0) / 1024).toFixed(1)} KiB`)
          if (f2 && f2.used !== 2) throw new Error(`the format-2 copy read format ${f2.used}`)
        }
        row('first install', files, await check(1, 'checkout'), await check(2, 'checkout'))
        // 1% of the files change, spread over the tree (the worst case for format 2: most leaf directories touched).
        const changed = Math.round(files / 100)
        const fileIdx = base.flatMap((e, i) => (e.kind === 'file' ? [i] : []))
        const which = new Set(Array.from({ length: changed }, (_, k) => fileIdx[Math.floor(((k * 2654435761) % 2 ** 32) / 2 ** 32 * fileIdx.length)]!))
        publishInProcess(2, base.map((e, i) => (which.has(i) ? fileEntry(e.path, 1) : e)))
        row('update, 1% random', which.size, await check(1, 'update'), await check(2, 'update'))
        // 1% of the files, in whole leaf directories (a typical release).
        const next = base.map((e, i) => (which.has(i) ? fileEntry(e.path, 1) : e))
        const clustered = new Set(fileIdx.slice(0, changed))
        publishInProcess(3, next.map((e, i) => (clustered.has(i) ? fileEntry(e.path, 2) : e)))
        row('update, 1% clustered', clustered.size, await check(1, 'update'), await check(2, 'update'))
        row('no-change check', 0, await check(1, 'update'), await check(2, 'update'))
        const random = rows.find((r) => r.files === files && r.scenario === 'update, 1% random')!
        goals.push({
          goal: `${files} files, 1% random update: format 2 fetches ≤ 1/4 of the metadata format 1 fetches`,
          met: random['÷ format 1'] === null ? random['format 2 KiB'] !== null : (random['÷ format 1'] as number) <= 0.25,
          detail: random['format 1 KiB'] === null
            ? `format 1 cannot serve a manifest of this size in one message; format 2: ${random['format 2 KiB']} KiB`
            : `${random['format 2 KiB']} KiB vs ${random['format 1 KiB']} KiB (${random['÷ format 1']}×)`,
        })
      } finally {
        stop()
      }
    }
  } finally {
    for (const nc of [clientNc, proxyNc, admin]) await nc.close().catch(() => {})
    await cluster.stop()
    if (!o.keep) await rm(dir, { recursive: true, force: true })
  }
  return rec.finish({
    name: 'meta',
    title: 'Metadata a client fetches: format 1 (whole manifest) vs format 2 (release + changed tree nodes), on the wire',
    parameters: { ...o, fan: FAN, chunker: DEFAULT_CHUNKER },
    columns: ['files', 'scenario', 'changed files', 'format-1 manifest KiB', 'format 1 KiB', 'format 1 requests', 'format 2 KiB', 'format 2 requests', '÷ format 1', 'format 2 check s', 'peak RSS MiB', 'RSS growth MiB'],
    rows,
    goals,
    notes: [
      'Bytes the client received for the signed metadata of the run (reply payloads: revision list and manifest in format 1; release document and `nodes` replies in format 2), counted in serverSource; file bytes excluded (the same in both formats).',
      'The revisions are built in-process by the publisher\'s tree builder and signers and served by a stand-in for the proxy with the bytes a server holds (publishing 100 000 files through the object store takes ~40 min: publish2 bench). Client side: the updater\'s real check phase (RunSession.check) over a NATS cluster with credentials and TLS.',
      `format 1 empty: the manifest is over one NATS message (${(MAX_PAYLOAD / MiB).toFixed(2)} MiB), so a format-1 cluster cannot publish or serve that release at all.`,
      'No-change check: format 2 asks for the newest release document (~1 KB); format 1 asks for the revision list (grows with the history). Roots and fresh statements are read from the streams in both formats and are not counted.',
      'peak RSS: of the whole bench process (which also holds the stand-in\'s trees and manifests) during the format-2 check; RSS growth: that peak less the RSS at the start of the check — the client\'s share. A first install walks the target tree into one entry per path (every path is planned); an update keeps only the entries the tree diff names (docs/decisions.md, "An update is planned from the tree diff and the stat index").',
      'format-1 manifest KiB: the size of the newest revision\'s signed manifest, which a format-1 update fetches whole (when it fits one message).',
    ],
  })
}

async function newCopy(dir: string, product: string, root: string, name: string): Promise<WorkingCopy> {
  const wc = await WorkingCopy.create(join(dir, name), { format: 1, product, publicKey: 'ab'.repeat(32), clientId: randomUUID(), historyDepth: 1 })
  await wc.trust.pin(root, 'the bench root')
  return wc
}
