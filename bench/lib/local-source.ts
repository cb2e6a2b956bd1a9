// A ReleaseSource for one signed revision of a directory, with no network: the status
// benchmark builds a 100 000-file working copy with it (publishing 100 000 objects to the
// JetStream object store would take longer than the whole benchmark budget). The manifest has
// the entries `upswarm publish` would write (scanTree's format); small files are hashed from one
// read instead of a stream each, which makes the setup of 100 000 files several times faster.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { ReleaseSource } from '../../infra/release/source.ts'
import { hashFile, PIECE_SIZE } from '../../infra/release/hash.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'
import { comparePaths, encodeRelease, manifestSha256, META_DIR, signManifest, type Entry, type SignedRelease } from '../../infra/release/manifest.ts'

const CONCURRENCY = 16

async function scan(root: string): Promise<{ entries: Entry[]; files: Map<string, string> }> {
  const entries: Entry[] = []
  const files = new Map<string, string>()
  const toHash: { rel: string; abs: string; mode: number; size: number }[] = []
  const walk = async (abs: string, rel: string): Promise<void> => {
    for (const name of (await readdir(abs)).sort()) {
      if (rel === '' && name === META_DIR) continue
      const a = join(abs, name)
      const r = rel ? `${rel}/${name}` : name
      const st = await lstat(a)
      if (st.isSymbolicLink()) entries.push({ path: r, kind: 'symlink', target: await readlink(a) })
      else if (st.isDirectory()) {
        entries.push({ path: r, kind: 'dir', mode: st.mode & 0o7777 })
        await walk(a, r)
      } else if (st.isFile()) toHash.push({ rel: r, abs: a, mode: st.mode & 0o7777, size: st.size })
    }
  }
  await walk(root, '')
  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < toHash.length) {
      const f = toHash[next++]!
      if (f.size > PIECE_SIZE) {
        entries.push({ path: f.rel, kind: 'file', mode: f.mode, ...(await hashFile(f.abs)) })
      } else {
        const data = await readFile(f.abs)
        entries.push({
          path: f.rel, kind: 'file', mode: f.mode, size: data.length,
          sha1: createHash('sha1').update(data).digest('hex'),
          sha256: createHash('sha256').update(data).digest('hex'),
        })
      }
      files.set(f.rel, f.abs)
    }
  }))
  entries.sort((a, b) => comparePaths(a.path, b.path))
  return { entries, files }
}

export async function localSource(src: string, product: string, key: PublisherKey): Promise<ReleaseSource & { release1: SignedRelease }> {
  const { entries, files } = await scan(src)
  const release1 = signManifest({ format: 1, product, rev: 1, createdAt: new Date().toISOString(), pieceSize: PIECE_SIZE, entries }, key)
  const bySha = new Map<string, string>()
  for (const e of entries) if (e.kind === 'file') bySha.set(e.sha256, files.get(e.path)!)
  const bytes = encodeRelease(release1)
  return {
    release1,
    revisions: async () => [{ rev: 1, manifestSha256: manifestSha256(release1.manifest) }],
    release: async () => bytes,
    async fetchBlob(entry, into) {
      const file = bySha.get(entry.sha256)!
      await into.put(entry.sha256, (async function* () { yield* createReadStream(file) as AsyncIterable<Buffer> })(), src, entry.size)
      return { bytesFromServers: entry.size, bytesFromPeers: 0 }
    },
  }
}
