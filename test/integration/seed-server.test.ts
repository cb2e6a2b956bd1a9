// R-SERVER: a repository server is a seed peer. Real NATS cluster, real local DHT, 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type Heartbeat, type RepoServer } from '../../actors/repo-server/index.ts'
import { HeartbeatSchema } from '../../infra/nats/heartbeat.ts'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { serverHeartbeat } from '../../infra/nats/names.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { PieceSession, type RemoteHave } from '../../infra/swarm/piece-protocol.ts'
import { topicFor } from '../../infra/swarm/transport.ts'
import { clusterInfo, newProduct, tempDir, testConnection } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'
import { makeNode, nextSynced, type Node } from './swarm-fixtures.ts'

const MiB = 1 << 20

/** A client node: one piece session (a pure downloader) per connection, by peer key. */
function clientNode(extra: Parameters<typeof makeNode>[1] = {}): Node & { sessions: Map<string, PieceSession> } {
  const sessions = new Map<string, PieceSession>()
  const node = makeNode((stream, info) => sessions.set(info.peer, new PieceSession(stream)), extra)
  return Object.assign(node, { sessions })
}

/** Resolves once the peer has announced every hash in `hashes` (whole blobs). */
function announced(session: PieceSession, hashes: string[]): Promise<void> {
  if (hashes.every((h) => session.peerHas(h))) return Promise.resolve()
  return new Promise((resolve) => {
    const on = (_: RemoteHave): void => {
      if (!hashes.every((h) => session.peerHas(h))) return
      session.off('have', on)
      resolve()
    }
    session.on('have', on)
  })
}


async function nextHeartbeat(nc: NatsConnection, id: string): Promise<Heartbeat> {
  const sub = nc.subscribe(serverHeartbeat(id), { max: 1 })
  // The wire format is the schema every reader parses (proxy, publisher feed, daemon).
  for await (const msg of sub) return HeartbeatSchema.parse(msg.json())
  throw new Error(`no heartbeat from server ${id}`)
}

describe('repository server as a seed', () => {
  let nc: NatsConnection
  let dir: { path: string; cleanup: () => Promise<void> }
  let server: RepoServer
  let trustFile: string
  const nodes: Node[] = []
  const key = generatePublisherKey()
  const product = newProduct()
  const big = randomContent(2 * MiB + 4321)
  const bigSha = sha256Hex(big)
  // Unique content: the suite's tests share one object store, where equal blobs are stored once.
  const small = `seed test ${product}\n`

  beforeAll(async () => {
    nc = await testConnection()
    dir = await tempDir('upswarm-seed-')
    await writeTree(join(dir.path, 'r1'), { 'a.txt': small, 'big.bin': big })
    trustFile = join(dir.path, 'trust.json')
    await publish({ nc, src: join(dir.path, 'r1'), product, key, skipFeed: true, trust: trustFile })
    server = await startRepoServer({ nc, id: `seed${process.pid}`, dataDir: join(dir.path, 'server'), bootstrap: parseBootstrap(clusterInfo().dhtBootstrap), trust: await new TrustStore(trustFile).ready() })
    await nextSynced(server, product, 1)
    await server.seed.flushed() // the product's and r1's topics are announced
  })
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.transport.close()))
    await server?.close()
    await nc?.close()
    await dir?.cleanup()
  })

  it('repository server — seeds a synced blob to a piece client that finds it on the revision topic of the DHT', async () => {
    const client = clientNode({ bootstrap: parseBootstrap(clusterInfo().dhtBootstrap) })
    nodes.push(client)
    await client.transport.join(topicFor(product, 1), { server: false, client: true })
    await client.transport.flush()
    const { info } = await client.nextConnection()
    expect(info.via).toBe('dht')
    expect(info.peer).toBe(server.seed.info().publicKey)
    const session = client.sessions.get(info.peer)!
    expect(await session.opened()).toBe(true)
    await announced(session, [bigSha, sha256Hex(small)])
    expect(session.remote).toMatchObject({ product: '', rev: 0 }) // a server seeds every revision
    const piece = await session.request(bigSha, MiB, MiB)
    expect(piece.equals(big.subarray(MiB, 2 * MiB))).toBe(true)
    const tail = await session.request(bigSha, 2 * MiB, MiB)
    expect(tail.equals(big.subarray(2 * MiB))).toBe(true) // short at the end of the blob
    await expect(session.request('ab'.repeat(32), 0, 10)).rejects.toMatchObject({ details: { reason: 'not-found' } })
  })

  it('repository server — finds clients on the product topic too', async () => {
    const client = clientNode({ bootstrap: parseBootstrap(clusterInfo().dhtBootstrap) })
    nodes.push(client)
    await client.transport.join(topicFor(product), { server: false, client: true })
    await client.transport.flush()
    const { info } = await client.nextConnection()
    expect(info.peer).toBe(server.seed.info().publicKey)
    const session = client.sessions.get(info.peer)!
    await announced(session, [bigSha])
    expect((await session.request(bigSha, 0, 4096)).equals(big.subarray(0, 4096))).toBe(true)
  })

  it('repository server — its heartbeat matches the heartbeat schema and gives its swarm address; a direct dial gets pieces and the blobs of a later release', async () => {
    const hb = await nextHeartbeat(nc, server.id)
    expect(hb.swarm).toMatchObject({ publicKey: server.seed.info().publicKey, host: '127.0.0.1' })
    expect(hb.swarm.port).toBeGreaterThan(0)
    const client = clientNode()
    nodes.push(client)
    const info = await client.transport.dial(hb.swarm.host, hb.swarm.port, { remotePublicKey: Buffer.from(hb.swarm.publicKey, 'hex') })
    expect(info.via).toBe('tcp')
    const session = client.sessions.get(info.peer)!
    await announced(session, [bigSha])
    expect((await session.request(bigSha, 17, 1000)).equals(big.subarray(17, 1017))).toBe(true)

    // A release synced while the peer is connected is announced to it at once.
    const added = randomContent(300_000)
    await writeTree(join(dir.path, 'r2'), { 'a.txt': small, 'big.bin': big, 'added.bin': added })
    const synced = nextSynced(server, product, 2)
    await publish({ nc, src: join(dir.path, 'r2'), product, key, skipFeed: true, trust: trustFile })
    await synced
    await announced(session, [sha256Hex(added)])
    expect((await session.request(sha256Hex(added), 0, 300_000)).equals(added)).toBe(true)
    expect(session.peerHas(bigSha)).toBe(true) // added to, not replaced
  })

  it('repository server — advertises --swarm-advertise in its heartbeat; a wildcard bind without it is refused before anything listens', async () => {
    const other = await startRepoServer({ nc, id: `adv${process.pid}`, dataDir: join(dir.path, 'adv'), swarmAdvertise: 'localhost', trust: await new TrustStore(trustFile).ready() })
    try {
      const hb = await nextHeartbeat(nc, other.id)
      expect(hb.swarm.host).toBe('localhost')
      expect(other.seed.transport.tcpAddress?.host).toBe('127.0.0.1')
    } finally {
      await other.close()
    }
    // Refused by the check itself: nothing binds 0.0.0.0 in tests.
    await expect(startRepoServer({ nc, id: `wild${process.pid}`, dataDir: join(dir.path, 'wild'), swarmHost: '0.0.0.0', trust: await new TrustStore(trustFile).ready() }))
      .rejects.toThrow(/--swarm-advertise/)
  })
})
