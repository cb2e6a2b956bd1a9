// The sharing daemon ages out tracker addresses that never complete a Noise handshake (issue 10,
// item 8): a dead address listed on every announce round is dialled a bounded number of times,
// while a live peer listed beside it is still reached.
import { randomBytes, randomUUID } from 'node:crypto'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { MAX_DIAL_FAILURES } from '../../actors/share-daemon/dial-book.ts'
import { startDaemon, type Daemon } from '../../actors/share-daemon/index.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { trackerSubject } from '../../infra/nats/names.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { newProduct, tempDir, testConnection } from '../helpers/cluster.ts'
import { exchangeSite } from '../../infra/swarm/site-channel.ts'
import { PieceSession } from '../../infra/swarm/piece-protocol.ts'
import { makeNode } from './swarm-fixtures.ts'

const ROUNDS = 20

describe('daemon age-out', () => {
  let nc: NatsConnection
  let tracker: Tracker

  beforeAll(async () => {
    nc = await testConnection('daemon-age-out')
    tracker = await startTracker({ nc, id: `age-out-${process.pid}` })
  })
  afterAll(async () => {
    await tracker?.close()
    await nc?.close()
  })

  it('daemon — a tracker address whose handshake always fails is dialled a few times, not on every round; a live peer is still reached', async () => {
    // The dead address: it accepts TCP and hangs up, so no Noise handshake ever completes.
    let accepted = 0
    const dead = net.createServer((socket) => {
      accepted++
      socket.destroy()
    })
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve))
    const live = makeNode()
    const liveAt = await live.transport.listen('127.0.0.1')
    const dir = await tempDir('upswarm-age-out-')
    let daemon: Daemon | undefined
    try {
      const product = newProduct()
      const listed = [
        { port: (dead.address() as net.AddressInfo).port, publicKey: randomBytes(32).toString('hex') },
        { port: liveAt.port, publicKey: live.transport.publicKey.toString('hex') },
      ]
      for (const p of listed) {
        const reply = await nc.request(trackerSubject('announce', `peer-${randomUUID().slice(0, 8)}`), JSON.stringify({ product, rev: 0, peerId: randomBytes(20).toString('hex'), ip: '127.0.0.1', ...p }), { timeout: 5_000 })
        expect(reply.headers?.get('Nats-Service-Error')).toBeUndefined()
      }
      await WorkingCopy.create(dir.path, { format: 1, product, publicKey: randomBytes(32).toString('hex'), clientId: 'age-out', historyDepth: 2 })

      // Count the daemon's announce rounds as the tracker receives them; each answer lists both.
      let rounds = 0
      let roundsDone!: () => void
      const done = new Promise<void>((resolve) => (roundsDone = resolve))
      const watch = nc.subscribe(trackerSubject('announce', '*'), {
        callback: (_err, msg) => {
          if ((msg.json() as { product?: string }).product === product && ++rounds === ROUNDS) roundsDone()
        },
      })
      try {
        daemon = await startDaemon({ dir: dir.path, nc, host: '127.0.0.1', announceIntervalMs: 50 })
        await live.nextConnection()
        await done
      } finally {
        watch.unsubscribe()
      }
      expect(accepted).toBeGreaterThanOrEqual(1)
      expect(accepted).toBeLessThanOrEqual(MAX_DIAL_FAILURES)
    } finally {
      await daemon?.close()
      await live.transport.close()
      dead.close()
      await dir.cleanup()
    }
  })

  it('daemon — with a site (issue 14 item 4) it tells it to the tracker and its peers, and keeps each peer\'s site for its downloads', async () => {
    let heard!: (site: string | undefined) => void
    const told = new Promise<string | undefined>((resolve) => (heard = resolve))
    // A peer that speaks the piece protocol (a pure downloader) and tells its site.
    const live = makeNode((stream) => {
      new PieceSession(stream, {})
      exchangeSite(stream, 'west', heard)
    })
    const liveAt = await live.transport.listen('127.0.0.1')
    const dir = await tempDir('upswarm-site-')
    let daemon: Daemon | undefined
    const product = newProduct()
    const announced: (string | undefined)[] = []
    const watch = nc.subscribe(trackerSubject('announce', '*'), {
      callback: (_err, msg) => {
        // The daemon's announces (the test's own, for the live peer, names no site).
        const body = msg.json() as { product?: string; site?: string; publicKey?: string }
        if (body.product === product && body.publicKey !== live.transport.publicKey.toString('hex')) announced.push(body.site)
      },
    })
    try {
      const reply = await nc.request(trackerSubject('announce', `peer-${randomUUID().slice(0, 8)}`), JSON.stringify({
        product, rev: 0, peerId: randomBytes(20).toString('hex'), ip: '127.0.0.1', port: liveAt.port, publicKey: live.transport.publicKey.toString('hex'),
      }), { timeout: 5_000 })
      expect(reply.headers?.get('Nats-Service-Error')).toBeUndefined()
      await WorkingCopy.create(dir.path, { format: 1, product, publicKey: randomBytes(32).toString('hex'), clientId: 'site', historyDepth: 2 })
      daemon = await startDaemon({ dir: dir.path, nc, host: '127.0.0.1', announceIntervalMs: 50, site: 'east' })
      await live.nextConnection()
      expect(await told).toBe('east')
      const d = daemon
      await vi.waitFor(() => expect(d.peers.all().map((p) => [p.key, p.site])).toEqual([[live.transport.publicKey.toString('hex'), 'west']]), { timeout: 10_000, interval: 20 })
      expect(announced.length).toBeGreaterThan(0)
      expect(announced.every((s) => s === 'east')).toBe(true)
    } finally {
      watch.unsubscribe()
      await daemon?.close()
      await live.transport.close()
      await dir.cleanup()
    }
  })
})
