// Issue 14: a range a client no longer needs is withdrawn before the server uploads it. The
// client (a CLIENTS-account identity, through the proxy's assignment) asks a server capped at
// 1 MiB/s for four ranges; it withdraws the last while it waits for its turn. The server sends
// the other three and not that one, counts it, and the range behind it moves up. And a capped
// server whose queue is longer than a client waits answers `busy` with the wait, rather than let
// the range time out and the client count a slow server as a failed one; the same for a batch of
// small files (`units`). Ranges are tried both over the server's bulk port (HTTPS, issue 14 item 2)
// and over NATS: the same rules hold on either path.
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { publish } from '../../actors/publisher/publish.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { proxySubject } from '../../infra/nats/names.ts'
import { requestJson } from '../../infra/nats/request.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { RangeReader } from '../../infra/repo-client.ts'
import { newProduct, roleConnection, tempDir, testConnection } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const MiB = 1024 * 1024

describe('range withdrawal', () => {
  let admin: NatsConnection
  let serverConn: NatsConnection
  let proxyConn: NatsConnection
  let client: NatsConnection
  let dir: { path: string; cleanup: () => Promise<void> }
  let server: RepoServer | undefined
  let proxy: Proxy | undefined
  let product: string
  let big: Buffer
  /** The same for the tests over NATS: its pieces have their own counts of copies sent. */
  let bigNats: Buffer
  /** 3 MiB of small files: one `units` batch. */
  let small: Buffer[]

  beforeAll(async () => {
    admin = await testConnection()
    dir = await tempDir()
    const id = `withdraw${process.pid}`
    serverConn = await roleConnection({ kind: 'server', name: id })
    proxyConn = await roleConnection({ kind: 'proxy', name: 'withdraw-proxy' })
    client = await roleConnection({ kind: 'client', name: 'withdraw-client' })
    product = newProduct()
    const key = generatePublisherKey()
    big = randomContent(4 * MiB)
    bigNats = randomContent(4 * MiB)
    small = Array.from({ length: 12 }, () => randomContent(256 * 1024))
    await writeTree(join(dir.path, 'src'), { 'big.bin': big, 'big-nats.bin': bigNats, ...Object.fromEntries(small.map((b, i) => [`small/f${i}.bin`, b])) })
    const trust = join(dir.path, 'trust.json')
    await publish({ nc: admin, src: join(dir.path, 'src'), product, key, trust })
    server = await startRepoServer({ nc: serverConn, id: `withdraw${process.pid}`, dataDir: join(dir.path, 's'), trust: await new TrustStore(trust).ready(), maxUploadRate: MiB })
    await waitFor(server.actor, () => (server!.store.synced[product] ?? 0) >= 1, { timeout: 30_000 })
    proxy = await startProxy({ nc: proxyConn, httpPort: 0 })
    // The proxy learns of the server from its heartbeats: assignable once it has heard one since.
    for (let i = 0; ; i++) {
      const a = await requestJson<{ server?: string }>(client, proxySubject('assign'), { product }).catch(() => undefined)
      if (a?.server === server.id) break
      if (i >= 100) throw new Error('the proxy never assigned the server')
      await new Promise((r) => setTimeout(r, 100))
    }
  }, 60_000)
  afterAll(async () => {
    await server?.close()
    await proxy?.close()
    for (const nc of [admin, serverConn, proxyConn, client]) await nc?.close()
    await dir?.cleanup()
  })

  // Issue 14 item 2: the same rules over the bulk port (HTTPS ranges) and over NATS.
  for (const bulk of [false, true]) {
    const way = bulk ? 'over the bulk port' : 'over NATS'
    const blob = (): Buffer => (bulk ? big : bigNats)
    it(`ranges ${way} — a range withdrawn while it waits for its turn at a capped server is never sent and is counted; the others arrive whole`, async () => {
      const sha = sha256Hex(blob())
      const reader = new RangeReader(client, product, 30_000, { bulk })
      const piece = (i: number): Buffer => blob().subarray(i * MiB, (i + 1) * MiB)
      const before = server!.heartbeat()
      const withdraw = new AbortController()
      const asks = [0, 1, 2, 3].map((i) => reader.readPiece(sha, i * MiB, MiB, sha256Hex(piece(i)), i === 3 ? withdraw.signal : new AbortController().signal))
      // Pieces 0 and 1 go first (on a fresh bucket the burst, then one piece of debt); 2 and 3
      // wait their turns. The last, piece 3, is withdrawn as soon as the server holds all four
      // requests (and, over the bulk port, the ticket's): then it waits about two seconds for its
      // turn. (Withdrawing it once piece 0 was in failed on a loaded machine, where piece 0's
      // arrival took as long as piece 3's wait.)
      const asked = 4 + (bulk ? 1 : 0)
      for (let i = 0; server!.heartbeat().requests - before.requests < asked; i++) {
        if (i >= 1_000) throw new Error(`the server got ${server!.heartbeat().requests - before.requests} of the ${asked} requests in 10 s`)
        await new Promise((r) => setTimeout(r, 10))
      }
      withdraw.abort(new Error('piece 3 came from a peer'))
      await expect(asks[3]).rejects.toThrow('piece 3 came from a peer')
      expect((await asks[0]!).equals(piece(0))).toBe(true)
      expect((await asks[1]!).equals(piece(1))).toBe(true)
      expect((await asks[2]!).equals(piece(2))).toBe(true)
      const hb = server!.heartbeat()
      expect((hb.rangesWithdrawn ?? 0) - (before.rangesWithdrawn ?? 0)).toBe(1)
      expect(hb.bytesServed - before.bytesServed).toBe(3 * MiB)
      expect((hb.bytesServedBulk ?? 0) - (before.bytesServedBulk ?? 0)).toBe(bulk ? 3 * MiB : 0)
      expect(reader.bulkBytes).toBe(bulk ? 3 * MiB : 0)
      expect((hb.rangesBusy ?? 0) - (before.rangesBusy ?? 0)).toBe(0)
    })

    it(`ranges ${way} — a capped server whose queue is longer than its client waits answers busy with the wait; the client asks again ready to wait, never counts the slow server as failed, and every piece arrives`, async () => {
      const sha = sha256Hex(blob())
      // 2 s per request against 4 MiB at 1 MiB/s: the last two pieces would wait 2–3 s. Without the
      // busy answer they time out, the reader drops its only server and the read fails.
      const reader = new RangeReader(client, product, 2_000, { bulk })
      const piece = (i: number): Buffer => blob().subarray(i * MiB, (i + 1) * MiB)
      const busyBefore = server!.heartbeat().rangesBusy ?? 0
      const got = await Promise.all([0, 1, 2, 3].map((i) => reader.readPiece(sha, i * MiB, MiB, sha256Hex(piece(i)))))
      got.forEach((data, i) => expect(data.equals(piece(i))).toBe(true))
      expect(reader.busyAnswers).toBeGreaterThanOrEqual(1)
      expect(reader.servers).toEqual([server!.id])
      expect((server!.heartbeat().rangesBusy ?? 0) - busyBefore).toBe(reader.busyAnswers)
      expect(reader.bulkBytes).toBe(bulk ? 4 * MiB : 0)
    })
  }

  for (const overBulk of [false, true]) {
    it(`units${overBulk ? ' over the bulk port' : ''} — a batch of small files that would wait longer at a capped server than its client waits is answered busy; the client asks again ready to wait, and every file arrives`, async () => {
      // A patient reader's 4 MiB of ranges queue first; then 3 MiB in one batch at 1 MiB/s against
      // 2 s: without the busy answer the batch times out in the queue, and the client takes nothing
      // from it (every file would go the per-file way).
      const sha = sha256Hex(big)
      const patient = new RangeReader(client, product, 30_000)
      const ahead = Promise.all([0, 1, 2, 3].map((i) => patient.readPiece(sha, i * MiB, MiB, sha256Hex(big.subarray(i * MiB, (i + 1) * MiB)))))
      const reader = new RangeReader(client, product, 2_000, { bulks: new Map() })
      const busyBefore = server!.heartbeat().rangesBusy ?? 0
      const got = await reader.readUnits(small.map((b) => sha256Hex(b)), { bulk: overBulk })
      await ahead
      expect(got.size).toBe(small.length)
      for (const b of small) expect(Buffer.from(got.get(sha256Hex(b))!).equals(b)).toBe(true)
      expect(reader.busyAnswers).toBeGreaterThanOrEqual(1)
      expect((server!.heartbeat().rangesBusy ?? 0) - busyBefore).toBe(reader.busyAnswers)
      expect(reader.bulkBytes > 0).toBe(overBulk)
    })
  }
})
