// Which key may sign a release, for a holder that pinned a publisher key (format 1) and may also
// hold a root of trust (issue 10 item 7). With a root, the root decides (rotation, retirement,
// minRev); without one, only the pinned key signs.
import { UpswarmError } from '../errors.ts'
import type { TrustStore } from '../formats/trust-store.ts'
import { decodeSelfSigned, encodeRelease, verifiedUnderOwnKey, type SignedRelease } from './manifest.ts'

export interface ReleaseKeys {
  product: string
  /** The key pinned by `init --pubkey` (or the first publish key of the pinned root). */
  pinnedKey: string
  /** The holder's root chain, when it has one. */
  store?: TrustStore | undefined
}

export interface TrustedRelease {
  release: SignedRelease
  /** Set when a retired key signed it: revisions up to `lastRev` only, reached by the hash chain from `lastRelease`. */
  retired?: { lastRev: number; lastRelease?: string }
}

/** Parses a signed release and checks its signer may sign it; errors say which key and why. */
export function decodeTrusted(bytes: Uint8Array | string, keys: ReleaseKeys, where: string): TrustedRelease {
  return signerTrusted(decodeSelfSigned(bytes, where), keys, where)
}

/**
 * decodeTrusted for a release already decoded (a release feed's block): when a decode verified
 * this very object under the key it names (manifest.ts verifiedUnderOwnKey), only who may sign it
 * is checked; any other object is encoded and decoded in full, as before.
 */
export function trustedRelease(release: SignedRelease, keys: ReleaseKeys, where: string): TrustedRelease {
  return verifiedUnderOwnKey(release) ? signerTrusted(release, keys, where) : decodeTrusted(encodeRelease(release), keys, where)
}

/** May the key that signed `release` (verified under it) sign it for this holder? */
function signerTrusted(release: SignedRelease, keys: ReleaseKeys, where: string): TrustedRelease {
  const { product, rev } = release.manifest
  const verdict = keys.store?.verdict(keys.product, release.publicKey, rev)
  if (product !== keys.product) {
    throw new UpswarmError('UPSWARM_E_MANIFEST', `release manifest from ${where} is of product ${product}, not ${keys.product}; refusing it`)
  }
  if (verdict) {
    if (!verdict.ok) throw new UpswarmError('UPSWARM_E_SIGNATURE', `release manifest from ${where} (r${rev}): ${verdict.reason}; refusing it`)
    return { release, ...(verdict.retired ? { retired: verdict.retired } : {}) }
  }
  if (release.publicKey !== keys.pinnedKey) {
    throw new UpswarmError('UPSWARM_E_SIGNATURE',
      `release manifest from ${where} (product ${product}, r${rev}) is signed by key ${release.publicKey.slice(0, 16)}…, but this copy trusts only ` +
      `key ${keys.pinnedKey.slice(0, 16)}… (pinned at init; a root of trust would let the key rotate); refusing it`)
  }
  return { release }
}
