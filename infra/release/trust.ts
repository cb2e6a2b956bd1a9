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

/** The format written when no product is private (readable by every upswarm that reads trust files). */
export const TRUST_FORMAT = 1
/** The format that adds `private` to a product; written only when some product is private. */
export const TRUST_FORMAT_PRIVATE = 2
const FORMATS_READ = `this upswarm reads trust files of format ${TRUST_FORMAT} and ${TRUST_FORMAT_PRIVATE}`

const PublicKeyHex = z.string().regex(/^[0-9a-f]{64}$/, 'must be an Ed25519 public key: 64 lowercase hex characters')
const ProductId = z.string().regex(UUID_RE, 'product ids must be lowercase UUIDs')
const PublisherKeys = z.array(PublicKeyHex).min(1, 'must name at least one publisher key')
const TrustV1Schema = z.strictObject({
  format: z.literal(TRUST_FORMAT, `must be ${TRUST_FORMAT} or ${TRUST_FORMAT_PRIVATE} (${FORMATS_READ})`),
  products: z.record(ProductId, z.strictObject({ publisherKeys: PublisherKeys })),
})
const TrustV2Schema = z.strictObject({
  format: z.literal(TRUST_FORMAT_PRIVATE),
  products: z.record(ProductId, z.strictObject({
    publisherKeys: PublisherKeys,
    private: z.literal(true, 'must be true when present (leave it out for a public product)').optional(),
  })),
})
/** Either format; `private` only in format 2 (a format-1 file naming it is refused, as a format-1 reader would). */
export const TrustFileSchema = z.union([TrustV1Schema, TrustV2Schema])

/** In memory: products may carry `private`; `writeTrust` picks the format from them. */
export interface Trust {
  format: number
  products: Record<string, { publisherKeys: string[]; private?: true }>
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
  const parsed = (format === TRUST_FORMAT_PRIVATE ? TrustV2Schema : TrustV1Schema).safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const field = issue?.path.map(String).join('.') || '(root)'
    throw new UpswarmError('UPSWARM_E_CONFIG', `trust file ${file} is malformed at ${field}: ${issue?.message}`)
  }
  return parsed.data
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

  constructor(file: string) {
    this.file = file
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

  /** Why a release of `product` signed by `publicKey` is not trusted, or null when it is. */
  async refusal(product: string, publicKey: string): Promise<string | null> {
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
      this.trust = await loadTrust(this.file, { missingOk: true })
      this.version = version
    }
    return this.trust
  }
}
