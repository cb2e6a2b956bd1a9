// The decode memo of signed release manifests (infra/release/manifest.ts): the same bytes reach a
// daemon from the release stream, the release feed, a refresh and its manifest store; they are
// parsed and verified once while the release is held, and the memo never lets through what a full
// decode would refuse (R-VERIFY).
import { describe, expect, it } from 'vitest'
import { createHash, randomUUID } from 'node:crypto'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { decodeRelease, decodeSelfSigned, encodeRelease, releaseDecodes, signManifest, type Manifest } from '../../infra/release/manifest.ts'
import { decodeTrusted, trustedRelease } from '../../infra/release/release-trust.ts'

function manifest(files: number): Manifest {
  const entries = Array.from({ length: files }, (_, i) => {
    const h = createHash('sha256').update(`file ${i}`).digest('hex')
    return { path: `d${i % 7}/f${i}.txt`, kind: 'file' as const, mode: 0o644, size: 100 + i, sha1: h.slice(0, 40), sha256: h, pieces: [h] }
  })
  return { format: 1, product: randomUUID(), rev: 3, createdAt: new Date().toISOString(), pieceSize: 1 << 20, entries }
}

describe('release decode memo', () => {
  it('release decode — the same bytes under the same key are parsed once while the release is held; the copy is the same release', () => {
    const key = generatePublisherKey()
    const bytes = encodeRelease(signManifest(manifest(50), key))
    const before = releaseDecodes.parsed
    const first = decodeRelease(bytes, key.publicKey, 'the stream')
    const again = decodeRelease(Buffer.from(bytes), key.publicKey, 'the feed')
    const self = decodeSelfSigned(bytes, 'a refresh')
    expect(releaseDecodes.parsed - before).toBe(1)
    expect(again).toBe(first)
    expect(self).toBe(first)
    expect(first.manifest.entries).toHaveLength(50)
  })

  it('release decode — a remembered release is refused under another key, and changed bytes are decoded afresh and refused', () => {
    const key = generatePublisherKey()
    const other = generatePublisherKey()
    const bytes = encodeRelease(signManifest(manifest(5), key))
    const held = decodeRelease(bytes, key.publicKey, 'the stream')
    expect(held.manifest.rev).toBe(3)
    expect(() => decodeRelease(bytes, other.publicKey, 'a peer')).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE', message: expect.stringMatching(/from a peer .*not signed by the expected publisher key/) }))
    const tampered = Buffer.from(bytes.toString().replace('"rev":3', '"rev":4'))
    const before = releaseDecodes.parsed
    expect(() => decodeRelease(tampered, key.publicKey, 'a peer')).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE' }))
    expect(() => decodeSelfSigned(tampered, 'a peer')).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE' }))
    expect(releaseDecodes.parsed - before).toBe(2)
    // A refusal is not remembered: the bad bytes are decoded (and refused) every time.
    expect(() => decodeRelease(tampered, key.publicKey, 'a peer')).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE' }))
    expect(releaseDecodes.parsed - before).toBe(3)
  })

  it('release decode — a release a decode verified is trusted by its signer alone; a copy or a changed one goes the whole way', () => {
    const key = generatePublisherKey()
    const other = generatePublisherKey()
    const m = manifest(20)
    const bytes = encodeRelease(signManifest(m, key))
    const keys = { product: m.product, pinnedKey: key.publicKey }
    const fromFeed = decodeRelease(bytes, key.publicKey, 'the release feed')
    // Eight other releases push its bytes out of the decode memo: encoding it again to decode it
    // would now parse it again; the signer's check alone does not.
    for (let i = 0; i < 8; i++) decodeRelease(encodeRelease(signManifest(manifest(2), key)), key.publicKey, 'another')
    const before = releaseDecodes.parsed
    expect(trustedRelease(fromFeed, keys, 'a feed event').release).toBe(fromFeed)
    expect(releaseDecodes.parsed - before).toBe(0)
    // The signer's check is the same either way: another pinned key refuses it.
    const pinnedOther = { product: m.product, pinnedKey: other.publicKey }
    expect(() => trustedRelease(fromFeed, pinnedOther, 'a feed event')).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE', message: expect.stringMatching(/but this copy trusts only/) }))
    expect(() => decodeTrusted(bytes, pinnedOther, 'a feed event')).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE' }))
    // A copy is not the verified object: encoded and decoded in full (its bytes are out of the
    // memo); a changed copy is refused.
    const copy = { ...fromFeed, manifest: { ...fromFeed.manifest, entries: [...fromFeed.manifest.entries] } }
    expect(trustedRelease(copy, keys, 'a copy').release.manifest).toEqual(fromFeed.manifest)
    expect(releaseDecodes.parsed - before).toBe(1)
    const changed = { ...copy, manifest: { ...copy.manifest, rev: 4 } }
    expect(() => trustedRelease(changed, keys, 'a changed copy')).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE' }))
    expect(releaseDecodes.parsed - before).toBe(2)
  })
})
