// The trust file (issue 10 item 4, ARCHITECTURE §6b "nothing trusted by position"): which
// publisher keys may sign each product's releases. Servers, the proxy and the gateway take a
// product's keys from here, never from the first release they see; `publish --trust` pins a new
// product to its key. `up` hands one out; in production the operator writes it.
//
//   { "format": 1, "products": { "<uuid>": { "publisherKeys": ["<ed25519 public key hex>"] } } }
//   { "format": 2, "products": { "<uuid>": { "publisherKeys": ["<hex>"], "private": true } } }
//
// Unknown fields are refused rather than ignored: a later field that restricts (a root key, a
// private product) must never be dropped silently by an older reader. Format 2 adds `private`
// (issue 10 item 9: servers serve the product to fleet members only); a file is written as format
// 2 only when some product is private, so files without one stay readable by format-1 readers,
// and a format-1 reader refuses a format-2 file by its format number instead of serving a
// private product to anyone.
import { readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { z } from 'zod'
import { UpswarmError, errorMessage } from '../errors.ts'
import { withLock } from '../store/lock-file.ts'
import { writeFileAtomic } from '../store/working-copy/atomic.ts'
import { UUID_RE } from './manifest.ts'
import { encodeEnvelope } from '../formats/envelope.ts'
import { keyVerdict, parseRoot, productKeys, verifyNextRoot, verifyPinnedRoot, type Root, type SignedRoot } from '../formats/root.ts'

/** The format written when no product is private (readable by every upswarm that reads trust files). */
export const TRUST_FORMAT = 1
/** The format that adds `private` to a product; written only when some product is private. */
export const TRUST_FORMAT_PRIVATE = 2
const FORMATS_READ = `this upswarm reads trust files of format ${TRUST_FORMAT}, ${TRUST_FORMAT_PRIVATE} and 3`

const PublicKeyHex = z.string().regex(/^[0-9a-f]{64}$/, 'must be an Ed25519 public key: 64 lowercase hex characters')
const ProductId = z.string().regex(UUID_RE, 'product ids must be lowercase UUIDs')
const PublisherKeys = z.array(PublicKeyHex).min(1, 'must name at least one publisher key')
const TrustV1Schema = z.strictObject({
  format: z.literal(TRUST_FORMAT, `must be ${TRUST_FORMAT}, ${TRUST_FORMAT_PRIVATE} or 3 (${FORMATS_READ})`),
  products: z.record(ProductId, z.strictObject({ publisherKeys: PublisherKeys })),
})
const TrustV2Schema = z.strictObject({
  format: z.literal(TRUST_FORMAT_PRIVATE),
  products: z.record(ProductId, z.strictObject({
    publisherKeys: PublisherKeys,
    private: z.literal(true, 'must be true when present (leave it out for a public product)').optional(),
  })),
})
/**
 * Format 3 pins a root of trust (issue 10 item 7) instead of keys: a product's publisher keys
 * come from the root chain, which the role follows on UPSWARM_META, so keys rotate without a
 * new trust file. `products` only marks private ones.
 */
export const TRUST_FORMAT_ROOT = 3
const TrustV3Schema = z.strictObject({
  format: z.literal(TRUST_FORMAT_ROOT),
  root: z.record(z.string(), z.unknown()),
  products: z.record(ProductId, z.strictObject({ private: z.literal(true, 'must be true when present (leave it out for a public product)').optional() })).optional(),
})
/** Either format; `private` only in format 2 (a format-1 file naming it is refused, as a format-1 reader would). */
export const TrustFileSchema = z.union([TrustV1Schema, TrustV2Schema, TrustV3Schema])

/** In memory: products may carry `private`; `writeTrust` picks the format from them. */
export interface Trust {
  format: number
  products: Record<string, { publisherKeys: string[]; private?: true }>
  /** Format 3: the pinned root, verified under its own root keys; `products` then derive from it. */
  root?: SignedRoot
}

export function emptyTrust(): Trust {
  return { format: TRUST_FORMAT, products: {} }
}

/** Parses a trust file's text; errors name the file and the field. */
export function parseTrust(text: string, file: string): Trust {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `trust file ${file} is not valid JSON: ${errorMessage(err)}`, { cause: err })
  }
  // One schema per format, so errors name the field of the format the file says it is.
  const format = (json as { format?: unknown } | null)?.format
  const malformed = (error: z.ZodError): UpswarmError => {
    const issue = error.issues[0]
    const field = issue?.path.map(String).join('.') || '(root)'
    return new UpswarmError('UPSWARM_E_CONFIG', `trust file ${file} is malformed at ${field}: ${issue?.message}`)
  }
  if (format === TRUST_FORMAT_ROOT) {
    const parsed = TrustV3Schema.safeParse(json)
    if (!parsed.success) throw malformed(parsed.error)
    let root: SignedRoot
    try {
      root = parseRoot(JSON.stringify(parsed.data.root), `trust file ${file}`)
      verifyPinnedRoot(root, `trust file ${file}`)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `trust file ${file}: its root cannot be pinned: ${errorMessage(err)}`, { cause: err })
    }
    return { format: TRUST_FORMAT_ROOT, root, products: productsOfRoot(root, parsed.data.products ?? {}) }
  }
  const parsed = (format === TRUST_FORMAT_PRIVATE ? TrustV2Schema : TrustV1Schema).safeParse(json)
  if (!parsed.success) throw malformed(parsed.error)
  return parsed.data
}

