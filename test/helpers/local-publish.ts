// A tiny publisher for updater tests: writes trees, signs releases (scanTree + signManifest)
// and lays them out in a folder that DirectorySource serves. No network.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { chmod, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'
import { META_DIR, SignedReleaseSchema, encodeRelease, manifestSha256, signManifest, type Manifest, type SignedRelease } from '../../infra/release/manifest.ts'
import { scanTree } from '../../infra/release/scan.ts'
import { BlobStore } from '../../infra/store/blob-store.ts'

/** path → file contents, or a file with a mode, a symlink, or an (empty) directory. */
export type TreeSpec = Record<string, string | { content: string; mode?: number } | { symlink: string } | { dir: true; mode?: number }>

export async function writeTree(root: string, spec: TreeSpec): Promise<void> {
  await mkdir(root, { recursive: true })
  for (const [path, v] of Object.entries(spec)) {
    const abs = join(root, ...path.split('/'))
    if (typeof v === 'object' && 'dir' in v) {
      await mkdir(abs, { recursive: true })
      if (v.mode !== undefined) await chmod(abs, v.mode)
      continue
    }
    await mkdir(dirname(abs), { recursive: true })
    if (typeof v === 'object' && 'symlink' in v) await symlink(v.symlink, abs)
    else {
      await writeFile(abs, typeof v === 'string' ? v : v.content)
      await chmod(abs, typeof v === 'string' ? 0o644 : v.mode ?? 0o644)
    }
  }
}

export function releaseDir(repo: string, product: string): string {
  return join(repo, 'releases', product)
}

export function repoBlobs(repo: string): BlobStore {
  return new BlobStore(join(repo, 'blobs'))
}

export interface LocalPublishOptions {
  key: PublisherKey
  product: string
  /** The tree to publish. */
  src: string
  label?: string
  /** Changes the manifest before it is signed (tests of bad manifests). */
  tamper?: (m: Manifest) => void
}

/** Publishes the next revision of a product into `repo`. */
export async function publishLocal(repo: string, opts: LocalPublishOptions): Promise<{ rev: number; manifestSha256: string; release: SignedRelease }> {
  const dir = releaseDir(repo, opts.product)
  await mkdir(dir, { recursive: true })
  const revs = (await readdir(dir)).map((n) => Number.parseInt(n, 10)).filter((n) => n > 0)
  const prevRev = revs.length ? Math.max(...revs) : 0
  const parent = prevRev
    ? manifestSha256(SignedReleaseSchema.parse(JSON.parse(await readFile(join(dir, `${prevRev}.json`), 'utf8'))).manifest)
    : undefined
  const { entries, files } = await scanTree(opts.src)
  const blobs = repoBlobs(repo)
  for (const e of entries) {
    if (e.kind === 'file' && !(await blobs.has(e.sha256))) await blobs.put(e.sha256, createReadStream(files.get(e.path)!), `publish ${e.path}`, e.size)
  }
  const manifest: Manifest = {
    format: 1,
    product: opts.product,
    rev: prevRev + 1,
    ...(opts.label ? { label: opts.label } : {}),
    createdAt: new Date().toISOString(),
    pieceSize: PIECE_SIZE,
    ...(parent ? { parent } : {}),
    entries,
  }
  opts.tamper?.(manifest)
  const release = signManifest(manifest, opts.key)
  await writeFile(join(dir, `${manifest.rev}.json`), encodeRelease(release))
  return { rev: manifest.rev, manifestSha256: manifestSha256(release.manifest), release }
}

/**
 * A tree as comparable data: path → "file <mode> <contents>" | "symlink <target>" | "dir"; META_DIR
 * left out. With `hash`, a file's contents are the SHA-256 of its bytes (binary files, byte for byte).
 */
export async function snapshotTree(root: string, opts: { hash?: boolean } = {}): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  async function walk(abs: string, rel: string): Promise<void> {
    for (const name of (await readdir(abs)).sort()) {
      if (rel === '' && name === META_DIR) continue
      const a = join(abs, name)
      const r = rel ? `${rel}/${name}` : name
      const st = await lstat(a)
      if (st.isSymbolicLink()) out[r] = `symlink ${await readlink(a)}`
      else if (st.isDirectory()) {
        out[r] = 'dir'
        await walk(a, r)
      } else out[r] = `file ${(st.mode & 0o7777).toString(8)} ${opts.hash ? createHash('sha256').update(await readFile(a)).digest('hex') : await readFile(a, 'utf8')}`
    }
  }
  await walk(root, '')
  return out
}
