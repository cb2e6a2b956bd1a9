// Generated release trees for the demo and the benchmarks: a realistic size mix (many small
// text-like files, some medium libraries, a few large assets), deterministic from a seed, and
// new revisions made by changing, adding and removing a fraction of the files.
import { createHash } from 'node:crypto'
import { mkdir, open, readdir, rm, writeFile, stat } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'

export interface TreeShape {
  files: number
  totalBytes: number
  seed: string
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode): fast, reproducible. */
export function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size)
  let off = 0
  for (let i = 0; off < size; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest()
    off += block.copy(out, off, 0, Math.min(32, size - off))
  }
  return out
}

function rng(seed: string): () => number {
  let state = createHash('sha256').update(seed).digest().readUInt32LE(0) || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 0x1_0000_0000
  }
}

/** File sizes: 80% small (≤ 16 KiB), 17% medium (≤ 512 KiB), 3% large; scaled to totalBytes. */
export function sizeMix(shape: TreeShape): number[] {
  const r = rng(`${shape.seed}:sizes`)
  const raw = Array.from({ length: shape.files }, () => {
    const x = r()
    return x < 0.8 ? 256 + r() * 16_128 : x < 0.97 ? 16_384 + r() * 500_000 : 1_000_000 + r() * 8_000_000
  })
  const sum = raw.reduce((a, b) => a + b, 0)
  return raw.map((s) => Math.max(1, Math.round((s / sum) * shape.totalBytes)))
}

export async function generateTree(root: string, shape: TreeShape): Promise<{ files: number; bytes: number }> {
  const sizes = sizeMix(shape)
  let bytes = 0
  for (const [i, size] of sizes.entries()) {
    const path = join(root, `dir${i % 13}`, `sub${i % 5}`, `file${i}.dat`)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, seededBytes(`${shape.seed}:file${i}`, size))
    bytes += size
  }
  return { files: sizes.length, bytes }
}

/** Every regular file under `root`, as sorted relative paths. */
export async function listFiles(root: string, dir = root): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await listFiles(root, abs)))
    else if (e.isFile()) out.push(relative(root, abs))
  }
  return out.sort()
}

/** Makes the next revision in place: changes `changeFraction` of the files, adds and removes a few. */
export async function mutateTree(root: string, opts: { seed: string; changeFraction: number; add: number; remove: number }): Promise<{ changed: number; added: number; removed: number; changedBytes: number }> {
  const r = rng(`${opts.seed}:mutate`)
  const files = await listFiles(root)
  const shuffled = files.map((f) => [r(), f] as const).sort((a, b) => a[0] - b[0]).map(([, f]) => f)
  const nChange = Math.max(1, Math.round(files.length * opts.changeFraction))
  const toChange = shuffled.slice(0, nChange)
  const toRemove = shuffled.slice(nChange, nChange + opts.remove)
  let changedBytes = 0
  for (const f of toChange) {
    const size = (await stat(join(root, f))).size
    await writeFile(join(root, f), seededBytes(`${opts.seed}:${f}`, size))
    changedBytes += size
  }
  for (const f of toRemove) await rm(join(root, f))
  for (let i = 0; i < opts.add; i++) {
    const size = 1024 + Math.floor(r() * 200_000)
    const path = join(root, 'added', `${opts.seed}-${i}.dat`)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, seededBytes(`${opts.seed}:add${i}`, size))
    changedBytes += size
  }
  return { changed: toChange.length, added: opts.add, removed: toRemove.length, changedBytes }
}

/** Overwrites `bytes` bytes at a seeded offset of a seeded `fraction` of the files. */
export async function editTree(root: string, seed: string, fraction: number, bytes: number): Promise<{ edited: number; editedBytes: number; fileBytes: number }> {
  const files = await listFiles(root)
  const pick = files
    .map((f) => ({ f, k: createHash('sha256').update(`${seed}:${f}`).digest().readUInt32BE(0) }))
    .sort((a, b) => a.k - b.k)
    .slice(0, Math.max(1, Math.round(files.length * fraction)))
  let editedBytes = 0
  let fileBytes = 0
  for (const { f, k } of pick) {
    const path = join(root, f)
    const size = (await stat(path)).size
    const len = Math.min(bytes, size)
    const offset = size > len ? k % (size - len) : 0
    const fh = await open(path, 'r+')
    try {
      await fh.write(seededBytes(`${seed}:${f}:edit`, len), 0, len, offset)
    } finally {
      await fh.close()
    }
    editedBytes += len
    fileBytes += size
  }
  return { edited: pick.length, editedBytes, fileBytes }
}
