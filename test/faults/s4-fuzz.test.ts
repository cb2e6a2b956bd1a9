// Fault suite S4 (issue 11; issue 10 "strict input"): fuzzed input at every door a stranger can
// reach — the NATS service endpoints of a repository server, the proxy and the tracker (malformed
// JSON, wrong types, huge values, deep nesting, invalid UTF-8, mutated valid requests), the
// tracker's UDP and HTTP doors, the proxy's HTTP gateway and a server's bulk port (TLS) over real sockets, and the piece and
// statements codecs of the swarm. A crash is: no answer, a 5xx / UPSWARM_E_IO answer (an error
// the code did not expect; 503 "no server holds it" is a designed answer), a decoder throwing anything but its own error, an unhandled
// rejection, or a door that does not answer a valid request afterwards. Crashes 0.
// Full: 2 000 inputs per door; short (npm test): 60.
import { randomUUID } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { publish } from '../../actors/publisher/publish.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { proxySubject, repoSubject, trackerSubject } from '../../infra/nats/names.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { loadOrCreateHostKey } from '../../infra/ssh/sftp-gateway.ts'
import { PieceDecodeError, decoders, encoders, toBytes } from '../../infra/swarm/piece-codec.ts'
import { StatementDecodeError, StatementKind, statementBytes, statementDecoders, statementEncoders } from '../../infra/swarm/statements-codec.ts'
import { startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { UdpProbe } from '../helpers/tracker-wire.ts'
import { writeTree } from '../helpers/trees.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const PER_DOOR = sized(60, 2_000)
const REPLY_MS = 5_000

type Rnd = () => number
const int = (rnd: Rnd, n: number): number => Math.floor(rnd() * n)
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[int(rnd, xs.length)]!
const bytes = (rnd: Rnd, n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(rnd, 256)))

/** A hostile value: wrong type, huge, negative, fractional, deep, long, odd unicode. */
function oddValue(rnd: Rnd): unknown {
  return pick(rnd, [
    () => null, () => true, () => -1, () => 0, () => 1.5, () => 2 ** 53 + 1, () => 1e308, () => -1e308, () => Number.MAX_SAFE_INTEGER,
    () => '', () => 'x'.repeat(int(rnd, 200_000)), () => '\u0000\ud800', () => '../../etc/passwd', () => randomUUID().toUpperCase(),
    () => [], () => Array.from({ length: 100 }, () => 'a'.repeat(64)), () => ({}), () => ({ __proto__: { polluted: 1 } }),
    () => 'ab'.repeat(32), () => randomUUID(),
  ])()
}

/** Bytes of a request: a mutated valid one, a valid shape with odd values, or no JSON at all. */
function requestBytes(rnd: Rnd, valid: Record<string, unknown>): Buffer {
  const kind = int(rnd, 6)
  if (kind === 0) return bytes(rnd, int(rnd, 300))
  if (kind === 1) return Buffer.from('['.repeat(int(rnd, 100_000)))
  if (kind === 2) {
    const text = Buffer.from(JSON.stringify(valid))
    for (let f = 1 + int(rnd, 4); f > 0; f--) text[int(rnd, text.length)] = int(rnd, 256)
    return text
  }
  if (kind === 3) return Buffer.from(`{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}},${JSON.stringify(valid).slice(1)}`)
  const shape: Record<string, unknown> = { ...valid }
  for (const k of Object.keys(shape)) if (rnd() < 0.6) shape[k] = oddValue(rnd)
  if (kind === 5) shape[`extra${int(rnd, 9)}`] = oddValue(rnd)
  return Buffer.from(JSON.stringify(shape))
}

/**
 * The status of the first answer on `s`, or 0 when none came within REPLY_MS. `atStatus`: close
 * the socket once the status line is in (a server that keeps the connection open), else wait for
 * the server to close it.
 */
