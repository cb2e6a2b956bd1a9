// Issue 14 item 2: a repository server's bulk port. Blob ranges go over HTTPS straight from the
// server; NATS hands out the port's address, its self-signed certificate and a ticket. A client
// identity (CLIENTS account, through the proxy's assignment) fetches a whole blob over the port;
// the port refuses anyone without a current ticket of its own server and any malformed request;
// a client shown another certificate than the one offered refuses the port; and where a server has
// no port, or its port cannot be reached, the client reads the same verified bytes over NATS.
// Issue 13 item 4: a batch of small units (a first install's files) goes over the port too, as the
// same reply the NATS `units` request gives; a port of an earlier release (ranges only) sends the
// client back to NATS for them.
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { publish } from '../../actors/publisher/publish.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { selfSignedCert } from '../../infra/auth/tls.ts'
import { BulkReader } from '../../infra/http/bulk-client.ts'
import { BLOB_PATH, BulkOffer, UNITS_BODY_MAX, UNITS_PATH, fingerprintOf } from '../../infra/http/bulk-wire.ts'
import { startBulkPort } from '../../actors/repo-server/bulk.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { proxySubject, repoSubject } from '../../infra/nats/names.ts'
import { requestJson } from '../../infra/nats/request.ts'
import { sha1Hex, sha256Hex } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { BULK_OPEN_MIN, RangeReader, RepoClient, type BulkPorts } from '../../infra/repo-client.ts'
import { BlobStore } from '../../infra/store/blob-store.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { Identity } from '../../infra/nats/identity.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const MiB = 1024 * 1024

/** A raw GET (or, with a body, POST) on a bulk port, trusting exactly the certificate offered: status and body. */
function get(offer: BulkOffer, path: string, headers: Record<string, string>, post?: Buffer): Promise<{ status: number; body: Buffer }> {
  const pinned = fingerprintOf(offer.cert)
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, offer.url), {
      headers, ca: offer.cert, agent: false, ...(post ? { method: 'POST' } : {}),
      checkServerIdentity: (_h, cert) => (cert.fingerprint256 === pinned ? undefined : new Error('not the offered certificate')),
    }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts) }))
    })
    req.on('error', reject)
    req.end(post)
  })
}

