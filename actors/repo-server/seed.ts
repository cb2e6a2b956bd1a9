// R-SERVER "every version's complete tree on a server is a seed peer": the server's side of the
// swarm (ARCHITECTURE §5). A SwarmTransport whose every connection gets a piece session served
// from the verified local blob store, announcing every blob the server holds, and the release
// feed of every publisher key the server pinned (R-DHT-2), replicated on the same connection.
// With a DHT bootstrap the server also announces itself on the topic of each product and of
// each synced revision (server mode only: clients find it, it never looks for them).
//
// Private products (issue 10 item 9, docs/protocol.md §5 "Which products are private"): the trust
// file marks them. Their topics are the fleet's private ones; their blobs and their publisher's
// release feed go only to connections whose peer proved membership (ConnectionInfo.member). Pieces
// name a hash, not a product, so the server indexes every blob of every synced release by the
// products that contain it: a blob goes to anyone only when some public product contains it.
import { join } from 'node:path'
import b4a from 'b4a'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import { blobsOf } from '../../infra/release/manifest.ts'
import { DEFAULT_MAX_REMOTE_BLOBS, PieceSession } from '../../infra/swarm/piece-protocol.ts'
import { openFeed, type ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import { productTopic, type SwarmIdentity } from '../../infra/swarm/fleet.ts'
import type { Trust, TrustStore } from '../../infra/release/trust.ts'
import type { TokenBucket } from '../../infra/swarm/token-bucket.ts'
import { SwarmTransport, loadOrCreateKeyPair, type ConnectionInfo, type HostPort } from '../../infra/swarm/transport.ts'
import type { RepoStore } from './repo-store.ts'

import type { SwarmInfo } from '../../infra/nats/heartbeat.ts'

export type { SwarmInfo } from '../../infra/nats/heartbeat.ts'

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
  /** Which products are private (`private: true`, trust file format 2); re-read as it changes. */
  trust: TrustStore
}

export interface Seed {
  readonly transport: SwarmTransport
  info(): SwarmInfo
  /** Opens the release feed of a publisher key (once) and replicates it on every connection. */
  seedFeed(publisherKey: string): Promise<void>
  feed(publisherKey: string): ReleaseFeed | undefined
  /** A release was synced: announce its blobs to connected peers and join its topics (after re-reading which products are private). */
  synced(product: string, rev: number): void
  /** Issue 11 item 8: blobs a prune removed are no longer announced, and the pruned revisions' topics are left. */
  pruned(ranges: Record<string, number>, removed: string[]): void
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
  /** Piece sessions by whether their peer is a fleet member. */
  const members = new WeakMap<PieceSession, boolean>()
  /** Every blob of every synced release → the products whose releases contain it (uncapped). */
  const owners = new Map<string, Set<string>>()
  /**
   * The trust file's private products and the publisher keys of those products, as last read;
   * null: the file could not be read, and then every product counts as private (fail closed).
   */
  let privacy: { products: Set<string>; keys: Set<string> } | null = null
  const unservable = new Set<string>()
  let joins: Promise<void> = Promise.resolve()
  let bytesUp = 0
  let closing = false

  const isPrivate = (product: string): boolean => privacy === null || privacy.products.has(product)
  const isPrivateFeed = (publisherKey: string): boolean => privacy === null || privacy.keys.has(publisherKey)
  /** A blob goes to a non-member only when a public product's synced release contains it. */
  const openToAnyone = (sha256: string): boolean => [...owners.get(sha256) ?? []].some((p) => !isPrivate(p))

  const readPrivacy = (trust: Trust): { products: Set<string>; keys: Set<string> } => {
    const products = new Set<string>()
    const keys = new Set<string>()
    for (const [product, entry] of Object.entries(trust.products)) {
      if (entry.private !== true) continue
      products.add(product)
      for (const k of entry.publisherKeys) keys.add(k)
    }
    return { products, keys }
  }

  /** Re-reads the trust file (a stat when unchanged); moves products whose privacy changed to their new topics. */
  const refresh = async (): Promise<void> => {
    const before = privacy
    try {
      privacy = readPrivacy(await opts.trust.snapshot())
    } catch (err) {
      if (privacy !== null) log(`swarm: cannot read trust file ${opts.trust.file}, serving every product to fleet members only until it reads again: ${errorMessage(err)}`)
      privacy = null
    }
    if (before === null || privacy === null) return
    for (const product of store.products()) {
      if (before.products.has(product) === privacy.products.has(product)) continue
      for (const { rev } of store.revisions(product)) leaveRelease(product, rev)
      for (const { rev } of store.revisions(product)) joinRelease(product, rev)
    }
  }

  // Reads stop at the blob's end (an offset beyond it reads 0 bytes); null: not held.
  const serve = (sha256: string, offset: number, length: number): Promise<Uint8Array | null> =>
    store.blobs.readRangeIfPresent(sha256, offset, length)
  // A non-member is told not-found for a blob only private products contain (the file is re-read first).
  const serveOutsider = async (sha256: string, offset: number, length: number): Promise<Uint8Array | null> => {
    await refresh()
    return openToAnyone(sha256) ? serve(sha256, offset, length) : null
  }