/** A format-3 trust's products: every product of the root with its current and retired keys, private as the file marks it. */
function productsOfRoot(root: SignedRoot, marks: Record<string, { private?: true }>): Trust['products'] {
  const out: Trust['products'] = {}
  for (const product of Object.keys(root.root.products)) {
    const { current, retired } = productKeys(root.root, product)
    out[product] = { publisherKeys: [...current, ...retired], ...(marks[product]?.private ? { private: true as const } : {}) }
  }
  return out
}

/** Reads and validates a trust file; `missingOk` makes a missing file an empty trust (nothing pinned). */
export async function loadTrust(file: string, opts: { missingOk?: boolean } = {}): Promise<Trust> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (opts.missingOk) return emptyTrust()
      throw new UpswarmError('UPSWARM_E_CONFIG', `trust file ${file} does not exist (create it with \`upswarm publish --trust ${file}\`, or write ${JSON.stringify(emptyTrust())})`, { cause: err })
    }
    throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read trust file ${file}: ${errorMessage(err)}`, { cause: err })
  }
  return parseTrust(text, file)
}

/** The keys trusted to sign `product`'s releases, or undefined when the product is not pinned. */
export function trustedKeys(trust: Trust, product: string): string[] | undefined {
  return trust.products[product.toLowerCase()]?.publisherKeys
}

/** Whether the trust file marks `product` private (served to fleet members only). */
export function isPrivate(trust: Trust, product: string): boolean {
  return trust.products[product.toLowerCase()]?.private === true
}

/**
 * Pins `product` to `publicKey` (no-op when that key is already trusted for it); creates the
 * file when missing. Refuses with UPSWARM_E_CONFIG when the product is pinned to other keys.
 * `private` marks the product private when pinning it, and marks an already pinned product
 * private (never public again: making a product public is an operator's edit of the file).
 * Written atomically (readers see the old file or the new one) under the file's lock, so
 * publishers pinning different products at once lose no pin.
 */
export async function pinProduct(file: string, product: string, publicKey: string, opts: { private?: boolean } = {}): Promise<{ pinned: boolean }> {
  const id = product.toLowerCase()
  return withLock(file, async () => {
    const trust = await loadTrust(file, { missingOk: true })
    const keys = trustedKeys(trust, id)
    if (trust.root) {
      if (keys?.includes(publicKey) && !opts.private) return { pinned: false }
      throw new UpswarmError('UPSWARM_E_CONFIG',
        `trust file ${file} pins a root of trust (version ${trust.root.root.version}): products and keys are added to the root (\`upswarm root edit\`), not to this file`)
    }
    if (keys && !keys.includes(publicKey)) throw pinnedElsewhere(id, keys, file)
    const markPrivate = opts.private === true && !isPrivate(trust, id)
    if (keys && !markPrivate) return { pinned: false }
    const entry = { publisherKeys: keys ?? [publicKey], ...(opts.private || isPrivate(trust, id) ? { private: true as const } : {}) }
    await writeTrust(file, { ...trust, products: { ...trust.products, [id]: entry } })
    return { pinned: !keys }
  })
}

export function pinnedElsewhere(product: string, keys: string[], where: string): UpswarmError {
  return new UpswarmError('UPSWARM_E_CONFIG',
    `product ${product} is pinned to key ${keys.join(', ')} (${where}); refusing to publish it with another key`,
    { details: { product, keys } })
}

export async function writeTrust(file: string, trust: Trust): Promise<void> {
  const anyPrivate = Object.values(trust.products).some((p) => p.private === true)
  const out = { ...trust, format: anyPrivate ? TRUST_FORMAT_PRIVATE : TRUST_FORMAT }
  const schema = anyPrivate ? TrustV2Schema : TrustV1Schema
  // The temporary file sits beside the target, so the rename stays on one file system.
  await writeFileAtomic(file, JSON.stringify(schema.parse(out), null, 2) + '\n', dirname(file))
}

/**
 * A trust file for long-running roles: every lookup checks the file's identity (inode, size,
 * mtime) and re-reads it when it changed, so a product pinned by `publish` or by the operator is
 * trusted from the next lookup on, without a restart and without a timer. A missing file trusts
 * nothing; a malformed one makes lookups throw (the caller retries) rather than trust nothing
 * silently or keep a key the operator removed.
 */
export class TrustStore {
  readonly file: string
  private trust: Trust = emptyTrust()
  private version = ''
  /** Format 3: the root chain from the file's pin, extended by roots read from the stream. */
  private chain: SignedRoot[] = []
  private rootSource: ((from: number) => Promise<string[]>) | undefined
  private lastRootLook = 0

