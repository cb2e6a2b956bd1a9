// Issue 10 item 9 at the repository server: a product the trust file marks private is announced
// only on the fleet's secret topics, and its blobs and release feed go only to peers whose Noise
// key carries a fleet certificate; a public product on the same server stays open to anyone.
// Real NATS cluster, the suite's local DHT, real sockets on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import DHT from 'hyperdht'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { Authority } from '../../infra/auth/authority.ts'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { sha256Hex } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore, loadTrust } from '../../infra/release/trust.ts'
import { loadSwarmIdentity, productTopic, type SwarmIdentity } from '../../infra/swarm/fleet.ts'
import { PieceSession, type RemoteHave } from '../../infra/swarm/piece-protocol.ts'
import { openFeed, type ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import { clusterInfo, newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'
import { makeNode, nextSynced, type Node } from './swarm-fixtures.ts'

const SERVER_WAIT_MS = 40_000


/** The Noise keys announced on `topic` (one full DHT lookup). */
async function announcers(dht: DHT, topic: Buffer): Promise<string[]> {
  const keys = new Set<string>()
  for await (const reply of dht.lookup(topic)) for (const p of reply.peers) keys.add(p.publicKey.toString('hex'))
  return [...keys]
}

/** Resolves with the peer's `have` list once it holds `sha` (whole blob). */
function haveWith(session: PieceSession, sha: string): Promise<void> {
  if (session.peerHas(sha)) return Promise.resolve()
  return new Promise((resolve) => {
    const on = (_: RemoteHave): void => {
      if (!session.peerHas(sha)) return
      session.off('have', on)
      resolve()
    }
    session.on('have', on)
  })
}

describe('repository server — private products', () => {
  let nc: NatsConnection
  let ownCluster: NatsCluster | undefined
  let dir: { path: string; cleanup: () => Promise<void> }
  let server: RepoServer
  let dht: DHT
  let serverId: SwarmIdentity
  let memberId: SwarmIdentity
  /** A second member: the server keeps one connection per remote key, and the first member's stays open. */
  let otherMemberId: SwarmIdentity
  let trustFile: string
  const cleanups: (() => Promise<void>)[] = []
  const privKey = generatePublisherKey()
  const pubKey = generatePublisherKey()
  const priv = newProduct()
  const pub = newProduct()
  // Unique content: the suite's tests share one object store, where equal blobs are stored once.
  const privOnly = randomContent(200_000)
  const pubOnly = randomContent(150_000)
  const shared = randomContent(100_000)

  /** A peer with a piece session and a reader of both release feeds on its connection to the server. */
  async function connectPeer(identity: SwarmIdentity | null): Promise<{ session: PieceSession; privFeed: ReleaseFeed; pubFeed: ReleaseFeed; node: Node; member: string | null }> {
    const storage = await tempDir('upswarm-privsrv-reader-')
    const privFeed = await openFeed({ storageDir: join(storage.path, 'priv'), publisherPublicKey: privKey.publicKey })
    const pubFeed = await openFeed({ storageDir: join(storage.path, 'pub'), publisherPublicKey: pubKey.publicKey })
    let session!: PieceSession
    const node = makeNode((stream) => {
      privFeed.replicate(stream)
      pubFeed.replicate(stream)
      session = new PieceSession(stream)
    }, identity ? { keyPair: identity.keyPair, fleet: { identity, admit: 'anyone' } } : {})
    cleanups.push(() => node.transport.close(), () => privFeed.close(), () => pubFeed.close(), storage.cleanup)
    const { host, port, publicKey } = server.heartbeat().swarm
    const info = await node.transport.dial(host, port, { remotePublicKey: Buffer.from(publicKey, 'hex') })
    expect(await session.opened()).toBe(true)
    return { session, privFeed, pubFeed, node, member: info.member }
  }

  /** Resolves once the feed holds `count` releases of `product`. */
  const releasesOf = (feed: ReleaseFeed, product: string, count: number): Promise<void> => new Promise((resolve) => {
    if (feed.releases(product).length >= count) return resolve()
    const on = (): void => {
      if (feed.releases(product).length < count) return
      feed.off('release', on)
      resolve()
    }
    feed.on('release', on)
  })

  beforeAll(async () => {
    dir = await tempDir('upswarm-privsrv-')
    // A cluster of its own: the publisher pushes each feed to the first server it hears, which on
    // the suite's cluster may be another test's server that does not hold these products.
    const own = await startOwnCluster(join(dir.path, 'cluster'))
    ownCluster = own.cluster
    nc = await own.connect('private-server')
    trustFile = join(dir.path, 'trust.json')
    const authority = await Authority.open(join(dir.path, 'auth'))
    serverId = await loadSwarmIdentity((await authority.issueSwarmIdentity({ kind: 'server', name: 'privsrv-1' })).file)
    memberId = await loadSwarmIdentity((await authority.issueSwarmIdentity({ kind: 'client', name: 'laptop' })).file)
    otherMemberId = await loadSwarmIdentity((await authority.issueSwarmIdentity({ kind: 'client', name: 'desktop' })).file)
    const publisherId = await loadSwarmIdentity((await authority.issueSwarmIdentity({ kind: 'client', name: 'publisher' })).file)

    await writeTree(join(dir.path, 'priv1'), { 'secret.bin': privOnly, 'shared.bin': shared })
    await writeTree(join(dir.path, 'pub1'), { 'open.bin': pubOnly, 'shared.bin': shared })
    await publish({ nc, src: join(dir.path, 'priv1'), product: priv, key: privKey, skipFeed: true, trust: trustFile, private: true })
    await publish({ nc, src: join(dir.path, 'pub1'), product: pub, key: pubKey, skipFeed: true, trust: trustFile })
    expect((await loadTrust(trustFile)).products[priv]).toEqual({ publisherKeys: [privKey.publicKey], private: true })

    const bootstrap = parseBootstrap(clusterInfo().dhtBootstrap)
    server = await startRepoServer({ nc, id: `privsrv${process.pid}`, dataDir: join(dir.path, 'server'), bootstrap, swarmIdentity: serverId, trust: await new TrustStore(trustFile).ready() })
    await Promise.all([nextSynced(server, priv, 1), nextSynced(server, pub, 1)])

    // r2 of both through the release feed: the private key's feed takes a fleet identity to push.
    await writeTree(join(dir.path, 'priv2'), { 'secret.bin': privOnly, 'shared.bin': shared, 'v.txt': `2 ${priv}` })
    await writeTree(join(dir.path, 'pub2'), { 'open.bin': pubOnly, 'shared.bin': shared, 'v.txt': `2 ${pub}` })
    const synced2 = Promise.all([nextSynced(server, priv, 2), nextSynced(server, pub, 2)])
    const [p2, q2] = await Promise.all([
      publish({ nc, src: join(dir.path, 'priv2'), product: priv, key: privKey, trust: trustFile, serverWaitMs: SERVER_WAIT_MS, swarmIdentity: publisherId }),
      publish({ nc, src: join(dir.path, 'pub2'), product: pub, key: pubKey, trust: trustFile, serverWaitMs: SERVER_WAIT_MS }),
    ])
    expect(p2.feed).toMatchObject({ appended: true })
    expect(q2.feed).toMatchObject({ appended: true })
    await synced2
    await server.seed.flushed()
    dht = new DHT({ bootstrap, host: '127.0.0.1' })
    await dht.ready()
  }, 120_000)
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c()
    await dht?.destroy()
    await server?.close()
    await nc?.close()
    await ownCluster?.stop()
    await dir?.cleanup()
  })

  it('private server — announces a private product only on the fleet\'s secret topics, a public one on the public topics', async () => {
    const me = server.seed.info().publicKey
    expect(await announcers(dht, productTopic(priv))).not.toContain(me)
    expect(await announcers(dht, productTopic(priv, 2))).not.toContain(me)
    expect(await announcers(dht, productTopic(priv, undefined, serverId.topicSecret))).toContain(me)
    expect(await announcers(dht, productTopic(priv, 2, serverId.topicSecret))).toContain(me)
    expect(await announcers(dht, productTopic(pub))).toContain(me)
    expect(await announcers(dht, productTopic(pub, 2))).toContain(me)
  })

  it('private server — an outsider gets the public product\'s blobs and feed, never the private product\'s blob nor its feed', async () => {
    const outsider = await connectPeer(null)
    expect(outsider.member).toBeNull()
    // The public feed arrives; the private key's feed was never replicated on this connection.
    await releasesOf(outsider.pubFeed, pub, 2)
    expect(outsider.pubFeed.releases(pub).map((e) => e.rev)).toEqual([1, 2])
    expect(outsider.privFeed.releases(priv)).toEqual([])
    expect(outsider.privFeed.remotesHolding(0)).toBe(0)
    // Blobs: the public ones (the shared one too) are announced and served; the private-only one neither.
    await haveWith(outsider.session, sha256Hex(pubOnly))
    expect(outsider.session.peerHas(sha256Hex(shared))).toBe(true)
    expect(outsider.session.peerHas(sha256Hex(privOnly))).toBe(false)
    expect((await outsider.session.request(sha256Hex(pubOnly), 0, pubOnly.length)).equals(pubOnly)).toBe(true)
    expect((await outsider.session.request(sha256Hex(shared), 0, shared.length)).equals(shared)).toBe(true)
    await expect(outsider.session.request(sha256Hex(privOnly), 0, 4096)).rejects.toMatchObject({ details: { reason: 'not-found' } })

    // A fleet member on the same server gets the private product's blob and feed.
    const member = await connectPeer(memberId)
    expect(member.member).toBe('privsrv-1')
    await haveWith(member.session, sha256Hex(privOnly))
    expect((await member.session.request(sha256Hex(privOnly), 0, privOnly.length)).equals(privOnly)).toBe(true)
    await releasesOf(member.privFeed, priv, 2)
    expect(member.privFeed.releases(priv).map((e) => e.rev)).toEqual([1, 2])
    await releasesOf(member.pubFeed, pub, 2)
  })

  it('private server — without a swarm identity it logs why and serves the private product to nobody, the public one to anyone', async () => {
    const logs: string[] = []
    const bare = await startRepoServer({ nc, id: `privbare${process.pid}`, dataDir: join(dir.path, 'bare'), bootstrap: parseBootstrap(clusterInfo().dhtBootstrap), trust: await new TrustStore(trustFile).ready(), log: (m) => logs.push(m) })
    try {
      await Promise.all([nextSynced(bare, priv, 2), nextSynced(bare, pub, 2)])
      await bare.seed.flushed()
      expect(logs.filter((m) => m.includes('is private'))).toEqual([expect.stringMatching(/is private .* but this server has no swarm identity .*--swarm-identity.*serving its blobs and release feed to nobody/)])
      const me = bare.seed.info().publicKey
      expect(await announcers(dht, productTopic(priv, 2))).not.toContain(me)
      expect(await announcers(dht, productTopic(pub, 2))).toContain(me)
      const sessions: PieceSession[] = []
      const node = makeNode((stream) => sessions.push(new PieceSession(stream)))
      cleanups.push(() => node.transport.close())
      const { host, port } = bare.heartbeat().swarm
      await node.transport.dial(host, port)
      const session = sessions[0]!
      await haveWith(session, sha256Hex(pubOnly))
      expect(session.peerHas(sha256Hex(privOnly))).toBe(false)
      await expect(session.request(sha256Hex(privOnly), 0, 4096)).rejects.toMatchObject({ details: { reason: 'not-found' } })
    } finally {
      await bare.close()
    }
  })

  it('private server — finds a member on the private topic of the DHT and serves it there', async () => {
    const sessions = new Map<string, PieceSession>()
    const node = makeNode((stream, info) => sessions.set(info.peer, new PieceSession(stream)), {
      keyPair: otherMemberId.keyPair, bootstrap: parseBootstrap(clusterInfo().dhtBootstrap), fleet: { identity: otherMemberId, admit: 'members' },
    })
    cleanups.push(() => node.transport.close())
    await node.transport.join(productTopic(priv, 2, otherMemberId.topicSecret), { server: false, client: true })
    const { info } = await node.nextConnection()
    expect(info).toMatchObject({ via: 'dht', peer: server.seed.info().publicKey, member: 'privsrv-1' })
    const session = sessions.get(info.peer)!
    await haveWith(session, sha256Hex(privOnly))
    expect((await session.request(sha256Hex(privOnly), 100, 1000)).equals(privOnly.subarray(100, 1100))).toBe(true)
  })
})
