// Bad input at the doors (issue: truncated, oversized or malformed packets, wrong connection ids,
// bad query strings, non-UUID products, absurd numwant): an error where the protocol has one,
// otherwise dropped; never a crash. Every case runs against real sockets.
import { connect } from 'node:net'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { bdecode } from '../../infra/tracker/bencode.ts'
import { newProduct, testConnection } from '../helpers/cluster.ts'
import { announceQuery, httpGet, pct, UdpProbe } from '../helpers/tracker-wire.ts'

type UdpCase = { name: string; packet: (cid: Buffer) => Buffer; expect: 'error' | 'drop' | 'announce' }
type HttpCase = { name: string; path: string; method?: string; status: number; failure?: RegExp }

const TX = 0x5151
const hash = randomBytes(20)
const product = newProduct()
const ann = (cid: Buffer, over: Partial<Parameters<typeof UdpProbe.announcePacket>[1]> = {}) =>
  UdpProbe.announcePacket(cid, { infoHash: hash, peerId: randomBytes(20), port: 9999, tx: TX, ...over })
const withOptions = (cid: Buffer, options: number[]) => Buffer.concat([ann(cid), Buffer.from(options)])
const setU32 = (b: Buffer, at: number, v: number) => (b.writeUInt32BE(v, at), b)

const udpCases: UdpCase[] = [
  { name: 'empty packet', packet: () => Buffer.alloc(0), expect: 'drop' },
  { name: '15 bytes: no transaction id', packet: () => Buffer.alloc(15), expect: 'drop' },
  { name: 'oversized packet', packet: (cid) => Buffer.concat([ann(cid), Buffer.alloc(4000)]), expect: 'drop' },
  { name: 'connect with a wrong protocol id', packet: () => setU32(Buffer.alloc(16), 12, TX), expect: 'error' },
  { name: 'unknown action 7', packet: (cid) => setU32(ann(cid), 8, 7), expect: 'error' },
  { name: 'announce truncated to 97 bytes', packet: (cid) => ann(cid).subarray(0, 97), expect: 'error' },
  { name: 'announce with a wrong connection id', packet: () => ann(Buffer.alloc(8, 0xee)), expect: 'error' },
  { name: 'announce with event 9', packet: (cid) => setU32(ann(cid), 80, 9), expect: 'error' },
  { name: 'announce with port 0', packet: (cid) => ann(cid, { port: 0 }), expect: 'error' },
  { name: 'scrape with no info hash', packet: (cid) => UdpProbe.scrapePacket(cid, [], TX), expect: 'error' },
  { name: 'scrape with a 10-byte info hash', packet: (cid) => UdpProbe.scrapePacket(cid, [Buffer.alloc(30)], TX), expect: 'error' },
  { name: 'BEP 41 option longer than the packet', packet: (cid) => withOptions(cid, [2, 200, 0x2f, 0x61]), expect: 'error' },
  { name: 'BEP 41 URL data over 1 KiB', packet: (cid) => withOptions(cid, Array.from({ length: 5 }, () => [2, 255, ...Array(255).fill(0x61)]).flat()), expect: 'error' },
  { name: 'URL data with a non-UUID product', packet: (cid) => ann(cid, { urlData: '/announce?product=nope&rev=1' }), expect: 'error' },
  { name: 'URL data naming another swarm than info_hash', packet: (cid) => ann(cid, { urlData: `/announce?product=${product}&rev=1` }), expect: 'error' },
  { name: 'absurd numwant 2^31-1: clamped, answered', packet: (cid) => ann(cid, { numwant: 2 ** 31 - 1 }), expect: 'announce' },
]

const q = (over: Partial<Parameters<typeof announceQuery>[0]> = {}) => announceQuery({ infoHash: hash, peerId: randomBytes(20), port: 9999, ...over })
const httpCases: HttpCase[] = [
  { name: 'announce without parameters', path: '/announce', status: 200, failure: /info_hash is missing/ },
  { name: 'info_hash of 19 bytes', path: `/announce?info_hash=${pct(randomBytes(19))}&peer_id=${pct(randomBytes(20))}&port=1`, status: 200, failure: /info_hash must be 20 bytes/ },
  { name: 'peer_id of 21 bytes', path: `/announce?info_hash=${pct(hash)}&peer_id=${pct(randomBytes(21))}&port=1`, status: 200, failure: /peer_id/ },
  { name: 'port not a number', path: `/announce?${q()}`.replace('port=9999', 'port=abc'), status: 200, failure: /port/ },
  { name: 'port above 65535', path: `/announce?${q()}`.replace('port=9999', 'port=70000'), status: 200, failure: /port/ },
  { name: 'bad percent-escape', path: `/announce?${q()}&key=%zz`, status: 200, failure: /percent-escape/ },
  { name: 'unknown event', path: `/announce?${q()}&event=bogus`, status: 200, failure: /unknown event/ },
  { name: 'negative numwant', path: `/announce?${q()}&numwant=-5`, status: 200, failure: /numwant/ },
  { name: 'absurd numwant: clamped, answered', path: `/announce?${q({ numwant: 99_999_999_999_999 })}`, status: 200 },
  { name: '100 parameters', path: `/announce?${q()}&${Array.from({ length: 100 }, (_, i) => `x${i}=1`).join('&')}`, status: 200, failure: /more than 64/ },
  { name: 'non-UUID product', path: `/announce?${q({ extra: 'product=abc&rev=1' })}`, status: 200, failure: /UUID/ },
  { name: 'product without rev', path: `/announce?${q({ extra: `product=${product}` })}`, status: 200, failure: /go together/ },
  { name: 'public key not hex', path: `/announce?${q({ extra: 'pk=xyz' })}`, status: 200, failure: /pk/ },
  { name: 'URL over 4 KiB', path: `/announce?${q()}&pad=${'a'.repeat(5000)}`, status: 414 },
  { name: 'POST', path: `/announce?${q()}`, method: 'POST', status: 405 },
  { name: 'unknown path', path: '/nope', status: 404 },
  { name: 'scrape without info_hash', path: '/scrape', status: 200, failure: /at least one info_hash/ },
  { name: 'JSON API limit 0', path: `/v1/products/${product}/peers?limit=0`, status: 400 },
  { name: 'JSON API bad percent-encoding in product', path: '/v1/products/%E0%A4%A/peers', status: 400 },
]

