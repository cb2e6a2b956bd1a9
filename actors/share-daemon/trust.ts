// The daemon's root of trust (issue 10 item 7, R-DHT-2): the working copy's TrustStore, passed to
// and from peers on the `upswarm/statements` channel, and the release feeds of the publish keys
// a rotation named. Roots and fresh statements a peer gives are verified by the store before they
// count; releases from the rotated keys' feeds count once the held root lets their key sign them.
import { join } from 'node:path'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { errorMessage } from '../../infra/errors.ts'
import { productKeys } from '../../infra/formats/root.ts'
import { TrustStore } from '../../infra/formats/trust-store.ts'
import { RolloutStore } from '../../infra/formats/rollout-store.ts'
import { ReleaseDocs } from '../../infra/formats/release-docs.ts'
import type { SignedRelease } from '../../infra/release/manifest.ts'
import { StreamReleases } from './stream-releases.ts'
import { trustedRelease } from '../../infra/release/release-trust.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import type { ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import { StatementsHolder } from '../../infra/swarm/statements.ts'
import type { ReleaseSource } from '../../infra/release/source.ts'

export interface TrustEvents {
  /** A peer passed on root `version`: a rotation or revocation reached this copy through the swarm. */
  'trust.root': [version: number, peer: string]
  'trust.fresh': [product: string, issued: string, peer: string]
  /** The held root named publish key `key` for this product: its release feed is now followed. */
  'trust.feed': [key: string]
  /** A peer passed on format-2 release `rev` (its document verified under the held root). */
  'trust.release': [rev: number, peer: string]
}

export interface TrustFollower {
  readonly store: TrustStore
  readonly statements: StatementsHolder
  /** The product's rollout statements verified so far, from the stream or from peers, kept on disk (issue 16 item 1). */
  readonly rollouts: RolloutStore
  /** Verified releases of this product from the feeds of rotated keys (whole while they may still be installed). */
  readonly releases: StreamReleases
  /**
   * The product's newest format-2 release document verified here (from the servers, a peer, or the
   * copy's own store at start): passed to peers on the statements channel (issue 13 item 3, R-DHT-2).
   */
  readonly releaseDocs: ReleaseDocs
  /** Opens the statements channel and replicates the rotated keys' feeds on a connection. */
  attach(stream: NoiseSecretStream): void
  /** Whether the held root (else the pinned key) lets the key that signed `release` sign it; logs why not. */
  trusted(release: SignedRelease, where: string): boolean
  /**
   * Takes newer roots and the newest fresh statement from a source (the NATS streams); a copy that
   * pinned only a key adopts the first root that key endorses. Never throws: logged, and the
   * daemon goes on with what it holds (R-DHT-2).
   */
  refresh(source: Required<Pick<ReleaseSource, 'roots' | 'fresh'>>): Promise<void>
  /** Called with each new revision a rotated key's feed brings. */
  onRelease(fn: (rev: number) => void): void
  close(): Promise<void>
}

export interface FollowTrustOptions {
  wc: WorkingCopy
  emit: <K extends keyof TrustEvents>(event: K, ...args: TrustEvents[K]) => void
  log: (msg: string) => void
  /** Reports a peer that sent a document that does not verify (as the piece protocol does). */
  ban: (peer: string, reason: string) => void
  /** The copy's installed revision now (its view is reopened after each update). */
  installed: () => number
}

