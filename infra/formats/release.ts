// Format-2 release documents (docs/formats.md §1.3; issue 13 item 3, issue 15): the small signed
// root of one revision — product, rev, the parent's signed-bytes hash (a chain, R-VERIFY), and the
// SHA-256 of the top tree node, from which every node and unit is reached by hash. ~1 KB whatever
// the size of the tree, so the signed metadata of an update scales with the change. Signed by the
// product's `publish` role of the root, with its threshold (several signatures, unlike format 1).
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import type { PublisherKey } from '../release/keys.ts'
import { UUID_RE } from '../release/manifest.ts'
import { HEX64, SIGNED_FORMAT, TimeString, encodeEnvelope, parseEnvelope, signEnvelope, signedBytes, timeString, validSigners, type Envelope } from './envelope.ts'
import type { Root } from './root.ts'

export const RELEASE_MAX_BYTES = 16 * 1024
/** §1.7: FastCDC 2020; the parameters are a field, not a format. */
export const DEFAULT_CHUNKER = { id: 'fastcdc-2020', min: 16_384, avg: 65_536, max: 262_144, whole: 65_536 } as const

const Count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const ChunkerSchema = z.object({
  id: z.string().min(1).max(64),
  min: z.number().int().min(64).max(1 << 20),
  avg: z.number().int().min(64).max(1 << 20),
  max: z.number().int().min(64).max(1 << 20),
  whole: z.number().int().min(0).max(1 << 20),
}).refine((k) => k.min <= k.avg && k.avg <= k.max, 'chunker sizes must satisfy min ≤ avg ≤ max')
const ReleaseSchema = z.object({
  type: z.literal('release'),
  format: z.literal(SIGNED_FORMAT),
  product: z.string().regex(UUID_RE, 'product ids are lowercase UUIDs'),
  rev: z.number().int().min(1),
  parent: z.string().regex(HEX64).optional(),
  label: z.string().max(200).optional(),
  createdAt: TimeString,
  root: z.number().int().min(1),
  tree: z.string().regex(HEX64),
  stats: z.object({ files: Count, bytes: Count, nodes: Count }),
  chunker: ChunkerSchema,
  deltas: z.array(z.string().regex(HEX64)).max(256).optional(),
  // §1.9 (issue 13 item 4): the pack-list node naming the packs that hold this release's small units.
  packs: z.string().regex(HEX64).optional(),
  v1: z.string().regex(HEX64).optional(),
  staged: z.boolean().optional(),
  critical: z.array(z.string()).optional(),
  // A product's first format-2 release names no parent, whatever its revision: a product with
  // format-1 history starts its format-2 chain at its next revision (docs/formats.md §2.2). Every
  // later one names its predecessor (appendRelease2 and checkReleaseChain hold them to it).
}).refine((r) => r.rev > 1 || r.parent === undefined, { message: 'r1 has no parent', path: ['parent'] })
const RELEASE_FIELDS = ['type', 'format', 'product', 'rev', 'parent', 'label', 'createdAt', 'root', 'tree', 'stats', 'chunker', 'deltas', 'packs', 'v1', 'staged', 'critical']
export type Release = z.infer<typeof ReleaseSchema>

export interface SignedRelease2 {
  env: Envelope
  release: Release
  /** SHA-256 of the signed bytes: what the next revision's `parent` and a fresh statement's `release` name. */
  id: string
}

export function releaseIdOf(env: Envelope): string {
  return createHash('sha256').update(signedBytes(env.signed)).digest('hex')
}

/** Parses a release document (shape, size, critical fields); signatures are checked by verifyRelease. */
export function parseRelease(bytes: Uint8Array | string, where: string): SignedRelease2 {
  const env = parseEnvelope(bytes, 'release', where, RELEASE_MAX_BYTES, RELEASE_FIELDS)
  const parsed = ReleaseSchema.safeParse(env.signed)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_MANIFEST', `release document from ${where} is malformed at ${issue?.path.join('.') || '(top)'}: ${issue?.message}`)
  }
  return { env, release: parsed.data, id: releaseIdOf(env) }
}

/**
 * Parses and verifies a release under `root`: the product is in the root, the root is at least the
 * version the release names, the revision is not below a declared compromise (`minRev`), and the
 * product's publish role signed it with its threshold. The chain (parent) is the caller's.
 */
export function verifyRelease(bytes: Uint8Array | string, root: Root, where: string): SignedRelease2 {
  const r = parseRelease(bytes, where)
  const { release } = r
  const what = `release r${release.rev} of ${release.product} from ${where}`
  const p = root.products[release.product]
  if (!p) throw new UpswarmError('UPSWARM_E_SIGNATURE', `${what}: the product is not in root version ${root.version}; refusing it`)
  if (release.root > root.version) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE', `${what} was signed under root version ${release.root}; this client holds version ${root.version}: fetch the newer root first`)
  }
  if (p.minRev !== undefined && release.rev < p.minRev) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE', `${what}: root version ${root.version} accepts revisions from r${p.minRev} only (a compromise was declared)`)
  }
  const signers = validSigners(r.env, root.keys, p.publish.keys)
  if (signers.size < p.publish.threshold) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE',
      `${what} carries ${signers.size} valid signature(s) by publish keys of root version ${root.version}; it needs ${p.publish.threshold}. Refusing it`)
  }
  return r
}

/** Checks that `next` follows `prev` in the hash chain (R-VERIFY): same product, rev + 1, parent = prev's id. */
export function checkReleaseChain(prev: SignedRelease2, next: SignedRelease2, where: string): void {
  const a = prev.release
  const b = next.release
  if (b.product !== a.product || b.rev !== a.rev + 1 || b.parent !== prev.id) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE',
      `release r${b.rev} of ${b.product} from ${where} does not follow r${a.rev} (its parent is ${b.parent?.slice(0, 16) ?? 'none'}…, r${a.rev} is ${prev.id.slice(0, 16)}…): refusing a forked or reordered history`)
  }
}

export interface ReleaseDraft {
  product: string
  rev: number
  parent?: string
  label?: string
  createdAtMs: number
  root: number
  tree: string
  stats: { files: number; bytes: number; nodes: number }
  chunker?: Release['chunker']
  deltas?: string[]
  packs?: string
  v1?: string
  staged?: boolean
}

/** Signs a release with every key given (the product's publish threshold may need several). */
export function signRelease(d: ReleaseDraft, keys: PublisherKey[]): { bytes: Buffer; id: string } {
  const signed: Record<string, unknown> = {
    type: 'release', format: SIGNED_FORMAT, product: d.product, rev: d.rev, ...(d.parent ? { parent: d.parent } : {}),
    ...(d.label !== undefined ? { label: d.label } : {}), createdAt: timeString(d.createdAtMs), root: d.root, tree: d.tree,
    stats: d.stats, chunker: d.chunker ?? { ...DEFAULT_CHUNKER }, ...(d.deltas?.length ? { deltas: d.deltas } : {}),
    ...(d.packs ? { packs: d.packs } : {}),
    ...(d.v1 ? { v1: d.v1 } : {}), ...(d.staged ? { staged: true } : {}),
  }
  const env = signEnvelope(signed, keys)
  const bytes = encodeEnvelope(env)
  parseRelease(bytes, 'the release being signed') // never sign what a reader refuses
  return { bytes, id: releaseIdOf(env) }
}