describe('the bulk port', () => {
  let admin: NatsConnection
  const conns: NatsConnection[] = []
  let client: NatsConnection
  let dir: { path: string; cleanup: () => Promise<void> }
  const servers: RepoServer[] = []
  /** The server the proxy assigns, and one it never assigns (weight 0). */
  let main: RepoServer
  let other: RepoServer
  let proxy: Proxy | undefined
  let product: string
  let big: Buffer
  /** Small files (units of a batch), by SHA-256. */
  const small = new Map<string, Buffer>()
  let trust: string
  // A cluster of its own: on the suite's, another file's proxy (they answer as one queue group)
  // may hand this client a server of its own that holds the product too.
  let cluster: NatsCluster
  let roleConnection: (identity: Identity) => Promise<NatsConnection>

  /** Weight 0: never assigned (a server the proxy would otherwise hand the reader). */
  const startServer = async (id: string, opts: { bulk?: boolean; weight?: number } = {}): Promise<RepoServer> => {
    const nc = await roleConnection({ kind: 'server', name: id })
    conns.push(nc)
    const server = await startRepoServer({ nc, id, dataDir: join(dir.path, id), trust: await new TrustStore(trust).ready(), ...opts })
    servers.push(server)
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 1, { timeout: 90_000 })
    return server
  }
  const offerOf = async (server: RepoServer): Promise<BulkOffer> => BulkOffer.parse(await requestJson(client, repoSubject(server.id, 'bulk'), {}))
  /**
   * Waits until the proxies assign `server` (they learn of servers from heartbeats), three times in
   * a row: proxies answer as one queue group, and another test's proxy may answer too.
   */
  const assigned = async (server: RepoServer, exclude: string[] = []): Promise<void> => {
    for (let i = 0, inRow = 0; inRow < 3; i++) {
      const a = await requestJson<{ server?: string }>(client, proxySubject('assign'), { product, exclude }).catch(() => undefined)
      inRow = a?.server === server.id ? inRow + 1 : 0
      if (i >= 200) throw new Error(`the proxy never assigned ${server.id}`)
      if (inRow < 3) await new Promise((r) => setTimeout(r, 100))
    }
  }

  beforeAll(async () => {
    dir = await tempDir()
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    roleConnection = (identity) => own.connect(`upswarm-test-${identity.kind}`, identity)
    admin = await own.connect('upswarm-test')
    const proxyConn = await roleConnection({ kind: 'proxy', name: 'bulk-proxy' })
    client = await roleConnection({ kind: 'client', name: 'bulk-client' })
    conns.push(proxyConn, client)
    product = newProduct()
    big = randomContent(5 * MiB + 12_345)
    for (let i = 0; i < 12; i++) {
      const b = randomContent(100 + i * 997)
      small.set(sha256Hex(b), b)
    }
    await writeTree(join(dir.path, 'src'), { 'big.bin': big, ...Object.fromEntries([...small.values()].map((b, i) => [`small/f${i}.bin`, b])) })
    trust = join(dir.path, 'trust.json')
    await publish({ nc: admin, src: join(dir.path, 'src'), product, key: generatePublisherKey(), trust })
    // The second server is never assigned (weight 0): its tickets are tried on the first one's port.
    ;[main, other] = await Promise.all([startServer(`bulk${process.pid}`), startServer(`bulkother${process.pid}`, { weight: 0 })])
    proxy = await startProxy({ nc: proxyConn, httpPort: 0 })
    await assigned(main)
  }, 120_000)
  afterAll(async () => {
    for (const s of servers) await s.close().catch(() => {})
    await proxy?.close()
    for (const nc of [admin, ...conns]) await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('a client fetches a whole blob over the port: every byte verified (size, SHA-1, SHA-256), all of it counted as sent over the port', async () => {
    const server = main
    const before = server.heartbeat().bytesServedBulk ?? 0
    const store = new BlobStore(join(dir.path, 'store'))
    const sha256 = sha256Hex(big)
    try {
      const got = await new RepoClient(client).fetchBlob(product, { path: 'big.bin', kind: 'file', mode: 0o644, size: big.length, sha256, sha1: sha1Hex(big) }, store, { threads: 4 })
      expect(got).toEqual({ bytesFromServers: big.length, servers: [server.id] })
      expect((await store.readRange(sha256, 0, big.length)).equals(big)).toBe(true)
      expect((server.heartbeat().bytesServedBulk ?? 0) - before).toBe(big.length)
    } finally {
      // The handle readRange keeps open: closed here, not by the garbage collector during a later file of this worker.
      store.closeHandles()
    }
  })

  it('the port refuses a request without a ticket, with a forged or expired one, or with another server\'s: 401 and nothing sent', async () => {
    const server = main
    const offer = await offerOf(server)
    const path = BLOB_PATH + sha256Hex(big)
    const range = { range: 'bytes=0-1023' }
    const before = server.heartbeat().bytesServed
    const tickets = {
      none: undefined,
      forged: `${offer.ticket.split('.')[0]}.${'A'.repeat(43)}`,
      expired: `${Math.floor(Date.now() / 1000) - 5}.${offer.ticket.split('.')[1]}`,
      "another server's": (await offerOf(other)).ticket,
    }
    for (const [what, ticket] of Object.entries(tickets)) {
      const r = await get(offer, path, { ...range, ...(ticket ? { authorization: `Bearer ${ticket}` } : {}) })
      expect({ what, status: r.status, code: JSON.parse(r.body.toString()).code }).toEqual({ what, status: 401, code: 'UPSWARM_E_AUTH' })
    }
    expect(server.heartbeat().bytesServed).toBe(before)
    // With the ticket the server gave, the same request is answered.
    const ok = await get(offer, path, { ...range, authorization: `Bearer ${offer.ticket}` })
    expect(ok.status).toBe(206)
    expect(ok.body.equals(big.subarray(0, 1024))).toBe(true)
  })

  it('the port answers a malformed request with an error naming it: no range, a range too large, a path that is not a blob, a blob it does not hold', async () => {
    const offer = await offerOf(main)
    const auth = { authorization: `Bearer ${offer.ticket}` }
    const sha = sha256Hex(big)
    const cases: [string, string, Record<string, string>, number, string][] = [
      ['no range', BLOB_PATH + sha, {}, 400, 'UPSWARM_E_BAD_REQUEST'],
      ['a range of 5 MiB', BLOB_PATH + sha, { range: `bytes=0-${5 * MiB - 1}` }, 400, 'UPSWARM_E_BAD_REQUEST'],
      ['a range past the end', BLOB_PATH + sha, { range: `bytes=${big.length}-${big.length + 10}` }, 400, 'UPSWARM_E_BAD_REQUEST'],
      ['not a blob', '/etc/passwd', { range: 'bytes=0-10' }, 404, 'UPSWARM_E_NOT_FOUND'],
      ['a blob not held', BLOB_PATH + 'ab'.repeat(32), { range: 'bytes=0-10' }, 404, 'UPSWARM_E_NOT_FOUND'],
    ]
    for (const [what, path, headers, status, code] of cases) {
      const r = await get(offer, path, { ...auth, ...headers })
      const body = JSON.parse(r.body.toString()) as { code: string; message: string }
      expect({ what, status: r.status, code: body.code }).toEqual({ what, status, code })
      expect(body.message.length).toBeGreaterThan(10)
    }
  })

  it('a client shown another certificate than the one the server offered over NATS refuses the port', async () => {
    const offer = await offerOf(main)
    const stranger = selfSignedCert('someone else')
    const reader = new BulkReader({ ...offer, cert: stranger.cert }, main.id, () => offerOf(main))
    try {
      const err = await reader.read(sha256Hex(big), 0, 1024, 10_000).then(() => undefined, (e: unknown) => e as Error)
      expect(err?.name).toBe('BulkUnreachable')
      expect(err?.message).toContain(`server ${main.id}'s bulk port`)
      expect(reader.bytes).toBe(0)
    } finally {
      reader.close()
    }
  })

  it('a reader whose ticket is refused asks the server for a new offer once and goes on', async () => {
    const offer = await offerOf(main)
    let renewed = 0
    const reader = new BulkReader({ ...offer, ticket: `${offer.ticket.split('.')[0]}.${'B'.repeat(43)}` }, main.id, async () => {
      renewed++
      return offerOf(main)
    })
    try {
      const data = await reader.read(sha256Hex(big), MiB, MiB, 10_000)
      expect(data.equals(big.subarray(MiB, 2 * MiB))).toBe(true)
      expect(renewed).toBe(1)
    } finally {
      reader.close()
    }
  })

  it('a small range alone opens no bulk port (NATS carries it); once a large range opened the port, small ranges take it too', async () => {
    const sha = sha256Hex(big)
    const small = big.subarray(0, BULK_OPEN_MIN - 1)
    const reader = new RangeReader(client, product, 10_000, { bulks: new Map() })
    const before = main.heartbeat()
    expect((await reader.readPiece(sha, 0, small.length, sha256Hex(small))).equals(small)).toBe(true)
    expect(reader.bulkBytes).toBe(0)
    const mid = main.heartbeat()
    expect(mid.bytesServed - before.bytesServed).toBe(small.length)
    expect((mid.bytesServedBulk ?? 0) - (before.bytesServedBulk ?? 0)).toBe(0)
    const piece = big.subarray(MiB, 2 * MiB)
    expect((await reader.readPiece(sha, MiB, MiB, sha256Hex(piece))).equals(piece)).toBe(true)
    expect((await reader.readPiece(sha, 0, small.length, sha256Hex(small))).equals(small)).toBe(true)
    expect(reader.bulkBytes).toBe(MiB + small.length)
    expect((main.heartbeat().bytesServedBulk ?? 0) - (mid.bytesServedBulk ?? 0)).toBe(MiB + small.length)
  })

  it('a reader told to use NATS reads over NATS even where another reader of the same client holds the bulk port', async () => {
    const sha = sha256Hex(big)
    const piece = big.subarray(0, MiB)
    const bulks: BulkPorts = new Map()
    const viaBulk = new RangeReader(client, product, 10_000, { bulks })
    expect((await viaBulk.readPiece(sha, 0, MiB, sha256Hex(piece))).equals(piece)).toBe(true)
    expect(viaBulk.bulkBytes).toBe(MiB)
    const before = main.heartbeat()
    const viaNats = new RangeReader(client, product, 10_000, { bulks, bulk: false })
    expect((await viaNats.readPiece(sha, 0, MiB, sha256Hex(piece))).equals(piece)).toBe(true)
    expect(viaNats.bulkBytes).toBe(0)
    const after = main.heartbeat()
    expect(after.bytesServed - before.bytesServed).toBe(MiB)
    expect((after.bytesServedBulk ?? 0) - (before.bytesServedBulk ?? 0)).toBe(0)
  })

  it('a batch of small units over the port: the reply the NATS `units` request gives, each unit checked against its name, counted as sent over the port', async () => {
    const hashes = [...small.keys()]
    const viaNats = new RangeReader(client, product, 10_000, { bulks: new Map() })
    const before = main.heartbeat()
    const overNats = await viaNats.readUnits(hashes)
    expect(viaNats.bulkBytes).toBe(0)
    const mid = main.heartbeat()
    expect((mid.bytesServedBulk ?? 0) - (before.bytesServedBulk ?? 0)).toBe(0)
    const reader = new RangeReader(client, product, 10_000, { bulks: new Map() })
    const got = await reader.readUnits([...hashes, 'cd'.repeat(32)], { bulk: true })
    // The one not held is neither sent nor fails the batch.
    expect([...got.keys()].sort()).toEqual([...hashes].sort())
    for (const [sha, b] of got) expect(Buffer.from(b).equals(small.get(sha)!)).toBe(true)
    for (const [sha, b] of overNats) expect(Buffer.from(b).equals(small.get(sha)!)).toBe(true)
    const sent = (main.heartbeat().bytesServedBulk ?? 0) - (mid.bytesServedBulk ?? 0)
    expect(reader.bulkBytes).toBe(sent)
    expect(sent).toBeGreaterThan([...small.values()].reduce((n, b) => n + b.length, 0))
  })

  it('the port answers a units request without a current ticket with 401, and a malformed one with an error naming it', async () => {
    const offer = await offerOf(main)
    const auth = { authorization: `Bearer ${offer.ticket}` }
    const ok = Buffer.from(JSON.stringify({ hashes: [...small.keys()] }))
    const cases: [string, Record<string, string>, Buffer | undefined, number, string][] = [
      ['no ticket', {}, ok, 401, 'UPSWARM_E_AUTH'],
      ['not JSON', auth, Buffer.from('hashes=1'), 400, 'UPSWARM_E_BAD_REQUEST'],
      ['a hash that is not one', auth, Buffer.from(JSON.stringify({ hashes: ['xyz'] })), 400, 'UPSWARM_E_BAD_REQUEST'],
      ['no hashes', auth, Buffer.from(JSON.stringify({ hashes: [] })), 400, 'UPSWARM_E_BAD_REQUEST'],
      ['a body past the limit', auth, Buffer.alloc(UNITS_BODY_MAX + 1, 0x20), 400, 'UPSWARM_E_BAD_REQUEST'],
      ['a GET', auth, undefined, 404, 'UPSWARM_E_NOT_FOUND'],
    ]
    for (const [what, headers, body, status, code] of cases) {
      const r = await get(offer, UNITS_PATH, headers, body)
      const answer = JSON.parse(r.body.toString()) as { code: string; message: string }
      expect({ what, status: r.status, code: answer.code }).toEqual({ what, status, code })
      expect(answer.message.length).toBeGreaterThan(10)
    }
    const r = await get(offer, UNITS_PATH, auth, ok)
    expect(r.status).toBe(200)
  })

  it('a bulk port of an earlier release (ranges only) sends the batch back to NATS: the same verified units, nothing over the port', async () => {
    // A port that serves ranges only, standing in for the assigned server's.
    const old = await startBulkPort({
      id: main.id, dataDir: dir.path, host: '127.0.0.1', port: 0, maxRange: MiB,
      serve: async () => Buffer.alloc(0), log: () => {},
    })
    try {
      const bulks: BulkPorts = new Map([[main.id, Promise.resolve(new BulkReader(old.offer(), main.id, async () => old.offer()))]])
      const reader = new RangeReader(client, product, 10_000, { bulks })
      const before = main.heartbeat().bytesServed
      const got = await reader.readUnits([...small.keys()], { bulk: true })
      expect(got.size).toBe(small.size)
      for (const [sha, b] of got) expect(Buffer.from(b).equals(small.get(sha)!)).toBe(true)
      expect(reader.bulkBytes).toBe(0)
      expect(main.heartbeat().bytesServed - before).toBeGreaterThan(0)
      // And the next batch asks NATS at once.
      expect((await reader.readUnits([...small.keys()].slice(0, 2), { bulk: true })).size).toBe(2)
      expect(reader.bulkBytes).toBe(0)
    } finally {
      await old.close()
    }
  })

  it('a port that cannot be reached, and a server without a port (or an older one): the client reads the same verified bytes over NATS', async () => {
    const sha = sha256Hex(big)
    const piece = (i: number): Buffer => big.subarray(i * MiB, (i + 1) * MiB)
    // The first server's port goes away (a firewall in between, say): the reader falls back.
    const server = main
    const reader = new RangeReader(client, product, 10_000)
    expect((await reader.readPiece(sha, 0, MiB, sha256Hex(piece(0)))).equals(piece(0))).toBe(true)
    expect(reader.bulkBytes).toBe(MiB)
    await server.bulk!.close()
    const nats = server.heartbeat().bytesServed
    expect((await reader.readPiece(sha, MiB, MiB, sha256Hex(piece(1)))).equals(piece(1))).toBe(true)
    expect(reader.bulkBytes).toBe(MiB)
    expect(reader.servers).toEqual([server.id])
    expect(reader.bulkFailures).toHaveLength(1)
    expect(reader.bulkFailures[0]).toContain(`server ${server.id}'s bulk port`)
    expect(server.heartbeat().bytesServed - nats).toBe(MiB)

    // A server started without its port answers `bulk` with not-found: NATS from its first range.
    const plain = await startServer(`bulkless${process.pid}`, { bulk: false })
    expect(plain.bulk).toBeUndefined()
    await expect(requestJson(client, repoSubject(plain.id, 'bulk'), {})).rejects.toMatchObject({ code: 'UPSWARM_E_NOT_FOUND' })
    await server.close()
    await assigned(plain, [server.id])
    const next = new RangeReader(client, product, 10_000)
    expect((await next.readPiece(sha, 2 * MiB, MiB, sha256Hex(piece(2)))).equals(piece(2))).toBe(true)
    expect(next.servers.at(-1)).toBe(plain.id)
    expect(next.bulkBytes).toBe(0)
    expect(next.bulkFailures).toEqual([])
    expect(plain.heartbeat().bytesServed).toBe(MiB)
  }, 120_000)
})
