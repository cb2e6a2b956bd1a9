import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { identityOf } from '../../infra/nats/identity.ts'
import { trackerSubject } from '../../infra/nats/names.ts'
import { bdecode } from '../../infra/tracker/bencode.ts'
import { httpDoor } from '../../infra/tracker-client/http-door.ts'
import { newProduct, tempDir, testConnection } from '../helpers/cluster.ts'
import { announceQuery, compactPeers, httpGet, pct, UdpProbe } from '../helpers/tracker-wire.ts'

const exec = promisify(execFile)
const swarmOf = (product: string, rev: number): Buffer => createHash('sha1').update(`upswarm:${product}:${rev}`).digest()
const dict = (body: Buffer): Map<string, unknown> => bdecode(body) as Map<string, unknown>
const str = (v: unknown): string => Buffer.from(v as Uint8Array).toString('latin1')

describe('tracker doors', () => {
  let nc: NatsConnection
  let tracker: Tracker

  beforeAll(async () => {
    nc = await testConnection('tracker-doors')
    tracker = await startTracker({ nc, id: `doors-${process.pid}` })
  })
  afterAll(async () => {
    await tracker?.close()
    await nc?.close()
  })

  it('tracker — HTTP announce (BEP 3) answers a bencoded dictionary with peer ids when not compact', async () => {
    const product = newProduct()
    const infoHash = swarmOf(product, 1)
    const a = randomBytes(20)
    const b = randomBytes(20)
    const first = dict((await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId: a, port: 6001, event: 'started', compact: 0 })}`)).body)
    expect(first.get('peers')).toEqual([])
    expect(first.get('interval')).toBe(60)
    expect(first.get('ttl')).toBe(180)
    const res = await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId: b, port: 6002, left: 5, event: 'started', compact: 0 })}`)
    expect(res.status).toBe(200)
    const d = dict(res.body)
    expect(d.get('complete')).toBe(1)
    expect(d.get('incomplete')).toBe(1)
    expect(typeof d.get('min interval')).toBe('number')
    const peers = d.get('peers') as Map<string, unknown>[]
    expect(peers).toHaveLength(1)
    expect(Buffer.from(peers[0]!.get('peer id') as Uint8Array)).toEqual(a)
    expect(str(peers[0]!.get('ip'))).toBe('127.0.0.1')
    expect(peers[0]!.get('port')).toBe(6001)
  })

  it('tracker — HTTP announce with compact=1 answers 6-byte peers (BEP 23); scrape counts the swarm', async () => {
    const infoHash = randomBytes(20) // a swarm nobody has named: still served
    await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId: randomBytes(20), port: 6011, event: 'completed' })}`)
    const d = dict((await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId: randomBytes(20), port: 6012, left: 9, compact: 1 })}`)).body)
    expect(compactPeers(d.get('peers') as Uint8Array)).toEqual([{ ip: '127.0.0.1', port: 6011 }])
    const other = randomBytes(20)
    const s = dict((await httpGet(`${tracker.httpUrl}/scrape?info_hash=${pct(infoHash)}&info_hash=${pct(other)}`)).body)
    const files = s.get('files') as Map<string, Map<string, unknown>>
    expect(Object.fromEntries(files.get(infoHash.toString('latin1'))!)).toEqual({ complete: 1, downloaded: 1, incomplete: 1 })
    expect(Object.fromEntries(files.get(other.toString('latin1'))!)).toEqual({ complete: 0, downloaded: 0, incomplete: 0 })
  })

  it('tracker — UDP connect, announce and scrape (BEP 15); a wrong connection id gets an error', async () => {
    const probe = await UdpProbe.open(tracker.udpUrl)
    try {
      const cid = await probe.connect()
      const infoHash = randomBytes(20)
      const first = await probe.request(UdpProbe.announcePacket(cid, { infoHash, peerId: randomBytes(20), port: 6021, event: 'started', tx: 11 }))
      expect([first.readUInt32BE(0), first.readUInt32BE(4), first.readUInt32BE(8)]).toEqual([1, 11, 60])
      expect(first.byteLength).toBe(20)
      const second = await probe.request(UdpProbe.announcePacket(cid, { infoHash, peerId: randomBytes(20), port: 6022, left: 3, tx: 12 }))
      expect([second.readUInt32BE(12), second.readUInt32BE(16)]).toEqual([1, 1]) // leechers, seeders
      expect(compactPeers(second.subarray(20))).toEqual([{ ip: '127.0.0.1', port: 6021 }])
      const scrape = await probe.request(UdpProbe.scrapePacket(cid, [infoHash], 13))
      expect([scrape.readUInt32BE(0), scrape.readUInt32BE(4), scrape.readUInt32BE(8), scrape.readUInt32BE(12), scrape.readUInt32BE(16)]).toEqual([2, 13, 1, 0, 1])
      const bad = await probe.request(UdpProbe.announcePacket(Buffer.alloc(8, 1), { infoHash, peerId: randomBytes(20), port: 6023, tx: 14 }))
      expect([bad.readUInt32BE(0), bad.readUInt32BE(4)]).toEqual([3, 14])
      expect(bad.toString('utf8', 8)).toMatch(/connection id/)
    } finally {
      probe.close()
    }
  })

  it('tracker — a peer announced on one door is returned on every other door', async () => {
    const product = newProduct()
    const infoHash = swarmOf(product, 2)
    const natsPeer = randomBytes(20).toString('hex')
    const publicKey = randomBytes(32).toString('hex')
    // UDP announce naming the product through BEP 41 URL data.
    const probe = await UdpProbe.open(tracker.udpUrl)
    const cid = await probe.connect()
    await probe.request(UdpProbe.announcePacket(cid, { infoHash, peerId: randomBytes(20), port: 6031, urlData: `/announce?product=${product}&rev=2` }))
    probe.close()
    await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId: randomBytes(20), port: 6032 })}`)
    // Any tracker instance of the suite may answer over NATS: they share the bucket, so wait for it.
    await vi.waitFor(async () => {
      const reply = (await nc.request(trackerSubject('announce', identityOf(nc)), JSON.stringify({ product, rev: 2, peerId: natsPeer, ip: '127.0.0.1', port: 6033, publicKey }), { timeout: 2_000 })).json<{ peers: { port: number; rev: number }[]; ttlMs: number; intervalMs: number }>()
      expect(reply.peers.map((p) => [p.port, p.rev]).sort()).toEqual([[6031, 2], [6032, 2]])
      expect(reply.ttlMs).toBeGreaterThan(reply.intervalMs)
    }, { timeout: 10_000, interval: 100 })
    await vi.waitFor(async () => {
      const json = JSON.parse((await httpGet(`${tracker.httpUrl}/v1/products/${product}/peers?rev=2`)).body.toString())
      const mine = json.peers.find((p: { peerId: string }) => p.peerId === natsPeer)
      expect(mine).toMatchObject({ port: 6033, rev: 2, product, publicKey })
    }, { timeout: 10_000, interval: 100 })
    const d = dict((await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId: randomBytes(20), port: 6034, compact: 0 })}`)).body)
    const viaHttp = (d.get('peers') as Map<string, unknown>[]).find((p) => p.get('port') === 6033)!
    expect(str(viaHttp.get('public key'))).toBe(publicKey)
    expect(viaHttp.get('rev')).toBe(2)
  })

  it('tracker — NATS peers query lists every revision of a product with each peer\'s revision', async () => {
    const product = newProduct()
    const announce = (rev: number, port: number) =>
      nc.request(trackerSubject('announce', identityOf(nc)), JSON.stringify({ product, rev, peerId: randomBytes(20).toString('hex'), ip: '127.0.0.1', port }), { timeout: 2_000 })
    await announce(1, 6041)
    await announce(2, 6042)
    await vi.waitFor(async () => {
      const all = (await nc.request(trackerSubject('peers', identityOf(nc)), JSON.stringify({ product }), { timeout: 2_000 })).json<{ peers: { port: number; rev: number }[] }>()
      expect(all.peers.map((p) => [p.port, p.rev]).sort()).toEqual([[6041, 1], [6042, 2]])
    }, { timeout: 10_000, interval: 100 })
    const bad = await nc.request(trackerSubject('peers', identityOf(nc)), JSON.stringify({ product: 'not-a-uuid' }), { timeout: 2_000 })
    expect(bad.headers?.get('Nats-Service-Error-Code')).toBe('400')
  })

  it('tracker — JSON API refuses a non-UUID product and a bad revision with 400', async () => {
    const a = await httpGet(`${tracker.httpUrl}/v1/products/xyz/peers`)
    expect(a.status).toBe(400)
    expect(JSON.parse(a.body.toString()).error.code).toBe('UPSWARM_E_BAD_REQUEST')
    const b = await httpGet(`${tracker.httpUrl}/v1/products/${newProduct()}/peers?rev=-1`)
    expect(b.status).toBe(400)
  })

  it('tracker — HTTP stopped event removes the peer from the swarm', async () => {
    const infoHash = randomBytes(20)
    const peerId = randomBytes(20)
    await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId, port: 6051, event: 'started' })}`)
    await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId, port: 6051, event: 'stopped' })}`)
    const d = dict((await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash, peerId: randomBytes(20), port: 6052 })}`)).body)
    expect(compactPeers(d.get('peers') as Uint8Array)).toEqual([])
  })

  it('tracker — per-address rate limit answers 429 with a failure reason', async () => {
    const limited = await startTracker({ nc, id: `limited-${process.pid}`, rateLimit: { perSecond: 0.001, burst: 3 } })
    try {
      const url = `${limited.httpUrl}/announce?${announceQuery({ infoHash: randomBytes(20), peerId: randomBytes(20), port: 6061 })}`
      const statuses = []
      for (let i = 0; i < 4; i++) statuses.push((await httpGet(url)).status)
      expect(statuses).toEqual([200, 200, 200, 429])
      expect(str(dict((await httpGet(url)).body).get('failure reason'))).toMatch(/rate limited/)
    } finally {
      await limited.close()
    }
  })

  it('tracker — serves HTTPS when given a certificate and key', async () => {
    const dir = await tempDir('upswarm-tls-')
    try {
      const cert = join(dir.path, 'cert.pem')
      const key = join(dir.path, 'key.pem')
      await exec('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'])
      const tls = await startTracker({ nc, id: `tls-${process.pid}`, https: { cert: await readFile(cert), key: await readFile(key) } })
      try {
        expect(tls.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
        const door = httpDoor(tls.httpUrl, { timeoutMs: 3_000, ca: await readFile(cert) })
        const product = newProduct()
        const params = { product, rev: 1, port: 6071, event: 'started' as const }
        await door.announce({ ...params, peerId: randomBytes(20).toString('hex') }, AbortSignal.timeout(3_000))
        const res = await door.announce({ ...params, port: 6072, peerId: randomBytes(20).toString('hex') }, AbortSignal.timeout(3_000))
        expect(res.peers.map((p) => [p.port, p.rev])).toEqual([[6071, 1]])
      } finally {
        await tls.close()
      }
    } finally {
      await dir.cleanup()
    }
  })
})