describe('tracker bad input', () => {
  let nc: NatsConnection
  let tracker: Tracker
  let probe: UdpProbe
  let cid: Buffer

  beforeAll(async () => {
    nc = await testConnection('tracker-malformed')
    tracker = await startTracker({ nc, id: `malformed-${process.pid}`, rateLimit: false })
    probe = await UdpProbe.open(tracker.udpUrl)
    cid = await probe.connect()
  })
  afterAll(async () => {
    probe?.close()
    await tracker?.close()
    await nc?.close()
  })

  it(`tracker — ${udpCases.length + httpCases.length + 1} malformed requests are refused as their protocol allows`, async () => {
    expect(udpCases.length + httpCases.length + 1).toBeGreaterThanOrEqual(20)
    for (const c of udpCases) {
      probe.send(c.packet(cid))
      // A connect right behind it: on loopback answers come in order, so a dropped packet is
      // proven by the connect's answer arriving first.
      probe.send(UdpProbe.connectPacket(0xc0ffee))
      const first = (await probe.next())!
      const action = first.readUInt32BE(0)
      const tx = first.readUInt32BE(4)
      if (c.expect === 'drop') {
        expect([action, tx], c.name).toEqual([0, 0xc0ffee])
        continue
      }
      expect([action, tx], c.name).toEqual([c.expect === 'error' ? 3 : 1, TX])
      if (c.expect === 'announce') expect((first.byteLength - 20) / 6, c.name).toBeLessThanOrEqual(200)
      expect((await probe.next())!.readUInt32BE(4), c.name).toBe(0xc0ffee)
    }
    for (const c of httpCases) {
      const res = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const req = request(`${tracker.httpUrl}${c.path}`, { method: c.method ?? 'GET' }, (r) => {
          const chunks: Buffer[] = []
          r.on('data', (x: Buffer) => chunks.push(x))
          r.on('end', () => resolve({ status: r.statusCode!, body: Buffer.concat(chunks) }))
        })
        req.on('error', reject)
        req.end()
      })
      expect(res.status, c.name).toBe(c.status)
      if (c.status === 200) {
        const d = bdecode(res.body) as Map<string, unknown>
        const failure = d.get('failure reason') as Uint8Array | undefined
        if (c.failure) expect(Buffer.from(failure ?? []).toString(), c.name).toMatch(c.failure)
        else expect(failure, c.name).toBeUndefined()
      }
    }
    // Not HTTP at all.
    const raw = await new Promise<string>((resolve) => {
      const s = connect(Number(new URL(tracker.httpUrl).port), '127.0.0.1', () => s.write('GARBAGE\r\n\r\n'))
      let text = ''
      s.on('data', (d) => (text += d.toString()))
      s.on('close', () => resolve(text))
    })
    expect(raw).toMatch(/^HTTP\/1\.1 400/)
  })

  it('tracker — a bounded storm of random and mutated UDP packets leaves the door answering', async () => {
    let seed = 0x1234567
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n)
    const valid = [UdpProbe.connectPacket(1), ann(cid), UdpProbe.scrapePacket(cid, [hash])]
    for (let i = 0; i < 3_000; i++) {
      const base = Buffer.from(valid[rand(3)]!)
      for (let f = rand(6); f > 0; f--) base[rand(base.byteLength)] = rand(256)
      probe.send(i % 3 === 0 ? randomBytes(rand(200)) : base.subarray(0, rand(base.byteLength + 1)))
    }
    const sizeBefore = tracker.registry.size
    // Drain whatever came back, then the door must still serve a proper announce.
    probe.send(UdpProbe.connectPacket(0xabcdef))
    for (let i = 0; i < 10_000; i++) {
      const p = await probe.next()
      if (!p || (p.readUInt32BE(0) === 0 && p.readUInt32BE(4) === 0xabcdef)) break
    }
    const own = createHash('sha1').update(`upswarm:${product}:9`).digest()
    const res = await probe.request(UdpProbe.announcePacket(await probe.connect(), { infoHash: own, peerId: randomBytes(20), port: 9100, tx: 77, urlData: `/announce?product=${product}&rev=9` }))
    expect([res.readUInt32BE(0), res.readUInt32BE(4)]).toEqual([1, 77])
    expect(tracker.registry.size).toBeGreaterThanOrEqual(sizeBefore)
    expect((await httpGet(`${tracker.httpUrl}/v1/products/${product}/peers?rev=9`)).status).toBe(200)
  })
})