function answerStatus(s: Socket, atStatus: boolean): Promise<number> {
  return new Promise((resolve) => {
    let head = ''
    const timer = setTimeout(() => { s.destroy(); resolve(0) }, REPLY_MS)
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1')
      if (atStatus && /^HTTP\/1\.[01] \d{3}/.test(head)) s.destroy()
    })
    s.on('error', () => undefined)
    s.on('close', () => {
      clearTimeout(timer)
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0))
    })
  })
}

/** Sends one raw HTTP request line (any bytes) and resolves with the status, or 0 for no answer. */
function rawHttp(url: string, path: Buffer): Promise<number> {
  const { port } = new URL(url)
  // write, not end: a half-closed socket lets Node's server drop an answer that comes later.
  const s = connect(Number(port), '127.0.0.1', () => s.write(Buffer.concat([Buffer.from('GET '), path, Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')])))
  return answerStatus(s, false)
}

function mutatedPath(rnd: Rnd, valid: string[]): Buffer {
  const b = Buffer.from(pick(rnd, valid))
  const kind = int(rnd, 4)
  if (kind === 0) return Buffer.concat([Buffer.from('/'), bytes(rnd, int(rnd, 100)).map((x) => (x === 0x20 || x === 0x0d || x === 0x0a ? 0x41 : x))])
  if (kind === 1) return Buffer.from(`${pick(rnd, valid)}/${pick(rnd, ['%', '%E0%A4%A', '%00', '..', '%2e%2e', '%ff%fe', 'a'.repeat(5000), '?x=%zz', '//'])}`)
  for (let f = 1 + int(rnd, 4); f > 0; f--) b[int(rnd, b.length)] = pick(rnd, [0x25, 0x2f, 0x2e, 0x3f, 0x26, 0x3d, 0x80, 0xff, int(rnd, 0x7f) || 0x41])
  return b
}

/** Sends one raw request (any bytes) over TLS to the bulk port and resolves with the status, or 0 for no answer. */
function rawHttps(url: string, request: Buffer): Promise<number> {
  const { port } = new URL(url)
  // The port's certificate is pinned by the clients; here any certificate will do: the fuzz is of what follows.
  const s = tlsConnect({ host: '127.0.0.1', port: Number(port), rejectUnauthorized: false }, () => s.write(request))
  // The port keeps a connection open after an answer it could read to the end: the status is enough.
  return answerStatus(s, true)
}

/** A bulk-port request with a fuzzed path, ticket or range (or none of them), as raw bytes. */
function bulkRequest(rnd: Rnd, path: Buffer, ticket: string): Buffer {
  const auth = pick(rnd, [`Bearer ${ticket}`, `Bearer ${ticket.slice(0, -1)}x`, 'Bearer ', 'Basic YTpi', `Bearer ${'A'.repeat(3000)}`, ''])
  const range = pick(rnd, ['bytes=0-3', 'bytes=0-', 'bytes=5-1', 'bytes=-4', 'bytes=0-99999999999', 'bytes=a-b', `bytes=0-${4 * 1024 * 1024}`, ''])
  const method = pick(rnd, ['GET', 'GET', 'GET', 'POST', 'PUT', 'G\x00T'])
  const headers = [auth && `authorization: ${auth}`, range && `range: ${range}`].filter(Boolean).join('\r\n')
  return Buffer.concat([Buffer.from(`${method} `), path, Buffer.from(` HTTP/1.1\r\nhost: bulk\r\n${headers}${headers ? '\r\n' : ''}\r\n`)])
}

describe('faults S4 — fuzzed input at every door', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let nc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let tracker: Tracker
  const product = randomUUID()
  let sha256 = ''
  const serverId = `fuzz-${randomUUID().slice(0, 8)}`
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }

  beforeAll(async () => {
    dir = await tempDir('upswarm-faults-s4-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    nc = await own.connect('faults-s4')
    await writeTree(join(dir.path, 'src'), { 'a.txt': 'fuzz me\n' })
    const trust = join(dir.path, 'trust.json')
    await publish({ nc, src: join(dir.path, 'src'), product, key: generatePublisherKey(), trust })
    sha256 = sha256Hex('fuzz me\n')
    server = await startRepoServer({ nc, id: serverId, dataDir: join(dir.path, serverId), trust: await new TrustStore(trust).ready() })
    await waitFor(server.actor, () => server.store.synced[product] === 1, { timeout: 30_000 })
    proxy = await startProxy({ nc, httpPort: 0, sshPort: 0, sshHostKey: await loadOrCreateHostKey(join(dir.path, 'ssh-host-key')), trust: await new TrustStore(trust).ready() })
    tracker = await startTracker({ nc, id: `fuzz-tracker-${process.pid}`, rateLimit: false })
    // The proxy has the server in its pool (from its heartbeat), so fuzzed requests reach the server.
    for (let i = 0; i < 200 && !proxy.pool.member(serverId); i++) await new Promise((r) => setTimeout(r, 50))
    await waitFor(proxy.pool.member(serverId)!, (snap) => snap.matches('healthy') && snap.context.status.synced[product] === 1, { timeout: 30_000 })
    process.on('unhandledRejection', onUnhandled)
  }, 60_000)
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled)
    await tracker?.close()
    await proxy?.close()
    await server?.close()
    await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('faults S4 — crashes 0 in a bounded run', { timeout: sized(90_000, 900_000) }, async () => {
    const figures = new FaultFigures('faults-s4-fuzz', 'S4: fuzzed input to the NATS services, tracker doors, HTTP gateway and swarm codecs')
    const rnd = random()
    const rows: Record<string, string | number>[] = []
    const tally = (door: string, outcomes: Map<string, number>, crashes: number, ms: number): void => {
      rows.push({ door, inputs: PER_DOOR, crashes, seconds: Math.round(ms / 100) / 10, answers: [...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ') })
    }

    // NATS service endpoints: every input gets an answer (data or a service error with a 4xx code).
    const natsDoors: Array<[string, string, Record<string, unknown>]> = [
      ['repo revs', repoSubject(serverId, 'revs'), { product }],
      ['repo manifest', repoSubject(serverId, 'manifest'), { product, rev: 1 }],
      ['repo sha1s', repoSubject(serverId, 'sha1s'), { product, rev: 1 }],
      ['repo range', repoSubject(serverId, 'range'), { sha256, offset: 0, length: 4 }],
      ['proxy revs', proxySubject('revs'), { product }],
      ['proxy manifest', proxySubject('manifest'), { product, rev: 1 }],
      ['proxy assign', proxySubject('assign'), { product, rev: 1, exclude: [] }],
      ['proxy stats', proxySubject('stats'), {}],
      ['tracker announce', trackerSubject('announce', 'fuzzer'), { product, rev: 1, ip: '127.0.0.1', port: 9000, peerId: 'ab'.repeat(20), event: 'started' }],
      ['tracker peers', trackerSubject('peers', 'fuzzer'), { product, rev: 1, limit: 10 }],
    ]
    for (const [door, subject, valid] of natsDoors) {
      const started = performance.now()
      const outcomes = new Map<string, number>()
      let crashes = 0
      for (let i = 0; i < PER_DOOR; i++) {
        const payload = requestBytes(rnd, valid)
        const outcome = await nc.request(subject, payload, { timeout: REPLY_MS }).then(
          (m) => m.headers?.get('Nats-Service-Error-Code') || 'ok',
          (err: Error) => (/max.?payload/i.test(err.message) ? 'too big for NATS' : `no answer (${err.name})`),
        )
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
        // 503 is a designed answer (no server holds it); 500 is an error nobody expected.
        if (outcome.startsWith('no answer') || outcome === '500') {
          crashes++
          figures.fail(`${door}: ${outcome} to ${payload.subarray(0, 80).toString('latin1')}`)
        }
      }
      // The door still answers a valid request.
      const after = await nc.request(subject, JSON.stringify(valid), { timeout: REPLY_MS }).then((m) => m.headers?.get('Nats-Service-Error-Code') ?? 'ok', () => 'no answer')
      if (after !== 'ok') {
        crashes++
        figures.fail(`${door}: a valid request afterwards got ${after}`)
      }
      figures.runs += PER_DOOR
      tally(`NATS ${door}`, outcomes, crashes, performance.now() - started)
    }

    // HTTP doors over TCP: any bytes in the request path; every answer a status below 500.
    const httpDoors: Array<[string, string, string[]]> = [
      ['tracker HTTP', tracker.httpUrl, ['/announce?info_hash=%01%02&peer_id=x&port=1', '/scrape?info_hash=%01', `/v1/products/${product}/peers?rev=1&limit=5`]],
      ['proxy HTTP gateway', proxy.httpUrl!, [`/v1/products/${product}/revs/1/files/a.txt`, `/v1/products/${product}/revs`, `/dav/${product}/1/`]],
    ]
    for (const [door, url, valid] of httpDoors) {
      const started = performance.now()
      const outcomes = new Map<string, number>()
      let crashes = 0
      for (let i = 0; i < PER_DOOR; i++) {
        const path = mutatedPath(rnd, valid)
        const status = await rawHttp(url, path)
        const key = status === 0 ? 'no answer' : String(status)
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
        // As on NATS: 503 is a designed answer (no server holds that product); other 5xx are not.
        if (status === 0 || (status >= 500 && status !== 503)) {
          crashes++
          figures.fail(`${door}: ${key} to ${path.subarray(0, 80).toString('latin1')}`)
        }
      }
      const after = await rawHttp(url, Buffer.from(valid[0]!))
      if (after !== 200) {
        crashes++
        figures.fail(`${door}: a valid request afterwards got ${after}`)
      }
      figures.runs += PER_DOOR
      tally(door, outcomes, crashes, performance.now() - started)
    }

    // The server's bulk port (issue 14 item 2) over TLS: fuzzed paths, tickets, ranges and methods;
    // every answer a status below 500 (503 is its designed "busy"), and a valid range answered after.
    {
      const started = performance.now()
      const offer = JSON.parse(new TextDecoder().decode((await nc.request(repoSubject(serverId, 'bulk'), '{}', { timeout: REPLY_MS })).data)) as { url: string; ticket: string }
      const outcomes = new Map<string, number>()
      let crashes = 0
      const blobPath = `/v1/blobs/${sha256}`
      for (let i = 0; i < PER_DOOR; i++) {
        // A third of them on the blob's own path, so the ticket and the range are what is fuzzed.
        const path = rnd() < 0.33 ? Buffer.from(blobPath) : mutatedPath(rnd, [blobPath, '/v1/units'])
        const request = bulkRequest(rnd, path, offer.ticket)
        const status = await rawHttps(offer.url, request)
        const key = status === 0 ? 'no answer' : String(status)
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
        if (status === 0 || (status >= 500 && status !== 503)) {
          crashes++
          figures.fail(`bulk port: ${key} to ${request.subarray(0, 120).toString('latin1')}`)
        }
      }
      const valid = Buffer.from(`GET ${blobPath} HTTP/1.1\r\nhost: bulk\r\nauthorization: Bearer ${offer.ticket}\r\nrange: bytes=0-3\r\n\r\n`)
      const after = await rawHttps(offer.url, valid)
      if (after !== 206) {
        crashes++
        figures.fail(`bulk port: a valid range afterwards got ${after}`)
      }
      figures.runs += PER_DOOR
      tally('bulk port (TLS)', outcomes, crashes, performance.now() - started)
    }

    // The tracker's UDP door: random and mutated packets, then a proper connect is answered.
    {
      const started = performance.now()
      const probe = await UdpProbe.open(tracker.udpUrl)
      const cid = await probe.connect()
      const valid = [UdpProbe.connectPacket(1), UdpProbe.scrapePacket(cid, [bytes(rnd, 20)], 5)]
      const sock = createSocket('udp4')
      const { port } = new URL(tracker.udpUrl)
      for (let i = 0; i < PER_DOOR; i++) {
        const base = Buffer.from(pick(rnd, valid))
        for (let f = int(rnd, 6); f > 0; f--) base[int(rnd, base.length)] = int(rnd, 256)
        const packet = i % 3 === 0 ? bytes(rnd, int(rnd, 2_000)) : base.subarray(0, int(rnd, base.length + 1))
        await new Promise<void>((resolve) => sock.send(packet, Number(port), '127.0.0.1', () => resolve()))
      }
      sock.close()
      let crashes = 0
      const answer = await probe.request(UdpProbe.connectPacket(0xabcdef)).catch(() => undefined)
      if (!answer || answer.readUInt32BE(4) !== 0xabcdef) {
        crashes++
        figures.fail('tracker UDP: no answer to a connect after the storm')
      }
      probe.close()
      figures.runs += PER_DOOR
      tally('tracker UDP', new Map([['connect answered afterwards', crashes ? 0 : 1]]), crashes, performance.now() - started)
    }

    // Swarm codecs, in-process: a decoder returns or throws its own error, nothing else.
    const sha = bytes(rnd, 32)
    const codecs: Array<[string, Uint8Array[], (b: Uint8Array) => unknown, new (...a: never[]) => Error]> = [
      ['piece codec', [
        toBytes(encoders.have, { product, rev: 7, reset: true, hashes: [sha] }), toBytes(encoders.request, { id: 9, sha256: sha, offset: 0, length: 1 << 20 }),
        toBytes(encoders.data, { id: 9, bytes: Buffer.from('piece') }), toBytes(encoders.havePiece, { sha256: sha, pieceSize: 1 << 20, index: 3 }),
      ], (b) => { for (const d of Object.values(decoders)) { try { d(b) } catch (e) { if (!(e instanceof PieceDecodeError)) throw e } } }, PieceDecodeError],
      ['statements codec', [
        statementBytes(statementEncoders.offer, { entries: [{ kind: StatementKind.root, product: '', number: 3, hash: sha }] }),
        statementBytes(statementEncoders.want, { hashes: [sha] }), statementBytes(statementEncoders.doc, { kind: StatementKind.fresh, bytes: Buffer.from('{}') }),
        statementBytes(statementEncoders.wantRoots, { from: 4 }),
      ], (b) => { for (const d of Object.values(statementDecoders)) { try { (d as (x: Uint8Array) => unknown)(b) } catch (e) { if (!(e instanceof StatementDecodeError)) throw e } } }, StatementDecodeError],
    ]
    for (const [door, valid, decodeAll] of codecs) {
      const started = performance.now()
      let crashes = 0
      const n = PER_DOOR * 10
      for (let i = 0; i < n; i++) {
        const base = Buffer.from(pick(rnd, valid))
        for (let f = int(rnd, 6); f > 0; f--) base[int(rnd, base.length)] = int(rnd, 256)
        const input = i % 4 === 0 ? bytes(rnd, int(rnd, 600)) : rnd() < 0.5 ? base.subarray(0, int(rnd, base.length + 1)) : Buffer.concat([base, bytes(rnd, int(rnd, 40))])
        try {
          decodeAll(input)
        } catch (err) {
          crashes++
          figures.fail(`${door}: ${String(err)} on ${input.toString('hex').slice(0, 80)}`)
        }
      }
      figures.runs += n
      rows.push({ door, inputs: n, crashes, seconds: Math.round((performance.now() - started) / 100) / 10, answers: 'decoded or refused with the codec\'s own error' })
    }

    const crashes = rows.reduce((s, r) => s + Number(r.crashes), 0) + unhandled.length
    for (const u of unhandled) figures.fail(`unhandled rejection: ${String(u)}`)
    const goals = await figures.finish({
      parameters: { perDoor: PER_DOOR, replyTimeoutMs: REPLY_MS, natsNodes: 1 },
      rows,
      goals: [zero('crashes', crashes, `in ${figures.runs} inputs (${unhandled.length} unhandled rejections)`)],
      notes: ['NATS answers are the Nats-Service-Error-Code of the reply (400 bad request, 404 not found, 503 no server) or ok; HTTP answers are status codes'],
    })
    expect(missed(goals)).toEqual([])
  })
})