  const onConnection = (stream: NoiseSecretStream, info: ConnectionInfo): void => {
    const member = info.member !== null
    // Synchronously, before the stream is read (transport.ts): the feeds, then the pieces.
    for (const [key, feed] of feeds) if (member || !isPrivateFeed(key)) feed.replicate(stream)
    const session = new PieceSession(stream, { serve: member ? serve : serveOutsider, uploadBucket: opts.uploadBucket })
    members.set(session, member)
    session.on('upload', (_sha, bytes) => { bytesUp += bytes })
    session.on('protocol-error', (err) => log(`swarm: ${err.message}`))
    session.on('serve-error', (err, sha) => log(`swarm: cannot serve blob ${sha}: ${errorMessage(err)}`))
    session.on('close', () => sessions.delete(session))
    // Announced once the peer's piece channel is open: a client that runs none never gets the list.
    void session.opened().then((ok) => {
      if (!ok || session.closed) return
      session.announceHave(member ? held : [...held].filter(openToAnyone), { reset: true })
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
  await refresh()
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
      const of = owners.get(sha) ?? new Set<string>()
      owners.set(sha, of.add(product))
      if (held.size >= DEFAULT_MAX_REMOTE_BLOBS) continue
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

  /** The topics of a release: the fleet's private ones for a private product; none when a private product cannot be served. */
  const releaseTopics = (product: string, rev: number): Buffer[] => {
    if (!isPrivate(product)) return [productTopic(product), productTopic(product, rev)]
    const secret = opts.swarmIdentity?.topicSecret
    if (secret) return [productTopic(product, undefined, secret), productTopic(product, rev, secret)]
    if (!unservable.has(product)) {
      unservable.add(product)
      log(`swarm: product ${product} is private (trust file ${opts.trust.file}) but this server has no swarm identity ` +
        '(--swarm-identity FILE from `upswarm creds issue --role server`): not announcing it, and serving its blobs and release feed to nobody on the swarm')
    }
    return []
  }

  const joinRelease = (product: string, rev: number): void => {
    for (const topic of releaseTopics(product, rev)) announceTopic(topic)
  }

  /** Leaves every topic a release may have been announced on (public and private). */
  const leaveRelease = (product: string, rev: number): void => {
    const secret = opts.swarmIdentity?.topicSecret
    const all = [productTopic(product), productTopic(product, rev), ...(secret ? [productTopic(product, undefined, secret), productTopic(product, rev, secret)] : [])]
    for (const topic of all) {
      const hex = b4a.toString(topic, 'hex')
      if (!topics.delete(hex)) continue
      joins = joins.then(() => transport.leave(topic))
        .catch((err: unknown) => { if (!closing) log(`swarm: cannot leave topic ${hex} on the DHT: ${errorMessage(err)}`) })
    }
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
        await refresh()
        if (closing) return void (await feed.close())
        feeds.set(publisherKey, feed)
        // Connections opened before the feed did get it now (Protomux pairs late channels),
        // members only when the key signs a private product.
        for (const { stream, info } of transport.connections.values()) {
          if (info.member !== null || !isPrivateFeed(publisherKey)) feed.replicate(stream)
        }
      })().catch((err: unknown) => {
        opening.delete(publisherKey)
        log(`cannot seed the release feed of publisher ${publisherKey}: ${errorMessage(err)}`)
      })
      opening.set(publisherKey, p)
      return p
    },
    feed: (publisherKey) => feeds.get(publisherKey),
    synced(product, rev) {
      // Issue 11 item 8: a pruned revision was synced for its manifest only; it has nothing to seed.
      if (store.isPruned(product, rev)) return
      // After a look at the trust file: `publish --private` marks a product before its first release.
      joins = joins.then(refresh).then(() => {
        if (closing) return
        const added = hold(product, rev)
        const open = added.filter(openToAnyone)
        for (const s of sessions) {
          const list = members.get(s) ? added : open
          if (list.length > 0) s.announceHave(list, { reset: false })
        }
        joinRelease(product, rev)
      }).catch((err: unknown) => log(`swarm: cannot seed r${rev} of ${product}: ${errorMessage(err)}`))
    },
    pruned(ranges, removed) {
      joins = joins.then(() => {
        if (closing) return
        for (const sha of removed) held.delete(sha)
        if (removed.length > 0) for (const s of sessions) s.announceHave(members.get(s) ? held : [...held].filter(openToAnyone), { reset: true })
        const secret = opts.swarmIdentity?.topicSecret
        for (const [product, through] of Object.entries(ranges)) {
          for (let rev = 1; rev <= through; rev++) {
            for (const topic of [productTopic(product, rev), ...(secret ? [productTopic(product, rev, secret)] : [])]) {
              const hex = b4a.toString(topic, 'hex')
              if (topics.delete(hex)) joins = joins.then(() => transport.leave(topic)).catch((err: unknown) => { if (!closing) log(`swarm: cannot leave topic ${hex} on the DHT: ${errorMessage(err)}`) })
            }
          }
        }
      })
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
