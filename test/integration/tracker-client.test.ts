import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createTrackerClient, type TrackerClient, type TrackerClientOptions, type TrackerPeer, type TrackerStatus } from '../../actors/share-daemon/tracker-client.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import { queryPeers } from '../../infra/tracker-client/index.ts'
import { freePort } from '../../infra/cluster/ports.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { newProduct, testConnection } from '../helpers/cluster.ts'

/** Resolves with the first status event equal to `want` (or the current status if it already is). */
function statusOf(client: TrackerClient, want: TrackerStatus): Promise<void> {
  if (client.status === want) return Promise.resolve()
  return new Promise((resolve) => {
    const off = client.on('status', (s) => {
      if (s !== want) return
      off()
      resolve()
    })
  })
}

/** The peers of the client's next announce round. */
function nextPeers(client: TrackerClient): Promise<{ peers: TrackerPeer[]; door: string }> {
  return new Promise((resolve) => {
    const off = client.on('peers', (peers, door) => {
      off()
      resolve({ peers, door })
    })
  })
}

/** Other tracker instances of the suite may answer over NATS and see a write a moment later. */
const eventually = { timeout: 10_000, interval: 50 }

describe('tracker client', () => {
  let nc: NatsConnection
  let tracker: Tracker
  const clients: TrackerClient[] = []
  const client = (o: Partial<TrackerClientOptions> & { product: string }): TrackerClient => {
    const c = createTrackerClient({ rev: 1, peerId: randomBytes(20).toString('hex'), port: 8000 + clients.length, intervalMs: 30_000, retryMs: 100, timeoutMs: 1_000, ...o })
    clients.push(c)
    return c
  }

  beforeAll(async () => {
    nc = await testConnection('tracker-client')
    tracker = await startTracker({ nc, id: `client-${process.pid}` })
  })
  afterAll(async () => {
    for (const c of clients) await c.stop()
    await tracker?.close()
    await nc?.close()
  })

  it('tracker client — announces over NATS: ok, and two peers of one revision find each other', async () => {
    const product = newProduct()
    const publicKey = randomBytes(32).toString('hex')
    const first = client({ nc, httpUrl: tracker.httpUrl, product, publicKey })
    await statusOf(first, 'ok')
    const second = client({ nc, httpUrl: tracker.httpUrl, product })
    await statusOf(second, 'ok')
    await vi.waitFor(async () => {
      const next = nextPeers(second)
      second.announceNow()
      const got = await next
      expect(got.door).toBe('nats')
      expect(got.peers).toEqual([expect.objectContaining({ port: 8000, rev: 1, publicKey, ip: '127.0.0.1' })])
    }, eventually)
    expect(second.status).toBe('ok')
  })

  it('tracker client — NATS unreachable: fails over to HTTP and reports degraded', async () => {
    const closed = await testConnection('tracker-client-closed')
    await closed.close()
    const product = newProduct()
    const c = client({ nc: closed, httpUrl: tracker.httpUrl, product })
    expect((await nextPeers(c)).door).toBe('http')
    await statusOf(c, 'degraded')
    const peers = await queryPeers({ httpUrl: tracker.httpUrl }, product, 1)
    expect(peers.map((p) => p.port)).toEqual([8000 + clients.length - 1])
  })

  it('tracker client — over UDP alone: ok, peers carry the swarm revision', async () => {
    const product = newProduct()
    const a = client({ udpUrl: tracker.udpUrl, product, rev: 3 })
    await statusOf(a, 'ok')
    const b = client({ udpUrl: tracker.udpUrl, product, rev: 3 })
    expect((await nextPeers(b)).peers).toEqual([{ ip: '127.0.0.1', port: 8000 + clients.length - 2, rev: 3 }])
  })

  it('tracker client — no door answers: down ("tracker unavailable"); the tracker comes up: ok again', async () => {
    const httpPort = await freePort()
    const c = client({ httpUrl: `http://127.0.0.1:${httpPort}`, product: newProduct() })
    await statusOf(c, 'down')
    const late = await startTracker({ nc, id: `late-${process.pid}`, httpPort })
    try {
      await statusOf(c, 'ok')
    } finally {
      await late.close()
    }
  })

  it('tracker client — a new revision is announced at once; stop withdraws the peer', async () => {
    const product = newProduct()
    const c = client({ nc, product })
    await statusOf(c, 'ok')
    const moved = nextPeers(c)
    c.setRev(2)
    expect((await moved).peers).toEqual([])
    const byRev = async (rev: number) => (await queryPeers({ nc }, product, rev)).length
    await vi.waitFor(async () => expect([await byRev(1), await byRev(2)]).toEqual([0, 1]), eventually)
    await c.stop()
    await vi.waitFor(async () => expect(await byRev(2)).toBe(0), eventually)
  })
})
