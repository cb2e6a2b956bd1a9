import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { bdecode, bencode, BencodeError } from '../../infra/tracker/bencode.ts'
import { encodeAnnounceResponse, parseAnnounceQuery, parseScrapeQuery, TrackerRequestError } from '../../infra/tracker/http-protocol.ts'
import { encodeBytes, parseQuery } from '../../infra/tracker/query.ts'
import { ConnectionIds, parseUdpRequest, PROTOCOL_ID } from '../../infra/tracker/udp-protocol.ts'
import type { AnnounceResult } from '../../infra/tracker/types.ts'

const text = (b: Buffer): string => b.toString('latin1')

describe('tracker protocol', () => {
  it('tracker — bencode encodes BEP 3 examples and sorts dictionary keys as bytes', () => {
    expect(text(bencode('spam'))).toBe('4:spam')
    expect(text(bencode(3))).toBe('i3e')
    expect(text(bencode(-3))).toBe('i-3e')
    expect(text(bencode(['spam', 'eggs']))).toBe('l4:spam4:eggse')
    expect(text(bencode({ spam: ['a', 'b'], cow: 'moo' }))).toBe('d3:cow3:moo4:spaml1:a1:bee')
    expect(text(bencode(new Map([[Buffer.from([0xff]), 1], [Buffer.from([0x01]), 2]])))).toBe('d1:\x01i2e1:\xffi1ee')
  })

  it('tracker — bdecode round-trips and refuses defects', () => {
    const value = bdecode(bencode({ a: [1, 'x', { b: Buffer.from([0, 1, 2]) }] })) as Map<string, unknown>
    expect([...value.keys()]).toEqual(['a'])
    const bad = ['', 'i01e', 'i-0e', 'ie', 'i12', '5:abc', '-1:a', 'l', 'd1:ai1e', 'di1ei2ee', 'x', 'i1ei2e', '01:a', 'i99999999999999999999e']
    for (const b of bad) expect(() => bdecode(Buffer.from(b)), b).toThrow(BencodeError)
    expect(() => bdecode(Buffer.from('l'.repeat(100) + 'e'.repeat(100)))).toThrow(/too deep/)
    expect(() => bdecode(Buffer.from(`l${'i1e'.repeat(50)}e`), { maxItems: 10 })).toThrow(/too many/)
  })

  it('tracker — the query parser keeps raw bytes that URLSearchParams would mangle', () => {
    const hash = randomBytes(20)
    const q = parseQuery(`info_hash=${encodeBytes(hash)}&info_hash=${encodeBytes(hash)}&x=a+b&flag`)
    expect(q.get('info_hash')).toEqual([hash, hash])
    expect(q.get('x')?.[0]?.toString()).toBe('a b')
    expect(q.get('flag')?.[0]?.byteLength).toBe(0)
    expect(() => parseQuery('a=%zz')).toThrow()
    expect(() => parseQuery('a=%4')).toThrow()
    expect(() => parseQuery(Array.from({ length: 65 }, (_, i) => `k${i}=1`).join('&'))).toThrow(/more than 64/)
  })

  it('tracker — an HTTP announce is parsed per BEP 3; compact defaults on, the ip parameter is ignored', () => {
    const hash = randomBytes(20)
    const id = randomBytes(20)
    const a = parseAnnounceQuery(`info_hash=${encodeBytes(hash)}&peer_id=${encodeBytes(id)}&port=6881&uploaded=0&downloaded=0&left=10&event=started&ip=10.9.9.9&numwant=5`, '127.0.0.1')
    expect(a).toMatchObject({ infoHash: hash.toString('hex'), peerId: id.toString('hex'), port: 6881, left: 10, event: 'started', numwant: 5, ip: '127.0.0.1', compact: true })
    expect(() => parseAnnounceQuery(`info_hash=${encodeBytes(hash)}&peer_id=${encodeBytes(id)}&port=70000`, '127.0.0.1')).toThrow(TrackerRequestError)
    expect(parseScrapeQuery(`info_hash=${encodeBytes(hash)}`)).toEqual([hash.toString('hex')])
  })

  it('tracker — compact responses use 6 bytes per IPv4 peer (BEP 23) and 18 per IPv6 peer (BEP 7)', () => {
    const peer = (ip: string, port: number) => ({ peerId: 'aa'.repeat(20), ip, port, infoHash: 'bb'.repeat(20), left: 0, completed: false, at: 0, expires: 1 })
    const result: AnnounceResult = { infoHash: 'bb'.repeat(20), peers: [peer('10.1.2.3', 0x1ae1), peer('::1', 80)], seeders: 2, leechers: 0, intervalMs: 30_000, ttlMs: 90_000 }
    const d = bdecode(encodeAnnounceResponse(result, true, false)) as Map<string, unknown>
    expect(Buffer.from(d.get('peers') as Uint8Array)).toEqual(Buffer.from([10, 1, 2, 3, 0x1a, 0xe1]))
    expect(Buffer.from(d.get('peers6') as Uint8Array)).toEqual(Buffer.from([...Array(15).fill(0), 1, 0, 80]))
    expect(d.get('interval')).toBe(30)
  })

  it('tracker — UDP packets are parsed per BEP 15 with BEP 41 URL data', () => {
    const connect = Buffer.alloc(16)
    connect.writeBigUInt64BE(PROTOCOL_ID, 0)
    connect.writeUInt32BE(0xdeadbeef, 12)
    expect(parseUdpRequest(connect)).toEqual({ ok: true, request: { action: 'connect', transactionId: 0xdeadbeef } })
    const url = Buffer.from('/announce?product=1b4e28ba-2fa1-11d2-883f-0016d3cca427&rev=7')
    const announce = Buffer.concat([Buffer.alloc(98), Buffer.from([1, 2, url.byteLength]), url, Buffer.from([0])])
    announce.writeUInt32BE(1, 8)
    announce.writeUInt32BE(2, 80) // started
    announce.writeInt32BE(-1, 92)
    announce.writeUInt16BE(6881, 96)
    const parsed = parseUdpRequest(announce)
    expect(parsed).toMatchObject({ ok: true, request: { action: 'announce', event: 'started', numwant: 50, port: 6881, product: '1b4e28ba-2fa1-11d2-883f-0016d3cca427', rev: 7 } })
    expect(parseUdpRequest(Buffer.alloc(15))).toEqual({ ok: false, error: 'packet shorter than 16 bytes' })
  })

  it('tracker — connection ids are bound to the address and live two to three minutes', () => {
    const ids = new ConnectionIds()
    const t = 1_000_000_000
    const id = ids.issue('10.0.0.1', t)
    expect(ids.verify(id, '10.0.0.1', t + 119_000)).toBe(true)
    expect(ids.verify(id, '10.0.0.2', t)).toBe(false)
    expect(ids.verify(id, '10.0.0.1', t + 181_000)).toBe(false)
  })
})
