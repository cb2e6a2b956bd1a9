// A realistic release pair for the incremental benchmark (issue 15 item 4): two consecutive
// versions of a real package tree from the npm registry, fetched once with `npm pack` into a
// cache outside the repository ($XDG_CACHE_HOME/upswarm-bench, else ~/.cache/upswarm-bench) and
// unpacked with `tar`; later runs reuse the cache. Or, for tests, two local directories.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { listFiles } from '../../actors/demo/tree-gen.ts'
import { timed } from './cluster.ts'

/** Two versions of a package from the npm registry, or two local trees. */
export type ReleasePair =
  | { kind: 'npm'; name: string; from: string; to: string }
  | { kind: 'dirs'; label: string; a: string; b: string }

export const DEFAULT_RELEASE_PAIR: ReleasePair = { kind: 'npm', name: 'typescript', from: '5.6.2', to: '5.6.3' }

export function describePair(p: ReleasePair): string {
  return p.kind === 'npm' ? `${p.name} ${p.from} → ${p.to}` : p.label
}

/** `NAME@A:B` (e.g. `typescript@5.6.2:5.6.3`, `@scope/pkg@1.0.0:1.0.1`) as an npm pair. */
export function parseReleasePair(spec: string): ReleasePair {
  const m = /^(@?[^@\s]+)@([^:\s]+):([^:\s]+)$/.exec(spec)
  if (!m) throw new Error(`--release-pair must be NAME@FROM:TO, e.g. typescript@5.6.2:5.6.3 (got "${spec}")`)
  return { kind: 'npm', name: m[1]!, from: m[2]!, to: m[3]! }
}

export function benchCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'upswarm-bench')
}

/**
 * The unpacked tree of NAME@VERSION, from the cache or fetched with `npm pack` (which checks the
 * tarball against the registry's integrity hash) and unpacked beside it, then renamed into
 * place whole, so an interrupted fetch leaves no half tree that a later run would take.
 */
export async function npmPackageTree(name: string, version: string, cache = benchCacheDir()): Promise<string> {
  const dir = join(cache, 'npm', `${name.replace(/^@/, '').replace(/\//g, '-')}-${version}`)
  const tree = join(dir, 'tree')
  if (await stat(tree).then((s) => s.isDirectory(), () => false)) return tree
  await mkdir(dir, { recursive: true })
  const tmp = await mkdtemp(join(dir, 'fetch-'))
  try {
    const packed = await timed('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', tmp], { cwd: tmp, allowFail: true })
    if (packed.code !== 0) {
      throw new Error(`could not fetch ${name}@${version} from the npm registry (\`npm pack ${name}@${version}\` into ${tmp} exited ${packed.code}): ${packed.stderr.trim().slice(-800)}`)
    }
    let filename: string
    try {
      filename = (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename
    } catch {
      throw new Error(`\`npm pack ${name}@${version}\` printed no JSON naming its tarball: ${packed.stdout.slice(0, 300)}`)
    }
    const unpacked = join(tmp, 'unpacked')
    await mkdir(unpacked)
    // The archive's times are kept (npm's are all 1985-10-26): rsync's quick check then sees
    // unchanged files as unchanged, in every copy of the tree.
    await timed('tar', ['-xzf', join(tmp, filename), '-C', unpacked, '--no-same-owner'])
    const top = await readdir(unpacked)
    if (top.length !== 1) throw new Error(`${filename} (${name}@${version}) holds ${top.length} top-level entries, expected one (package/)`)
    await rename(join(unpacked, top[0]!), tree)
    return tree
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

/** The two trees of the pair, fetched if need be. */
export async function releaseTrees(p: ReleasePair): Promise<{ a: string; b: string; label: string }> {
  if (p.kind === 'dirs') return { a: p.a, b: p.b, label: p.label }
  return { a: await npmPackageTree(p.name, p.from), b: await npmPackageTree(p.name, p.to), label: describePair(p) }
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256')
  await pipeline(createReadStream(path), h)
  return h.digest('hex')
}

async function sameContents(x: string, y: string): Promise<boolean> {
  const [sx, sy] = await Promise.all([stat(x), stat(y)])
  if (sx.size !== sy.size) return false
  return (await sha256(x)) === (await sha256(y))
}

export interface ReleaseChange {
  files: number
  bytes: number
  changed: number
  added: number
  removed: number
  /** Sizes of the changed and added files in B: what an updater without deltas moves. */
  wholeChangedBytes: number
}

/**
 * Turns `dest` (a copy of A) into B as a publisher's build would: files whose contents differ
 * or that are new are written (so they get a new mtime), files B no longer has are removed,
 * and unchanged files are left alone, times included.
 */
/** The files of B that A lacks or holds with other bytes (what applyRelease copies), sorted. */
export async function changedInB(a: string, b: string): Promise<string[]> {
  const [filesA, filesB] = await Promise.all([listFiles(a), listFiles(b)])
  const inA = new Set(filesA)
  const out: string[] = []
  for (const f of filesB) if (!inA.has(f) || !(await sameContents(join(a, f), join(b, f)))) out.push(f)
  return out.sort()
}

export async function applyRelease(a: string, b: string, dest: string): Promise<ReleaseChange> {
  const [filesA, filesB] = await Promise.all([listFiles(a), listFiles(b)])
  const inB = new Set(filesB)
  const inA = new Set(filesA)
  const c: ReleaseChange = { files: filesB.length, bytes: 0, changed: 0, added: 0, removed: 0, wholeChangedBytes: 0 }
  for (const f of filesB) {
    const size = (await stat(join(b, f))).size
    c.bytes += size
    const isNew = !inA.has(f)
    if (!isNew && (await sameContents(join(a, f), join(b, f)))) continue
    await mkdir(dirname(join(dest, f)), { recursive: true })
    await copyFile(join(b, f), join(dest, f))
    c.wholeChangedBytes += size
    if (isNew) c.added++
    else c.changed++
  }
  for (const f of filesA) {
    if (inB.has(f)) continue
    await rm(join(dest, f))
    c.removed++
  }
  return c
}
