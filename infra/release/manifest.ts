// Release manifests (ARCHITECTURE §3): every entry's path, kind, mode, size, SHA-1, SHA-256 and
// piece hashes; canonically encoded and signed with the publisher's Ed25519 key. Clients accept
// no manifest whose signature fails against the pinned key (R-VERIFY).
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import { signBytes, verifyBytes, type PublisherKey } from './keys.ts'
import { META_DIR, UUID_RE, canonicalManifestBytes, comparePaths, isSafeRelPath } from './manifest-core.ts'

// The zod-free part lives in manifest-core.ts (issue 13 item 1); importers of either get all of it.
export { META_DIR, UUID_RE, blobsOf, canonicalJson, canonicalManifestBytes, comparePaths, encodeRelease, fileEntries, isSafeRelPath, manifestSha256 } from './manifest-core.ts'

export const MANIFEST_FORMAT = 1

const HEX40 = /^[0-9a-f]{40}$/
const HEX64 = /^[0-9a-f]{64}$/

/** A relative POSIX path that cannot escape the tree or touch the metadata folder. */
const RelPath = z.string().min(1).max(4096).refine((p) => isSafeRelPath(p), { message: 'unsafe path' })

const FileEntrySchema = z.object({
  path: RelPath,
  kind: z.literal('file'),
  mode: z.number().int().min(0).max(0o7777),
  size: z.number().int().min(0),
  sha1: z.string().regex(HEX40),
  sha256: z.string().regex(HEX64),
  pieces: z.array(z.string().regex(HEX64)).optional(),
})
const DirEntrySchema = z.object({ path: RelPath, kind: z.literal('dir'), mode: z.number().int().min(0).max(0o7777) })
const SymlinkEntrySchema = z.object({ path: RelPath, kind: z.literal('symlink'), target: z.string().min(1).max(4096) })
const EntrySchema = z.discriminatedUnion('kind', [FileEntrySchema, DirEntrySchema, SymlinkEntrySchema])

export const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  product: z.string().regex(UUID_RE),
  rev: z.number().int().min(1),
  label: z.string().max(200).optional(),
  createdAt: z.string().max(64),
  pieceSize: z.number().int().min(4096).max(64 * 1024 * 1024),
  /** SHA-256 of the previous revision's manifest: the release history is a hash chain. */
  parent: z.string().regex(HEX64).optional(),
  entries: z.array(EntrySchema),
})

export const SignedReleaseSchema = z.object({
  manifest: ManifestSchema,
  publicKey: z.string().regex(HEX64),
  signature: z.string().regex(/^[0-9a-f]{128}$/),
})

export type FileEntry = z.infer<typeof FileEntrySchema>
export type DirEntry = z.infer<typeof DirEntrySchema>
export type SymlinkEntry = z.infer<typeof SymlinkEntrySchema>
export type Entry = z.infer<typeof EntrySchema>
export type Manifest = z.infer<typeof ManifestSchema>
export type SignedRelease = z.infer<typeof SignedReleaseSchema>

export function signManifest(manifest: Manifest, key: PublisherKey): SignedRelease {
  const m = ManifestSchema.parse(manifest)
  m.entries.sort((a, b) => comparePaths(a.path, b.path))
  return { manifest: m, publicKey: key.publicKey, signature: signBytes(key, canonicalManifestBytes(m)) }
}

/**
 * Parses and verifies a signed release from any source (server, peer, feed). Throws
 * UPSWARM_E_MANIFEST for malformed input and UPSWARM_E_SIGNATURE when the signature does not
 * verify against the pinned key.
 */
export function decodeRelease(bytes: Uint8Array | string, pinnedPublicKey: string, where: string): SignedRelease {
  return decodeKnown(bytes, bytesId(bytes), pinnedPublicKey, where)
}

function decodeKnown(bytes: Uint8Array | string, id: string, pinnedPublicKey: string, where: string): SignedRelease {
  const known = decoded.get(id)?.deref()
  if (known && known.publicKey === pinnedPublicKey) return known
  const release = decodeAndVerify(bytes, pinnedPublicKey, where)
  decoded.delete(id)
  decoded.set(id, new WeakRef(release))
  if (decoded.size > DECODED_KEPT) decoded.delete(decoded.keys().next().value!)
  return release
}

/**
 * The same signed bytes reach a daemon several times — the release stream, the release feed, the
 * servers' answer to a refresh, its own manifest store — and each decode of a manifest of 40 000
 * files (its cap, 10 MiB) takes about 0.5 s: JSON, the schema, canonical bytes, the signature.
 * What verified is remembered by the SHA-256 of its bytes (the last few), and the same bytes under
 * the same key are not parsed and verified again while someone still holds that release (a weak
 * reference: the memo keeps no manifest alive). Only successes are remembered; a release is never
 * changed after decoding (its readers only read it).
 */
const decoded = new Map<string, WeakRef<SignedRelease>>()
const DECODED_KEPT = 8
/** Every release object this module made by a decode that verified it under its own `publicKey`. */
const verified = new WeakSet<SignedRelease>()

/**
 * Whether `release` is an object a decode here made and verified under the key it names (not a
 * copy, not one built elsewhere): a holder may then check only who may sign it (release-trust.ts)
 * instead of encoding it again to decode it again.
 */
export function verifiedUnderOwnKey(release: SignedRelease): boolean {
  return verified.has(release)
}
/** Full decodes since start (a test reads it to see the memo used). */
export const releaseDecodes = { parsed: 0 }

function bytesId(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function decodeAndVerify(bytes: Uint8Array | string, pinnedPublicKey: string, where: string): SignedRelease {
  releaseDecodes.parsed++
  let json: unknown
  try {
    json = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'))
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `release manifest from ${where} is not valid JSON`, { cause: err })
  }
  const parsed = SignedReleaseSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_MANIFEST',
      `release manifest from ${where} is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`)
  }
  const release = parsed.data
  if (release.publicKey !== pinnedPublicKey ||
      !verifyBytes(pinnedPublicKey, canonicalManifestBytes(release.manifest), release.signature)) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE',
      `release manifest from ${where} (product ${release.manifest.product}, rev ${release.manifest.rev}) is not signed by the ` +
      `expected publisher key ${pinnedPublicKey}; it names key ${release.publicKey}. Refusing it.`)
  }
  const seen = new Set<string>()
  for (const e of release.manifest.entries) {
    if (seen.has(e.path)) throw new UpswarmError('UPSWARM_E_MANIFEST', `release manifest from ${where} lists ${e.path} twice`)
    seen.add(e.path)
  }
  verified.add(release)
  return release
}

/**
 * Parses and verifies a signed release under the key it names itself. It proves who signed it,
 * not that the signer is trusted: the caller checks the key against the trust file (or a pin).
 */
export function decodeSelfSigned(bytes: Uint8Array | string, where: string): SignedRelease {
  const id = bytesId(bytes)
  const known = decoded.get(id)?.deref()
  if (known) return decodeKnown(bytes, id, known.publicKey, where)
  let named = ''
  try {
    named = SignedReleaseSchema.shape.publicKey.parse((JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8')) as { publicKey?: unknown }).publicKey)
  } catch {
    // decodeRelease below reports what is wrong with it
  }
  return decodeKnown(bytes, id, named, where)
}
