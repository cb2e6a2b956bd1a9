// What a long-running sharing daemon keeps of the releases it heard on the stream
// (actors/share-daemon/stream-releases.ts): whole manifests only while they may still be
// installed, every revision's hash always (the staged rollout and the feed fallback list them).
import { describe, expect, it } from 'vitest'
import { createHash, randomUUID } from 'node:crypto'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { manifestSha256, signManifest, type SignedRelease } from '../../infra/release/manifest.ts'
import { StreamReleases } from '../../actors/share-daemon/stream-releases.ts'

const key = generatePublisherKey()
const product = randomUUID()
function release(rev: number): SignedRelease {
  const h = createHash('sha256').update(`r${rev}`).digest('hex')
  return signManifest({ format: 1, product, rev, createdAt: new Date().toISOString(), pieceSize: 1 << 20, entries: [{ path: 'a.txt', kind: 'file', mode: 0o644, size: 2, sha1: h.slice(0, 40), sha256: h }] }, key)
}

describe('stream releases', () => {
  it('stream releases — a daemon installed at r3 that hears r2…r6 keeps the manifests of r4…r6 and the hashes of all', () => {
    const held = new StreamReleases()
    const rs = [2, 3, 4, 5, 6].map(release)
    for (const r of rs) held.add(r, 3)
    expect(held.held).toBe(3)
    expect(held.get(2)).toBeUndefined()
    expect(held.get(3)).toBeUndefined()
    expect(held.get(5)).toBe(rs[3])
    expect([...held.list()]).toEqual(rs.map((r) => [r.manifest.rev, manifestSha256(r.manifest)]))
    expect(held.newest()).toBe(6)
  })

  it('stream releases — after the update to the newest only its manifest stays; after a rollback below it, still the newest', () => {
    const held = new StreamReleases()
    for (const rev of [4, 5, 6]) held.add(release(rev), 3)
    held.prune(6)
    expect(held.held).toBe(1)
    expect(held.get(6)?.manifest.rev).toBe(6)
    held.prune(2)
    expect(held.get(6)?.manifest.rev).toBe(6)
    expect(held.get(5)).toBeUndefined()
    expect([...held.list().keys()]).toEqual([4, 5, 6])
  })
})
