// The zod-free part of release manifests (manifest.ts re-exports all of it): names, path rules,
// canonical bytes and pure helpers that short commands need without loading the manifest schemas and zod (issue 13
// item 1: `status --offline` starts within 1.5× of `node -e 0`; docs/decisions.md).
import { sha256Hex } from './hash.ts'
import type { FileEntry, Manifest, SignedRelease } from './manifest.ts'

/** Name of the working copy's metadata folder; never part of a release. */
export const META_DIR = '.upswarm'

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A relative POSIX path that cannot escape the tree or touch the metadata folder. */
export function isSafeRelPath(p: string): boolean {
  if (p.startsWith('/') || p.endsWith('/') || p.includes('\0') || p.includes('\\')) return false
  const parts = p.split('/')
  if (parts[0] === META_DIR) return false
  return parts.every((s) => s !== '' && s !== '.' && s !== '..')
}

/** Deterministic JSON: object keys sorted, no whitespace. The signed bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}

export function canonicalManifestBytes(manifest: Manifest): Buffer {
  return Buffer.from(canonicalJson(manifest), 'utf8')
}

/** The manifest's identity: SHA-256 of its canonical bytes (R-WATCH "hash of the file tree"). */
export function manifestSha256(manifest: Manifest): string {
  return sha256Hex(canonicalManifestBytes(manifest))
}

export function encodeRelease(release: SignedRelease): Buffer {
  return Buffer.from(canonicalJson(release), 'utf8')
}

/** Byte-wise path order (the same on every machine and locale). */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function fileEntries(manifest: Manifest): FileEntry[] {
  return manifest.entries.filter((e): e is FileEntry => e.kind === 'file')
}

/** Unique blobs of a manifest by SHA-256, with their sizes. */
export function blobsOf(manifest: Manifest): Map<string, number> {
  const out = new Map<string, number>()
  for (const e of fileEntries(manifest)) out.set(e.sha256, e.size)
  return out
}
