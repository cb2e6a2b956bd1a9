import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { Kvm } from '@nats-io/kv'
import { identityOf } from '../../infra/nats/identity.ts'
import { requestJson } from '../../infra/nats/request.ts'
import { readBucketPeers } from '../../infra/tracker/peer-log.ts'
import { infoHashKey, PEER_BUCKET, productPeerKey, trackerSubject, unmappedPeerKey } from '../../infra/nats/names.ts'
import { issueCreds, natsUrls, newProduct, testConnection } from '../helpers/cluster.ts'
import { announceQuery, httpGet, UdpProbe } from '../helpers/tracker-wire.ts'
import { udpDoor } from '../../infra/tracker-client/index.ts'
import { httpDoor } from '../../infra/tracker-client/http-door.ts'

const swarmOf = (product: string, rev: number): Buffer => createHash('sha1').update(`upswarm:${product}:${rev}`).digest()
const peersJson = async (t: Tracker, product: string, rev?: number) =>
  JSON.parse((await httpGet(`${t.httpUrl}/v1/products/${product}/peers${rev === undefined ? '' : `?rev=${rev}`}`)).body.toString()).peers as { peerId: string; port: number; rev?: number; expires: number }[]

describe('tracker instances', () => {
  let nc: NatsConnection
  let ncB: NatsConnection
  let a: Tracker
  let b: Tracker

  beforeAll(async () => {
    nc = await testConnection('tracker-a')
    ncB = await testConnection('tracker-b')
    a = await startTracker({ nc, id: `a-${process.pid}` })
    b = await startTracker({ nc: ncB, id: `b-${process.pid}` })
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await nc?.close()
    await ncB?.close()
  })

  it("tracker — two instances share the bucket: each answers with the other's peers", async () => {
    const product = newProduct()
    const infoHash = swarmOf(product, 1)
    const onA = randomBytes(20)
    await httpGet(`${a.httpUrl}/announce?${announceQuery({ infoHash, peerId: onA, port: 7001, extra: `product=${product}&rev=1` })}`)
    const probe = await UdpProbe.open(b.udpUrl)
    const cid = await probe.connect()
    await probe.request(UdpProbe.announcePacket(cid, { infoHash, peerId: randomBytes(20), port: 7002 }))
    probe.close()
    await vi.waitFor(async () => expect((await peersJson(b, product, 1)).map((p) => p.port).sort()).toEqual([7001, 7002]), { timeout: 10_000, interval: 50 })
    await vi.waitFor(async () => expect((await peersJson(a, product, 1)).map((p) => p.port).sort()).toEqual([7001, 7002]), { timeout: 10_000, interval: 50 })
  })

  it('tracker — locality (issue 14 item 4): a peer that tells its site gets the peers of its site first; the other instance lists each peer\'s site from the bucket', async () => {
    const product = newProduct()
    const subject = trackerSubject('announce', identityOf(nc))
    const announce = (port: number, site?: string, numwant = 50) => requestJson<{ peers: { port: number; site?: string }[]; sitePeers?: number }>(nc, subject, {
      product, rev: 1, peerId: randomBytes(20).toString('hex'), ip: '127.0.0.1', port, numwant, ...(site ? { site } : {}),
    })
    for (let i = 0; i < 8; i++) await announce(7100 + i, i % 2 === 0 ? 'east' : 'west')
    await announce(7108)
    // Both instances answer the announce subject (one queue group): wait until each lists all nine.
    for (const t of [a, b]) await vi.waitFor(async () => expect(await peersJson(t, product, 1)).toHaveLength(9), { timeout: 10_000, interval: 50 })
    // Four of the nine are in east: a new east peer asking for eight gets those four first, then
    // four of the others (an answer keeps a quarter for other sites).
    const east = await announce(7109, 'east', 8)
    expect(east.peers.slice(0, 4).map((p) => p.port).sort()).toEqual([7100, 7102, 7104, 7106])
    expect(east.peers.slice(4).filter((p) => p.site === 'east')).toEqual([])
    expect(east.peers).toHaveLength(8)
    // The answer counts the site's peers in the swarm, the announcer with them: five in east.
    expect(east.sitePeers).toBe(5)
    // Asking for four: three of east, one of elsewhere.
    const few = await announce(7112, 'east', 4)
    expect(few.peers.map((p) => p.site === 'east')).toEqual([true, true, true, false])
    // A west peer asking for six: the four west peers first, then two others.
    const all = await announce(7110, 'west', 6)
    expect(all.peers.slice(0, 4).every((p) => p.site === 'west')).toBe(true)
    expect(all.peers).toHaveLength(6)
    // A peer that tells no site gets a plain sample, and the sites are shared with the other instance.
    await vi.waitFor(async () => {
      const seen = await peersJson(b, product, 1) as { port: number; site?: string }[]
      expect(seen.filter((p) => p.site === 'east').map((p) => p.port).sort()).toEqual([7100, 7102, 7104, 7106, 7109, 7112])
      expect(seen.find((p) => p.port === 7108)?.site).toBeUndefined()
    }, { timeout: 10_000, interval: 50 })
    await expect(announce(7111, 'not a label')).rejects.toMatchObject({ code: 'UPSWARM_E_BAD_REQUEST' })
  })

  it('tracker — locality over HTTP and UDP (issue 14 item 4): the client\'s doors tell the site as an extension parameter; the answers lead with the site\'s peers, and HTTP counts them', async () => {
    const product = newProduct()
    // Six peers over HTTP: three in east (ports 7200, 7202, 7204), three in west.
    const http = httpDoor(a.httpUrl, { timeoutMs: 5_000 })
    const udp = udpDoor(a.udpUrl, { timeoutMs: 5_000 })
    try {
      const params = (port: number, site: string | undefined, numwant: number) =>
        ({ product, rev: 1, peerId: randomBytes(20).toString('hex'), port, event: 'started' as const, numwant, ...(site ? { site } : {}) })
      for (let i = 0; i < 6; i++) await http.announce(params(7200 + i, i % 2 === 0 ? 'east' : 'west', 50), AbortSignal.timeout(5_000))
      // Each peer's site is recorded whichever door told it.
      const listed = await peersJson(a, product, 1) as { port: number; site?: string }[]
      expect(listed.filter((p) => p.site === 'east').map((p) => p.port).sort()).toEqual([7200, 7202, 7204])
      // A new east peer asking for four over HTTP: the three east peers first, and the count of east (four with it).
      const east = await http.announce(params(7210, 'east', 4), AbortSignal.timeout(5_000))
      expect(east.peers.slice(0, 3).map((p) => p.port).sort()).toEqual([7200, 7202, 7204])
      expect(east.peers).toHaveLength(4)
      expect(east.sitePeers).toBe(4)
      // Over UDP (the site in BEP 41 URL data): a west peer asking for three gets the three west peers.
      const west = await udp.announce(params(7211, 'west', 3), AbortSignal.timeout(5_000))
      expect(west.peers.map((p) => p.port).sort()).toEqual([7201, 7203, 7205])
      expect(west.sitePeers).toBeUndefined()
      expect((await peersJson(a, product, 1) as { port: number; site?: string }[]).find((p) => p.port === 7211)?.site).toBe('west')
      // A bad label is refused at the door, with the reason.
      await expect(http.announce(params(7212, 'two words', 4), AbortSignal.timeout(5_000))).rejects.toThrow(/site must be 1 to 64/)
    } finally {
      http.close()
      udp.close()
    }
  })

  it('tracker — a BitTorrent swarm announced before anyone named it merges into the product when a NATS announce names it', async () => {
    const product = newProduct()
    const infoHash = swarmOf(product, 4)
    const bt = randomBytes(20)
    await httpGet(`${a.httpUrl}/announce?${announceQuery({ infoHash, peerId: bt, port: 7011 })}`)
    // The product knows nothing of it yet…
    expect(await peersJson(b, product)).toEqual([])
    await ncB.request(trackerSubject('announce', identityOf(ncB)), JSON.stringify({ product, rev: 4, peerId: randomBytes(20).toString('hex'), ip: '127.0.0.1', port: 7012 }), { timeout: 2_000 })
    // …then every instance lists it under the product, with its revision…
    for (const t of [a, b]) {
      await vi.waitFor(async () => {
        const peers = await peersJson(t, product)
        expect(peers.map((p) => [p.port, p.rev]).sort()).toEqual([[7011, 4], [7012, 4]])
      }, { timeout: 10_000, interval: 50 })
    }
    // …and the bucket, as a fresh instance rebuilds it from the batches, holds it under the
    // product key and no longer under the info hash, with the mapping beside it.
    const kv = await new Kvm(nc).open(PEER_BUCKET)
    const hex = infoHash.toString('hex')
    await vi.waitFor(async () => {
      const stored = await readBucketPeers(kv)
      expect(stored.get(productPeerKey(product, bt.toString('hex')))).toMatchObject({ rev: 4, port: 7011 })
      expect(stored.has(unmappedPeerKey(hex, bt.toString('hex')))).toBe(false)
      expect((await kv.get(infoHashKey(hex)))?.json()).toEqual({ product, rev: 4 })
    }, { timeout: 10_000, interval: 50 })
  })

  it('tracker — a peer that is not re-announced expires on every instance', async () => {
    const short = await startTracker({ nc, id: `short-${process.pid}`, peerTtlMs: 1_500, intervalMs: 500 })
    try {
      const product = newProduct()
      const infoHash = swarmOf(product, 1)
      const res = await httpGet(`${short.httpUrl}/announce?${announceQuery({ infoHash, peerId: randomBytes(20), port: 7021, extra: `product=${product}&rev=1` })}`)
      expect(res.status).toBe(200)
      const [listed] = await peersJson(short, product, 1)
      expect(listed!.expires - Date.now()).toBeLessThanOrEqual(1_500)
      await vi.waitFor(async () => expect(await peersJson(b, product, 1)).toHaveLength(1), { timeout: 10_000, interval: 50 })
      for (const t of [short, b]) await vi.waitFor(async () => expect(await peersJson(t, product, 1)).toEqual([]), { timeout: 10_000, interval: 100 })
    } finally {
      await short.close()
    }
  })

  it('tracker — `upswarm tracker` prints READY with both URLs, answers, and stops on SIGTERM', async () => {
    const creds = await issueCreds({ kind: 'tracker', name: 'cli-test' })
    const child = spawn(process.execPath, ['bin/upswarm.cjs', 'tracker', '--http-port', '0', '--udp-port', '0', '--nats', natsUrls().join(','), '--creds', creds], { stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const lines = createInterface({ input: child.stdout! })
      let ready: { trackerHttp: string; trackerUdp: string } | undefined
      for await (const line of lines) {
        if (line.startsWith('READY ')) {
          ready = JSON.parse(line.slice(6))
          break
        }
      }
      expect(ready?.trackerHttp).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(ready?.trackerUdp).toMatch(/^udp:\/\/127\.0\.0\.1:\d+$/)
      const probe = await UdpProbe.open(ready!.trackerUdp)
      expect((await probe.connect()).byteLength).toBe(8)
      probe.close()
      child.kill('SIGTERM')
      const [code] = await once(child, 'exit')
      expect(code).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })
})
