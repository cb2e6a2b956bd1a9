// The daemon's copy of the release feed (R-DHT-2), opened only when something needs it (issue 13
// item 5: Hypercore and its RocksDB storage are 15 MiB of an idle daemon's 80 MiB).
// - Eager: a product whose root does not list format 2 learns releases from peers through the feed
//   alone, so the feed opens at start and replicates on every connection, as it always did.
// - Lazy: a product whose root lists format 2 learns them from release documents (the statements
//   channel) instead. The feed opens the first time a peer that is not a repository server asks
//   for it (a client of an earlier release, which still follows the feed). From then on it
//   replicates with the peers that ask and with the servers (which seed it: the copy catches up),
//   never opening the channel to other clients itself, so one earlier client does not make a
//   whole fleet load its feed. Nothing is loaded until then: the discovery key is worked out
//   without Hypercore (feed-key.ts), and Protomux tells of a peer opening that channel (`pair`).
import b4a from 'b4a'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import { errorMessage } from '../../infra/errors.ts'
import { feedKeys } from '../../infra/swarm/feed-key.ts'
import type { FeedEntry, ReleaseFeed } from '../../infra/swarm/release-feed.ts'
import type { SignedRelease } from '../../infra/release/manifest.ts'

const HYPERCORE_PROTOCOL = 'hypercore/alpha'

export interface DaemonFeedOptions {
  storageDir: string
  publisherPublicKey: string
  eager: boolean
  /** Called once the feed is open, before it replicates anywhere (wire its events here). */
  onOpen: (feed: ReleaseFeed) => Promise<void>
  /** Whether the peer of swarm key `key` (hex) is a repository server (lazy mode: they seed the feed, they do not need ours). */
  isServer: (key: string) => Promise<boolean>
  /** Whether the peer of swarm key `key` is banned (it gets no feed). */
  isBanned: (key: string) => boolean
  log: (msg: string) => void
}

export class DaemonFeed {
  private readonly opts: DaemonFeedOptions
  private readonly discoveryKey: Buffer
  private opened: ReleaseFeed | undefined
  private opening: Promise<ReleaseFeed> | undefined
  private closed = false
  /** Lazy mode: the open connections, for the servers' once the feed opens. */
  private readonly streams = new Map<NoiseSecretStream, string>()

  private constructor(opts: DaemonFeedOptions) {
    this.opts = opts
    this.discoveryKey = feedKeys(opts.publisherPublicKey).discoveryKey
  }

  static async start(opts: DaemonFeedOptions): Promise<DaemonFeed> {
    const f = new DaemonFeed(opts)
    if (opts.eager) await f.open()
    return f
  }

  /** The feed, if open. */
  get feed(): ReleaseFeed | undefined {
    return this.opened
  }

  open(): Promise<ReleaseFeed> {
    this.opening ??= (async () => {
      const { openFeed } = await import('../../infra/swarm/release-feed.ts')
      if (this.closed) throw new Error('the daemon is closing')
      const feed = await openFeed({ storageDir: this.opts.storageDir, publisherPublicKey: this.opts.publisherPublicKey })
      if (this.closed) {
        await feed.close()
        return feed
      }
      await this.opts.onOpen(feed)
      this.opened = feed
      return feed
    })()
    // A failed open (a disk error) may be tried again by the next peer that asks.
    this.opening.catch(() => { if (!this.opened) this.opening = undefined })
    return this.opening
  }

  /** Call in the connection handler, before the stream is read. */
  attach(stream: NoiseSecretStream): void {
    if (this.opened && this.opts.eager) return this.opened.replicate(stream)
    if (this.opts.eager) {
      // Opening at start failed or is under way: replicate once it is open.
      void this.open().then((f) => f.replicate(stream), () => {})
      return
    }
    const key = stream.remotePublicKey ? b4a.toString(stream.remotePublicKey, 'hex') : ''
    this.streams.set(stream, key)
    stream.once('close', () => this.streams.delete(stream))
    if (this.opened) void this.replicateIfServer(stream, key)
    // Lazy: answer the peer's feed channel, if it opens one. Protomux holds the peer's open until
    // this resolves; a channel not created by then is rejected (the peer goes on without it).
    Protomux.from(stream).pair({ protocol: HYPERCORE_PROTOCOL, id: this.discoveryKey }, async () => {
      const gone = (): boolean => this.closed || stream.destroyed || this.opts.isBanned(key)
      if (gone()) return
      try {
        if (!this.opened && await this.opts.isServer(key)) return
        if (gone()) return
        const first = !this.opened
        const feed = await this.open()
        if (!stream.destroyed) feed.replicate(stream)
        if (first) {
          this.opts.log('a peer asked for the release feed (a client of an earlier release): carrying it from now on')
          for (const [s, k] of this.streams) if (s !== stream) void this.replicateIfServer(s, k)
        }
      } catch (err) {
        this.opts.log(`cannot open the release feed for a peer that asks for it: ${errorMessage(err)}`)
      }
    })
  }

  private async replicateIfServer(stream: NoiseSecretStream, key: string): Promise<void> {
    if (await this.opts.isServer(key).catch(() => false)) if (!stream.destroyed) this.opened?.replicate(stream)
  }

  releases(product: string): FeedEntry[] {
    return this.opened?.releases(product) ?? []
  }

  async get(index: number): Promise<SignedRelease | undefined> {
    return this.opened?.get(index)
  }

  async close(): Promise<void> {
    this.closed = true
    await this.opening?.catch(() => undefined)
    await this.opened?.close()
  }
}
