import { randomBytes, randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { isUpswarmError } from '../../infra/errors.ts'
import { infoHashHex } from '../../infra/tracker/info-hash.ts'
import { PeerRegistry } from '../../infra/tracker/registry.ts'
import { PeerSet } from '../../infra/tracker/peer-set.ts'
import { addressOwner, identityOwner, type AnnounceInput } from '../../infra/tracker/types.ts'

const peerId = (): string => randomBytes(20).toString('hex')
/** Peers announced over HTTP or UDP from this machine. */
const local = addressOwner('127.0.0.1')

function base(over: Partial<AnnounceInput>): AnnounceInput {
  return { peerId: peerId(), ip: '127.0.0.1', port: 7000, left: 0, event: 'started', numwant: 50, ...over }
}

describe('tracker registry', () => {
  it('tracker — info_hash is SHA-1 of "upswarm:<uuid lowercase>:<rev>"', () => {
    // Computed independently: printf 'upswarm:1b4e28ba-2fa1-11d2-883f-0016d3cca427:7' | sha1sum
    expect(infoHashHex('1B4E28BA-2FA1-11D2-883F-0016D3CCA427', 7)).toBe('93b942f061e56f5e61c0de185d92557bc55edb40')
  })

  it('tracker — peers of the same (product, rev) see each other, not themselves nor other revisions', () => {
    const r = new PeerRegistry()
    const product = randomUUID()
    const a = base({ product, rev: 1, port: 7001 })
    const b = base({ product, rev: 1, port: 7002 })
    const c = base({ product, rev: 2, port: 7003 })
    r.announce(a, local)
    r.announce(c, local)
    const res = r.announce(b, local)
    expect(res.peers.map((p) => p.port)).toEqual([7001])
    expect(res.infoHash).toBe(infoHashHex(product, 1))
    expect(res.seeders).toBe(2)
    expect(r.peersOf(product, undefined, 10).map((p) => [p.port, p.rev]).sort()).toEqual([[7001, 1], [7002, 1], [7003, 2]])
    expect(r.peersOf(product, 2, 10).map((p) => p.port)).toEqual([7003])
  })

  it('tracker — a peer that moves to a new revision leaves the old swarm', () => {
    const r = new PeerRegistry()
    const product = randomUUID()
    const a = base({ product, rev: 1 })
    r.announce(a, local)
    r.announce({ ...a, rev: 2, event: 'completed' }, local)
    expect(r.peersOf(product, 1, 10)).toEqual([])
    expect(r.peersOf(product, 2, 10)).toHaveLength(1)
    expect(r.scrape(infoHashHex(product, 2))).toEqual({ seeders: 1, leechers: 0, completed: 1 })
  })

  it('tracker — an unknown info hash is a swarm of its own until a named announce merges it', () => {
    const r = new PeerRegistry()
    const product = randomUUID()
    const hash = infoHashHex(product, 5)
    const bt = base({ infoHash: hash, port: 7100, left: 100 })
    r.announce(bt, local)
    expect(r.peersOf(product, undefined, 10)).toEqual([]) // the product does not know it yet…
    expect(r.peersOf(product, 5, 10).map((p) => [p.port, p.rev])).toEqual([[7100, 5]]) // …its swarm does
    const named = r.announce(base({ product, rev: 5, port: 7101 }), local)
    expect(named.peers.map((p) => ({ port: p.port, product: p.product, rev: p.rev }))).toEqual([{ port: 7100, product, rev: 5 }])
    expect(r.peersOf(product, undefined, 10).map((p) => p.port).sort()).toEqual([7100, 7101])
    expect(r.size).toBe(2)
  })

  it('tracker — a named info hash that does not match product/rev is refused', () => {
    const r = new PeerRegistry()
    const product = randomUUID()
    let err: unknown
    try {
      r.announce(base({ product, rev: 1, infoHash: infoHashHex(product, 2) }), local)
    } catch (e) {
      err = e
    }
    expect(isUpswarmError(err, 'UPSWARM_E_BAD_REQUEST')).toBe(true)
  })

  it('tracker — stopped removes the peer; expired peers are not listed and are swept', () => {
    let now = 1_000_000
    const r = new PeerRegistry({ peerTtlMs: 3_000, intervalMs: 1_000, now: () => now })
    const product = randomUUID()
    const a = base({ product, rev: 1 })
    const b = base({ product, rev: 1 })
    r.announce(a, local)
    r.announce(b, local)
    r.announce({ ...a, event: 'stopped' }, local)
    expect(r.peersOf(product, 1, 10).map((p) => p.peerId)).toEqual([b.peerId])
    now += 3_000
    expect(r.peersOf(product, 1, 10)).toEqual([])
    r.sweep()
    expect(r.size).toBe(0)
  })

  it('tracker — numwant is clamped to 200 and answers hand out different peers', () => {
    const r = new PeerRegistry()
    const product = randomUUID()
    for (let i = 0; i < 1_000; i++) r.announce(base({ product, rev: 1, port: 1000 + i }), local)
    const a = r.announce(base({ product, rev: 1, numwant: 2 ** 31 - 1 }), local)
    expect(a.peers).toHaveLength(200)
    expect(new Set(a.peers.map((p) => p.peerId)).size).toBe(200)
    const b = r.announce(base({ product, rev: 1, numwant: 200 }), local)
    expect(b.peers.map((p) => p.peerId)).not.toEqual(a.peers.map((p) => p.peerId))
  })

  it('tracker — a full registry refuses new peers but keeps serving known ones', () => {
    const r = new PeerRegistry({ maxPeers: 2 })
    const product = randomUUID()
    const a = base({ product, rev: 1 })
    r.announce(a, local)
    r.announce(base({ product, rev: 1 }), local)
    expect(() => r.announce(base({ product, rev: 1 }), local)).toThrow(/tracker full/)
    expect(r.announce({ ...a, event: 'update' }, local).peers).toHaveLength(1)
  })

  it('tracker — a UDP re-announce without a public key keeps the one given before', () => {
    const r = new PeerRegistry()
    const product = randomUUID()
    const publicKey = randomBytes(32).toString('hex')
    const a = base({ product, rev: 1, publicKey })
    r.announce(a, local)
    r.announce({ ...a, publicKey: undefined, event: 'update' }, local)
    expect(r.peersOf(product, 1, 10)[0]?.publicKey).toBe(publicKey)
  })

  it('tracker — only the identity that announced a peer id may stop or replace it, or the address it lists', () => {
    let now = 1_000_000
    const r = new PeerRegistry({ peerTtlMs: 3_000, intervalMs: 1_000, now: () => now })
    const product = randomUUID()
    const alice = identityOwner('alice')
    const mallory = identityOwner('mallory')
    const a = base({ product, rev: 1, ip: '10.0.0.1', port: 7001 })
    r.announce(a, alice)
    expect(() => r.announce({ ...a, event: 'stopped' }, mallory)).toThrow(/cannot stop peer .*another identity announced it/)
    expect(() => r.announce({ ...a, ip: '10.6.6.6', port: 6666 }, mallory)).toThrow(/cannot replace peer/)
    expect(() => r.announce({ ...a, event: 'stopped' }, addressOwner('10.6.6.6'))).toThrow(/cannot stop peer/)
    expect(r.peersOf(product, 1, 10)).toEqual([expect.objectContaining({ peerId: a.peerId, ip: '10.0.0.1', port: 7001 })])
    // A BitTorrent client at the listed address may; the entry stays alice's.
    r.announce({ ...a, left: 5, event: 'update' }, addressOwner('10.0.0.1'))
    expect(() => r.announce({ ...a, event: 'stopped' }, mallory)).toThrow(/cannot stop peer/)
    r.announce({ ...a, event: 'stopped' }, alice)
    expect(r.peersOf(product, 1, 10)).toEqual([])
    // Once an entry has expired, its peer id is free again.
    r.announce(a, alice)
    now += 3_000
    r.announce({ ...a, ip: '10.0.0.2' }, mallory)
    expect(r.peersOf(product, 1, 10).map((p) => p.ip)).toEqual(['10.0.0.2'])
  })

  it('tracker — an identity lists a bounded number of peers, per product and in all', () => {
    const r = new PeerRegistry({ maxPeersPerIdentity: { product: 3, total: 5 } })
    const product = randomUUID()
    const flooder = identityOwner('flooder')
    const refusals: string[] = []
    for (let i = 0; i < 50; i++) {
      try {
        r.announce(base({ product, rev: 1, ip: `10.1.0.${i}`, port: 1000 + i }), flooder)
      } catch (err) {
        refusals.push((err as Error).message)
      }
    }
    expect(r.peersOf(product, undefined, 100)).toHaveLength(3)
    expect(refusals).toHaveLength(47)
    expect(refusals[0]).toMatch(/identity flooder already lists 3 peers of product/)
    // Re-announcing a listed peer is no new entry; another identity is not affected.
    const [listed] = r.peersOf(product, 1, 1)
    r.announce(base({ product, rev: 1, peerId: listed!.peerId, ip: listed!.ip, port: listed!.port, event: 'update' }), flooder)
    r.announce(base({ product, rev: 1 }), identityOwner('honest'))
    // Invented products hit the total.
    for (let i = 0; i < 5; i++) {
      try {
        r.announce(base({ product: randomUUID(), rev: 1 }), flooder)
      } catch (err) {
        refusals.push((err as Error).message)
      }
    }
    expect(refusals.at(-1)).toMatch(/identity flooder already lists 5 peers,/)
    expect(r.size).toBe(6)
    // A stopped peer frees its slot.
    r.announce(base({ product, rev: 1, peerId: listed!.peerId, event: 'stopped' }), flooder)
    r.announce(base({ product, rev: 1 }), flooder)
  })

  it('tracker — a swarm keeps its peers by site: a peer that moves to another site, or leaves, is sampled from its new site only, or from none', () => {
    const set = new PeerSet()
    const entry = (peerId: string, site?: string) => ({ peerId, ip: '127.0.0.1', port: 7000, infoHash: 'ab'.repeat(20), left: 0, completed: false, at: 0, expires: 10_000, ...(site ? { site } : {}) })
    set.set('a', entry('a', 'east'))
    set.set('b', entry('b', 'east'))
    set.set('c', entry('c'))
    const ids = (site: string) => set.sampleSite(site, 10, undefined, 0).map((e) => e.peerId).sort()
    expect(ids('east')).toEqual(['a', 'b'])
    set.set('b', entry('b', 'west'))
    expect(ids('east')).toEqual(['a'])
    expect(ids('west')).toEqual(['b'])
    set.delete('a')
    set.set('b', entry('b'))
    expect(ids('east')).toEqual([])
    expect(ids('west')).toEqual([])
    expect(set.size).toBe(2)
  })
})