export async function followTrust(opts: FollowTrustOptions): Promise<TrustFollower> {
  const { wc, emit, log } = opts
  const { product, publicKey: pinnedKey } = wc.config
  const store = await TrustStore.open(wc.layout.trust, wc.layout.tmp)
  const rollouts = await RolloutStore.open(join(wc.layout.meta, 'rollouts.json'), wc.layout.tmp, () => store.root)
  const releaseDocs = new ReleaseDocs(() => store.root, [product])
  const statements = new StatementsHolder(store, { products: [product], endorsedBy: { product, pinnedKey }, rollouts, releases: releaseDocs })
  const streams = new Set<NoiseSecretStream>()
  const feeds = new Map<string, ReleaseFeed>()
  const releases = new StreamReleases()
  let onRelease: (rev: number) => void = () => {}
  let closed = false

  statements.on('root', (version, peer) => {
    log(JSON.stringify({ event: 'trust.root', version, peer }))
    emit('trust.root', version, peer)
  })
  statements.on('fresh', (p, issued, peer) => {
    log(JSON.stringify({ event: 'trust.fresh', product: p, issued, peer }))
    emit('trust.fresh', p, issued, peer)
  })
  statements.on('rollout', (p, seq, peer) => log(JSON.stringify({ event: 'trust.rollout', product: p, seq, peer })))
  statements.on('release', (p, rev, peer) => {
    log(JSON.stringify({ event: 'trust.release', product: p, rev, peer }))
    emit('trust.release', rev, peer)
  })
  statements.on('protocol-error', (err, peer) => opts.ban(peer, err.message))
  statements.on('store-error', (err) => log(`could not keep a statement from a peer: ${err.message}`))

  /** A release some feed verified against its own key: does the held root let that key sign it? */
  const trusted = (release: SignedRelease, where: string): boolean => {
    try {
      trustedRelease(release, { product, pinnedKey, store }, where)
      return true
    } catch (err) {
      log(`ignored r${release.manifest.rev} from ${where}: ${errorMessage(err)}`)
      return false
    }
  }

  // A rotation: the root names publish keys other than the pinned one. Their feeds carry the
  // releases they sign; replicate them on every connection so those releases reach us from peers.
  const openRotatedFeeds = async (): Promise<void> => {
    if (!store.root) return
    for (const key of productKeys(store.root, product).current) {
      if (key === pinnedKey || feeds.has(key) || closed) continue
      // Loaded here only: Hypercore is 15 MiB of a daemon's memory (issue 13 item 5).
      const { openFeed } = await import('../../infra/swarm/release-feed.ts')
      const feed = await openFeed({ storageDir: join(wc.layout.meta, `feed-${key.slice(0, 16)}`), publisherPublicKey: key })
      if (closed) {
        await feed.close()
        return
      }
      feeds.set(key, feed)
      const take = (release: SignedRelease, where: string): void => {
        if (release.manifest.product !== product || !trusted(release, where)) return
        releases.add(release, opts.installed())
        onRelease(release.manifest.rev)
      }
      feed.on('release', (entry, release) => take(release, `the release feed of key ${key.slice(0, 16)}…, block ${entry.index}`))
      for (const entry of feed.releases(product)) take(await feed.get(entry.index), `the release feed of key ${key.slice(0, 16)}…, block ${entry.index}`)
      for (const s of streams) feed.replicate(s)
      log(JSON.stringify({ event: 'trust.feed', product, key, rootVersion: store.version }))
      emit('trust.feed', key)
    }
  }
  let opening: Promise<void> = Promise.resolve()
  const follow = (): void => {
    opening = opening.then(openRotatedFeeds).catch((err) => log(`cannot follow the release feed of a rotated key: ${errorMessage(err)}`))
  }
  const stopFollowing = store.onChange((change) => {
    if (change.kind === 'root') follow()
  })
  follow()
  await opening

  return {
    store,
    statements,
    rollouts,
    releases,
    releaseDocs,
    trusted,
    attach(stream) {
      statements.attach(stream)
      for (const feed of feeds.values()) feed.replicate(stream)
      streams.add(stream)
      stream.once('close', () => streams.delete(stream))
    },
    onRelease(fn) {
      onRelease = fn
    },
    async refresh(source) {
      try {
        const docs = await source.roots(store.version + 1)
        if (!store.root) {
          for (const d of docs) if (await store.adoptEndorsed(d, 'the root stream', product, pinnedKey)) break
        }
        if (store.root) {
          await store.acceptRoots(docs, 'the root stream')
          const fresh = await source.fresh(product)
          if (fresh !== undefined) await store.acceptFresh(fresh, 'the fresh stream')
        }
      } catch (err) {
        log(`cannot refresh the root of trust from NATS; going on with what is held: ${errorMessage(err)}`)
      }
    },
    async close() {
      closed = true
      stopFollowing()
      statements.close()
      await opening
      await Promise.all([...feeds.values()].map((f) => f.close()))
    },
  }
}
