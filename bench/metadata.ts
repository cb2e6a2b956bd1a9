// Metadata of a 1% update (issue 13 items 3 and 6; docs/formats.md §4): the bytes of format-2 tree
// nodes an update must fetch — the nodes of the new revision it does not hold — against the whole
// format-1 manifest it fetches today, at 100 000 and 1 000 000 files. Trees as in §4: 20 files per
// leaf directory, 20 subdirectories per inner one. "random" changes 1% of the files anywhere (the
// worst case: most leaves touched); "clustered" changes whole leaf directories (a typical release).
// The nodes are built by the publisher's own code (infra/formats/tree-builder.ts).
import { createHash } from 'node:crypto'
import { buildTree, type ScannedEntry } from '../infra/formats/tree-builder.ts'
import { DEFAULT_CHUNKER, signRelease } from '../infra/formats/release.ts'
import { canonicalJson } from '../infra/release/manifest.ts'
import { generatePublisherKey } from '../infra/release/keys.ts'
import { MiB, progress, round, startRecording, type BenchResult, type CommonOptions } from './lib/report.ts'

export interface MetadataBenchOptions extends CommonOptions {
  sizes: number[]
}
export const METADATA_DEFAULTS: MetadataBenchOptions = { sizes: [100_000, 1_000_000] }

const FAN = 20
/** The 8 MiB stream message cap less the envelope's room: the largest format-1 manifest. */
const V1_CAP = 8 * MiB - 64 * 1024

/** A deterministic tree of `files` files, FAN per leaf, FAN subdirectories per inner directory. */
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

/** Bytes of the format-1 manifest of these entries (canonical JSON), counted without building it. */
function v1Bytes(entries: ScannedEntry[]): number {
  let n = 200 // format, product, rev, createdAt, pieceSize, parent, signature wrapper
  for (const e of entries) n += Buffer.byteLength(canonicalJson(e)) + 1
  return n
}

export async function runMetadataBench(o: MetadataBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('metadata', rec.startedAt)
  const key = generatePublisherKey()
  const rows: BenchResult['rows'] = []
  const goals: BenchResult['goals'] = []
  for (const files of o.sizes) {
    const base = syntheticTree(files)
    let t = performance.now()
    const before = buildTree(base, DEFAULT_CHUNKER)
    const buildMs = performance.now() - t
    const wholeBytes = [...before.nodes.values()].reduce((n, b) => n + b.length, 0)
    const v1 = v1Bytes(base)
    const release = signRelease({ product: crypto.randomUUID(), rev: 2, parent: 'ab'.repeat(32), createdAtMs: Date.now(), root: 1, tree: before.top, stats: before.stats }, [key]).bytes.length
    log(`${files} files: ${before.stats.nodes} nodes, ${(wholeBytes / MiB).toFixed(2)} MiB, built in ${buildMs.toFixed(0)} ms; format 1 would be ${(v1 / MiB).toFixed(1)} MiB`)
    const fileIdx = base.flatMap((e, i) => (e.kind === 'file' ? [i] : []))
    const changed = Math.round(files / 100)
    const scenarios: Array<[string, Set<number>]> = [
      ['random 1%', new Set(Array.from({ length: changed }, (_, k) => fileIdx[Math.floor(((k * 2654435761) % 2 ** 32) / 2 ** 32 * fileIdx.length)]!))],
      ['clustered 1%', new Set(fileIdx.slice(0, changed))],
    ]
    for (const [scenario, which] of scenarios) {
      const next = base.map((e, i) => (which.has(i) ? fileEntry(e.path, 1) : e))
      t = performance.now()
      const after = buildTree(next, DEFAULT_CHUNKER)
      const rebuildMs = performance.now() - t
      const fresh = [...after.nodes].filter(([h]) => !before.nodes.has(h))
      const bytes = fresh.reduce((n, [, b]) => n + b.length, 0) + release
      rows.push({
        files, scenario, 'changed files': which.size, 'new nodes': fresh.length, 'format 2 MiB': round(bytes / MiB, 3),
        'whole tree MiB': round(wholeBytes / MiB, 3), 'format 1 MiB': round(v1 / MiB, 2), '÷ format 1': round(bytes / v1, 3),
        'build s': round(rebuildMs / 1000, 3), 'format 1 fits': v1 <= V1_CAP,
      })
      log(`${files} files, ${scenario}: ${fresh.length} new nodes, ${(bytes / MiB).toFixed(3)} MiB (format 1: ${(v1 / MiB).toFixed(1)} MiB)`)
    }
    const random = rows[rows.length - 2]!
    goals.push({
      goal: `${files} files, random 1%: the metadata fetched scales with the change (≤ 1/4 of the whole tree, ≤ 1/8 of the format-1 manifest)`,
      met: (random['format 2 MiB'] as number) <= wholeBytes / MiB / 4 && (random['÷ format 1'] as number) <= 1 / 8,
      detail: `${random['format 2 MiB']} MiB of ${round(wholeBytes / MiB, 3)} MiB of nodes; format 1: ${round(v1 / MiB, 2)} MiB (${random['÷ format 1']}×)`,
    })
  }
  return rec.finish({
    name: 'metadata',
    title: 'Metadata of a 1% update: format-2 tree nodes fetched vs the format-1 manifest',
    parameters: { ...o, fan: FAN, chunker: DEFAULT_CHUNKER },
    columns: ['files', 'scenario', 'changed files', 'new nodes', 'format 2 MiB', 'whole tree MiB', 'format 1 MiB', '÷ format 1', 'build s', 'format 1 fits'],
    rows,
    goals,
    notes: [
      'format 2 MiB: the nodes of the new revision that the old one lacks, plus the signed release document — what an update fetches before any file byte.',
      `format 1 MiB: the whole canonical-JSON manifest every update fetches today; "fits": under the ${((V1_CAP) / MiB).toFixed(2)} MiB a stream message may hold.`,
      'The trees are synthetic (20 files per leaf directory, 20 subdirectories per inner one, docs/formats.md §4); the nodes are built by the publisher\'s tree builder.',
    ],
  })
}