  constructor(file: string) {
    this.file = file
  }

  /**
   * Where newer roots come from (UPSWARM_META, read by the role's connection). Looked at when a
   * release's key is refused, at most once every 2 s, so a rotation pushed before its first
   * release is never missed and junk cannot make the role read the stream in a loop.
   */
  followRoots(source: (from: number) => Promise<string[]>): void {
    this.rootSource = source
  }

  /** The newest root version held (0 without a root). */
  get rootVersion(): number {
    return this.chain.at(-1)?.root.version ?? 0
  }

  /** Takes the next links of the chain from `texts`; returns how many were new. Others are ignored (the stream's readers report them). */
  acceptRoots(texts: string[], where: string): number {
    let added = 0
    for (const t of texts) {
      const tip = this.chain.at(-1)
      if (!tip) return added
      let next: SignedRoot
      try {
        next = parseRoot(t, where)
        if (next.root.version !== tip.root.version + 1) continue
        verifyNextRoot(tip.root, next, where)
      } catch {
        continue
      }
      this.chain.push(next)
      added++
    }
    if (added > 0) this.trust = { ...this.trust, products: productsOfRoot(this.chain.at(-1)!, privateMarks(this.trust)) }
    return added
  }

  private async lookForRoots(): Promise<void> {
    if (!this.rootSource || this.chain.length === 0 || Date.now() - this.lastRootLook < 2000) return
    this.lastRootLook = Date.now()
    const texts = await this.rootSource(this.rootVersion + 1).catch(() => [])
    this.acceptRoots(texts, 'the root stream')
  }

  /**
   * The newest root held (format 3), after a look for newer ones on the stream when it is older
   * than `version` (a format-2 release names the root it was signed under); undefined without a root.
   */
  async rootFor(version: number): Promise<Root | undefined> {
    await this.current()
    if (this.chain.length === 0) return undefined
    if (this.rootVersion < version) await this.lookForRoots()
    return this.chain.at(-1)!.root
  }

  /** Reads the file now: a malformed trust file fails at start, not at the first release. */
  async ready(): Promise<this> {
    await this.current()
    return this
  }

  async keysFor(product: string): Promise<string[] | undefined> {
    return trustedKeys(await this.current(), product)
  }

  /** The trust file as it is now (re-read when it changed). */
  async snapshot(): Promise<Trust> {
    return this.current()
  }

  /** Whether the file marks `product` private now. */
  async isPrivate(product: string): Promise<boolean> {
    return isPrivate(await this.current(), product)
  }

  /** Those of `products` the file pins now (one look at the file for all of them). */
  async pinnedAmong(products: string[]): Promise<string[]> {
    const trust = await this.current()
    return products.filter((p) => trustedKeys(trust, p))
  }

  /**
   * Why a release of `product` signed by `publicKey` is not trusted, or null when it is. With a
   * root (format 3) the root decides for revision `rev` (a retired key signs nothing after its
   * last revision), after a look for newer roots when it refuses.
   */
  async refusal(product: string, publicKey: string, rev?: number): Promise<string | null> {
    await this.current()
    if (this.chain.length > 0) {
      const judge = (): string | null => {
        const tip = this.chain.at(-1)!.root
        if (rev === undefined) return this.trust.products[product]?.publisherKeys.includes(publicKey) ? null : `key ${publicKey} may not sign releases of ${product} (root version ${tip.version})`
        const v = keyVerdict(tip, product, publicKey, rev)
        return v.ok ? null : v.reason
      }
      if (judge() === null) return null
      await this.lookForRoots()
      return judge()
    }
    const keys = await this.keysFor(product)
    if (!keys) return `product ${product} is not pinned in trust file ${this.file}${this.version === 'missing' ? ' (the file does not exist)' : ''}`
    if (!keys.includes(publicKey)) return `product ${product} is pinned to key ${keys.join(', ')} in trust file ${this.file}, not to ${publicKey}`
    return null
  }

  private async current(): Promise<Trust> {
    let version: string
    try {
      const st = await stat(this.file)
      version = `${st.ino}:${st.size}:${st.mtimeMs}`
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read trust file ${this.file}: ${errorMessage(err)}`, { cause: err })
      version = 'missing'
    }
    if (version !== this.version) {
      const trust = await loadTrust(this.file, { missingOk: true })
      const held = this.chain
      this.trust = trust
      this.chain = trust.root ? [trust.root] : []
      // A re-read file keeps the roots followed since, when they extend its pin.
      if (trust.root && held.length > 0) this.acceptRoots(held.map((r) => encodeEnvelope(r.env).toString('utf8')), `trust file ${this.file}`)
      this.version = version
    }
    return this.trust
  }
}

function privateMarks(trust: Trust): Record<string, { private?: true }> {
  const out: Record<string, { private?: true }> = {}
  for (const [p, e] of Object.entries(trust.products)) if (e.private) out[p] = { private: true }
  return out
}
