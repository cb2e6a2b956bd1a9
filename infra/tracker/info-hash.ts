// The fixed mapping between a product revision and a BitTorrent swarm (R-ANNOUNCE, R-PEERLIST):
// info_hash = SHA-1(UTF-8 "upswarm:" + product-uuid (lowercase) + ":" + revision (decimal)).
import { createHash } from 'node:crypto'

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** True for a canonical UUID in any case; callers lower-case it before use. */
export function isProductId(value: string): boolean {
  return value.length === 36 && UUID_RE.test(value.toLowerCase())
}

export function isRevision(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0
}

/** The 20-byte info hash of (product, revision). */
export function infoHash(product: string, rev: number): Buffer {
  return createHash('sha1').update(`upswarm:${product.toLowerCase()}:${rev}`, 'utf8').digest()
}

export function infoHashHex(product: string, rev: number): string {
  return infoHash(product, rev).toString('hex')
}
