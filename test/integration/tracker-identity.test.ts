// Announces that cannot be forged cheaply (issue 10, item 8): over NATS the tracker takes the
// announcer's identity from the subject, limits each identity's rate and entries, and lets nobody
// but the announcer stop or replace a peer id; BitTorrent clients on HTTP/UDP keep working.
import { createHash, randomBytes } from 'node:crypto'
import { once, type EventEmitter } from 'node:events'
import { Kvm, type KV } from '@nats-io/kv'
import { Svcm } from '@nats-io/services'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { readBucketPeers } from '../../infra/tracker/peer-log.ts'
import { PEER_BUCKET, productPeerKey, TRACKER_SERVICE, trackerSubject } from '../../infra/nats/names.ts'
import { bdecode } from '../../infra/tracker/bencode.ts'
import { DEFAULT_MAX_PEERS_PER_IDENTITY } from '../../infra/tracker/registry.ts'
import { newProduct, testConnection } from '../helpers/cluster.ts'
import { announceQuery, httpGet, UdpProbe } from '../helpers/tracker-wire.ts'

const swarmOf = (product: string, rev: number): Buffer => createHash('sha1').update(`upswarm:${product}:${rev}`).digest()
const tag = (): string => randomBytes(4).toString('hex')
const eventually = { timeout: 10_000, interval: 50 }

/** A real BitTorrent client (the `bittorrent-tracker` package's), typed as far as we use it. */
interface BtClient extends EventEmitter {
  start(): void
  stop(): void
  destroy(): void
}
type BtClientClass = new (o: { infoHash: string; peerId: string; announce: string[]; port: number }) => BtClient
const btModule = 'bittorrent-tracker'

