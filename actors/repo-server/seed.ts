// R-SERVER "every version's complete tree on a server is a seed peer": the server's side of the
// swarm (ARCHITECTURE §5). A SwarmTransport whose every connection gets a piece session served
// from the verified local blob store, announcing every blob the server holds, and the release
// feed of every publisher key the server pinned (R-DHT-2), replicated on the same connection.
// With a DHT bootstrap the server also announces itself on the topic of each product and of
// each synced revision (server mode only: clients find it, it never looks for them).
import { join } from 'node:path'
import b4a from 'b4a'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import { blobsOf } from '../../infra/release/manifest.ts'
import { DEFAULT_MAX_REMOTE_BLOBS, PieceSession } from '../../infra/swarm/piece-protocol.ts'
import { openFeed, type ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import type { SwarmIdentity } from '../../infra/swarm/fleet.ts'
import type { TokenBucket } from '../../infra/swarm/token-bucket.ts'
import { SwarmTransport, loadOrCreateKeyPair, topicFor, type HostPort } from '../../infra/swarm/transport.ts'
import type { RepoStore } from './repo-store.ts'

import type { SwarmInfo } from './heartbeat.ts'

export type { SwarmInfo } from './heartbeat.ts'

export interface SeedOptions {
  store: RepoStore
  dataDir: string
  host: string
  port: number
  /** The address clients dial (the heartbeat's); default: `host`. Required when `host` is a wildcard. */
  advertiseHost?: string
  /** HyperDHT bootstrap; without it the server is reachable by direct dial only. */
  bootstrap?: HostPort[]
  /** Shared with the NATS range replies: one limit for everything the server uploads. */
  uploadBucket: TokenBucket
  log: (msg: string) => void
  /** The server's fleet identity (`up` / `creds issue --role server`): its Noise key carries a certificate, so private clients admit it. */
  swarmIdentity?: SwarmIdentity
}

export interface Seed {
  readonly transport: SwarmTransport
  info(): SwarmInfo
  /** Opens the release feed of a publisher key (once) and replicates it on every connection. */
  seedFeed(publisherKey: string): Promise<void>
  feed(publisherKey: string): ReleaseFeed | undefined
  /** A release was synced: announce its blobs to connected peers and join its topics. */
  synced(product: string, rev: number): void
  /** Resolves once every topic joined so far is announced on the DHT. */
  flushed(): Promise<void>
  close(): Promise<void>
}

export const NODE_KEY_FILE = 'node-key.json'
export const FEEDS_DIR = 'feeds'

export async function startSeed(opts: SeedOptions): Promise<Seed> {
  const { store, log } = opts
  const keyPair = opts.swarmIdentity?.keyPair ?? await loadOrCreateKeyPair(join(opts.dataDir, NODE_KEY_FILE))
  /** Open piece sessions that got the full `have` list. */
  const sessions = new Set<PieceSession>()
  const feeds = new Map<string, ReleaseFeed>()
  const opening = new Map<string, Promise<void>>()
  const topics = new Set<string>()
  const held = new Set<string>()
  let joins: Promise<void> = Promise.resolve()
  let bytesUp = 0
  let closing = false

  // Reads stop at the blob's end (an offset beyond it reads 0 bytes); null: not held.
  const serve = (sha256: string, offset: number, length: number): Promise<Uint8Array | null> =>
    store.blobs.readRangeIfPresent(sha256, offset, length)

  const onConnection = (stream: NoiseSecretStream): void => {
    // Synchronously, before the stream is read (transport.ts): the feeds, then the pieces.
    for (const feed of feeds.values()) feed.replicate(stream)
    const session = new PieceSession(stream, { serve, uploadBucket: opts.uploadBucket })
    session.on('upload', (_sha, bytes) => { bytesUp += bytes })
    session.on('protocol-error', (err) => log(`swarm: ${err.message}`))
    session.on('serve-error', (err, sha) => log(`swarm: cannot serve blob ${sha}: ${errorMessage(err)}`))
    session.on('close', () => sessions.delete(session))
    // Announced once the peer's piece channel is open: a client that runs none never gets the list.
    void session.opened().then((ok) => {
      if (!ok || session.closed) return
      session.announceHave(held, { reset: true })
      sessions.add(session)
    })
  }

  const wildcard = opts.host === '0.0.0.0' || opts.host === '::'
  if (wildcard && !opts.advertiseHost) {
    throw new UpswarmError('UPSWARM_E_CONFIG',
      `the swarm listener binds ${opts.host} (every interface): say which address clients should dial with --swarm-advertise HOST`)
  }
  const transport = new SwarmTransport({
    keyPair,
    onConnection,
    fleet: { identity: opts.swarmIdentity ?? null, admit: 'anyone' },
    ...(opts.bootstrap && opts.bootstrap.length > 0 ? { bootstrap: opts.bootstrap, dhtHost: opts.host } : {}),
  })
  transport.on('refused', (peer, reason) => log(`swarm: refused ${peer ?? 'a connection'}: ${reason}`))
  const address = await transport.listen(opts.host, opts.port)

  /**
   * Adds a release's blobs to what the server announces. The receivers cap a peer's list
   * (DEFAULT_MAX_REMOTE_BLOBS); blobs past the cap are still served when asked for.
   */
  const hold = (product: string, rev: number): string[] => {
    const found = store.release(product, rev)
    if (!found) return []
    const added: string[] = []
    for (const sha of blobsOf(found.release.manifest).keys()) {
      if (held.size >= DEFAULT_MAX_REMOTE_BLOBS) break
      if (held.has(sha)) continue
      held.add(sha)
      added.push(sha)
    }
    return added
  }

  const announceTopic = (topic: Buffer): void => {
    const hex = b4a.toString(topic, 'hex')
    if (!opts.bootstrap?.length || topics.has(hex)) return
    topics.add(hex)
    joins = joins.then(() => transport.join(topic, { server: true, client: false }))
      .catch((err: unknown) => { if (!closing) log(`swarm: cannot announce topic ${hex} on the DHT: ${errorMessage(err)}`) })
  }

  const joinRelease = (product: string, rev: number): void => {
    announceTopic(topicFor(product))
    announceTopic(topicFor(product, rev))
  }

  // Newest revisions first, so that a capped list holds what clients are most likely to want.
  for (const product of store.products()) {
    for (const { rev } of store.revisions(product).reverse()) {
      hold(product, rev)
      joinRelease(product, rev)
    }
  }

  const seed: Seed = {
    transport,
    info: () => ({
      publicKey: b4a.toString(keyPair.publicKey, 'hex'),
      host: opts.advertiseHost ?? address.host,
      port: address.port,
      feeds: [...feeds.keys()],
      peers: transport.connections.size,
      bytesUp,
    }),
    seedFeed(publisherKey) {
      const pending = opening.get(publisherKey)
      if (pending) return pending
      const p = (async () => {
        const feed = await openFeed({ storageDir: join(opts.dataDir, FEEDS_DIR, publisherKey), publisherPublicKey: publisherKey })
        if (closing) return void (await feed.close())
        feed.on('rejected', (err) => log(`release feed ${publisherKey}: ${err.message}`))
        feed.on('conflict', (err) => log(`ALERT: ${err.message}`))
        feeds.set(publisherKey, feed)
        // Connections opened before the feed did get it now (Protomux pairs late channels).
        for (const { stream } of transport.connections.values()) feed.replicate(stream)
      })().catch((err: unknown) => {
        opening.delete(publisherKey)
        log(`cannot seed the release feed of publisher ${publisherKey}: ${errorMessage(err)}`)
      })
      opening.set(publisherKey, p)
      return p
    },
    feed: (publisherKey) => feeds.get(publisherKey),
    synced(product, rev) {
      const added = hold(product, rev)
      if (added.length > 0) for (const s of sessions) s.announceHave(added, { reset: false })
      joinRelease(product, rev)
    },
    flushed: async () => {
      // Joins queued while waiting are waited for too.
      for (let seen: Promise<void> | null = null; seen !== joins;) await (seen = joins)
    },
    async close() {
      closing = true
      await transport.close()
      await Promise.allSettled([...opening.values()])
      await Promise.all([...feeds.values()].map((f) => f.close().catch(() => {})))
    },
  }
  for (const product of store.products()) {
    const key = store.keyOf(product)
    if (key) void seed.seedFeed(key)
  }
  return seed
}