describe('tracker identities', () => {
  let nc: NatsConnection
  let tracker: Tracker
  let kv: KV

  /** One request on the tracker's subject of `identity`: the answer, or the service error it got. */
  const ask = async (op: 'announce' | 'peers', identity: string, body: object): Promise<{ error?: string; status?: string; json?: unknown }> => {
    const m = await nc.request(trackerSubject(op, identity), JSON.stringify(body), { timeout: 5_000 })
    const error = m.headers?.get('Nats-Service-Error')
    return error ? { error, status: m.headers?.get('Nats-Service-Error-Code') } : { json: m.json() }
  }
  const peersOf = async (product: string): Promise<{ peerId: string; ip: string; port: number }[]> =>
    ((await ask('peers', `reader-${tag()}`, { product })).json as { peers: { peerId: string; ip: string; port: number }[] }).peers

  beforeAll(async () => {
    nc = await testConnection('tracker-identity')
    tracker = await startTracker({ nc, id: `identity-${process.pid}` })
    kv = await new Kvm(nc).open(PEER_BUCKET)
  })
  afterAll(async () => {
    await tracker?.close()
    await nc?.close()
  })

  it('tracker — over NATS the identity comes from the subject, and only it may stop or replace its peer id', async () => {
    const product = newProduct()
    const alice = `alice-${tag()}`
    const mallory = `mallory-${tag()}`
    const peerId = randomBytes(20).toString('hex')
    const mine = { product, rev: 1, peerId, ip: '10.20.0.1', port: 7101 }
    expect((await ask('announce', alice, mine)).error).toBeUndefined()
    // The bucket records who announced it; every instance reads it from there.
    await vi.waitFor(async () => expect((await readBucketPeers(kv)).get(productPeerKey(product, peerId))).toMatchObject({ owner: `id:${alice}`, ip: '10.20.0.1' }), eventually)

    expect(await ask('announce', mallory, { ...mine, ip: '10.66.6.6', port: 6666 })).toMatchObject({ error: expect.stringMatching(/^UPSWARM_E_TRACKER: cannot replace peer [0-9a-f]{40}: another identity announced it/) })
    expect(await ask('announce', mallory, { ...mine, event: 'stopped' })).toMatchObject({ error: expect.stringMatching(/^UPSWARM_E_TRACKER: cannot stop peer/) })
    // A BitTorrent stop from another address (this machine's, not 10.20.0.1) is refused on both doors.
    const http = bdecode((await httpGet(`${tracker.httpUrl}/announce?${announceQuery({ infoHash: swarmOf(product, 1), peerId: Buffer.from(peerId, 'hex'), port: 7101, event: 'stopped' })}`)).body) as Map<string, Uint8Array>
    expect(Buffer.from(http.get('failure reason')!).toString()).toMatch(/cannot stop peer/)
    const probe = await UdpProbe.open(tracker.udpUrl)
    try {
      const cid = await probe.connect()
      const udp = await probe.request(UdpProbe.announcePacket(cid, { infoHash: swarmOf(product, 1), peerId: Buffer.from(peerId, 'hex'), port: 7101, event: 'stopped', tx: 21 }))
      expect([udp.readUInt32BE(0), udp.readUInt32BE(4)]).toEqual([3, 21])
      expect(udp.toString('utf8', 8)).toMatch(/cannot stop peer/)
    } finally {
      probe.close()
    }
    expect(await peersOf(product)).toEqual([expect.objectContaining({ peerId, ip: '10.20.0.1', port: 7101 })])

    expect((await ask('announce', alice, { ...mine, event: 'stopped' })).error).toBeUndefined()
    await vi.waitFor(async () => expect((await readBucketPeers(kv)).has(productPeerKey(product, peerId))).toBe(false), eventually)
    // A subject whose last token is not an identity name is a bad request.
    expect(await ask('announce', 'not+a+name', mine)).toMatchObject({ status: '400', error: expect.stringMatching(/identity/) })
  })

  it('tracker — a flood of invented peers from one identity is refused and does not grow the registry past its cap', async () => {
    const product = newProduct()
    const flooder = `flooder-${tag()}`
    const FLOOD = 5_000
    const PARALLEL = 250
    const outcome = { accepted: 0, rateLimited: 0, capped: 0, other: [] as string[] }
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < FLOOD) {
        const i = next++
        const res = await ask('announce', flooder, { product, rev: 1, peerId: randomBytes(20).toString('hex'), ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1024 + i })
        if (!res.error) outcome.accepted++
        // Designed refusals carry their own status, not the 500 of an unexpected error (found by S4's full run).
        else if (/^UPSWARM_E_TRACKER: rate limited: identity flooder-/.test(res.error) && res.status === '429') outcome.rateLimited++
        else if (/^UPSWARM_E_TRACKER: identity flooder-\w+ already lists \d+ peers of product/.test(res.error) && res.status === '429') outcome.capped++
        else outcome.other.push(res.error)
      }
    }
    // Each tracker instance of the suite's queue group enforces the cap on what it has seen (its
    // view of the others' writes lags by up to the flush interval, 1 s): the instances are counted
    // before, during and after the flood, since other files' instances come and go meanwhile.
    const ids = new Set<string>()
    const count = async (): Promise<void> => {
      for await (const r of await new Svcm(nc as never).client().ping(TRACKER_SERVICE)) ids.add((r as { id: string }).id)
    }
    let flooding = true
    const counting = (async () => {
      while (flooding) await count()
    })()
    await Promise.all(Array.from({ length: PARALLEL }, worker))
    flooding = false
    await counting
    await count()
    const instances = ids.size
    const bound = DEFAULT_MAX_PEERS_PER_IDENTITY.product * instances
    expect(outcome.other).toEqual([])
    expect(outcome.rateLimited).toBeGreaterThan(0)
    expect(outcome.capped).toBeGreaterThan(0)
    expect(outcome.accepted).toBeLessThanOrEqual(bound)
    // Every accepted peer is one entry in the bucket, and nothing else got in.
    const stored = async (): Promise<number> => [...(await readBucketPeers(kv)).keys()].filter((k) => k.startsWith(`${product}.`)).length
    await vi.waitFor(async () => expect(await stored()).toBe(outcome.accepted), eventually)
    expect(tracker.registry.peersOf(product, undefined, 10_000).length).toBeLessThanOrEqual(bound)
    // Another identity is not held back by the flooder.
    expect((await ask('announce', `honest-${tag()}`, { product, rev: 1, peerId: randomBytes(20).toString('hex'), ip: '10.99.0.1', port: 7200 })).error).toBeUndefined()
  })

  it('tracker — real BitTorrent clients still announce and stop over HTTP and UDP, but cannot stop a peer they did not announce', async () => {
    const { Client } = (await import(btModule)) as { Client: BtClientClass }
    const product = newProduct()
    const infoHash = swarmOf(product, 1).toString('hex')
    const listed = async (): Promise<number[]> =>
      (JSON.parse((await httpGet(`${tracker.httpUrl}/v1/products/${product}/peers?rev=1`)).body.toString()).peers as { port: number }[]).map((p) => p.port).sort()
    const clients: BtClient[] = []
    const client = (announce: string, port: number, peerId = randomBytes(20).toString('hex')): BtClient => {
      const c = new Client({ infoHash, peerId, announce: [announce], port })
      c.on('error', () => {})
      clients.push(c)
      return c
    }
    try {
      const viaHttp = client(`${tracker.httpUrl}/announce`, 6881)
      const viaUdp = client(tracker.udpUrl, 6882)
      const warnings = [once(viaHttp, 'warning'), once(viaUdp, 'warning')]
      const updates = [once(viaHttp, 'update'), once(viaUdp, 'update')]
      viaHttp.start()
      viaUdp.start()
      await Promise.race([Promise.all(updates), Promise.any(warnings).then(([err]) => Promise.reject(err as Error))])
      await vi.waitFor(async () => expect(await listed()).toEqual([6881, 6882]), eventually)

      // A peer id announced over NATS by an identity, at an address that is not this machine's.
      const peerId = randomBytes(20).toString('hex')
      expect((await ask('announce', `owner-${tag()}`, { product, rev: 1, peerId, ip: '10.30.0.1', port: 6883 })).error).toBeUndefined()
      await vi.waitFor(async () => expect(await listed()).toEqual([6881, 6882, 6883]), eventually)
      const forger = client(`${tracker.httpUrl}/announce`, 6883, peerId)
      const answered = Promise.race([once(forger, 'warning').then(([err]) => String(err)), once(forger, 'update').then(() => 'stopped')])
      forger.stop()
      expect(await answered).toMatch(/cannot stop peer/)

      for (const c of [viaHttp, viaUdp]) c.stop()
      await vi.waitFor(async () => expect(await listed()).toEqual([6883]), eventually)
    } finally {
      for (const c of clients) c.destroy()
    }
  })
})
