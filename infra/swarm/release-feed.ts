// The release feed (R-DHT-2, ARCHITECTURE §5, §7): a Hypercore written with the publisher's
// key, one signed release manifest per block, replicated over the same connections as the
// piece channel. A client cut off from tracker AND servers still learns of new releases.
//
// Trust: Hypercore verifies every block against the core key (derived from the pinned
// publisher key), and each block must also decode as a release signed by that key. The feed
// never moves backwards: forks are not followed (allowFork: false), a peer with a shorter
// feed changes nothing, a release whose revision does not increase is refused, and two
// conflicting signed histories freeze the feed ('conflict').
import { EventEmitter } from 'node:events'
import b4a from 'b4a'
import Hypercore, { type HypercorePeer } from 'hypercore'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { UpswarmError, errorMessage, isUpswarmError } from '../errors.ts'
import { sodiumKeyPair, type PublisherKey } from '../release/keys.ts'
import { decodeRelease, manifestSha256, type SignedRelease } from '../release/manifest.ts'

/** Hypercore's suggested block limit; a release manifest larger than this is refused. */
export const MAX_RELEASE_BLOCK_BYTES = 15 * 1024 * 1024

const HEX64 = /^[0-9a-f]{64}$/

export interface OpenFeedOptions {
  /** Directory of this feed's Hypercore storage. */
  storageDir: string
  /** The pinned publisher public key, 64 hex characters. */
  publisherPublicKey: string
  /** The publisher's key (publish only): makes this feed writable. */
  writerKey?: PublisherKey
}

/** A verified block of the feed (the full release: `get(index)`). */
export interface FeedEntry {
  index: number
  product: string
  rev: number
  label?: string
  manifestSha256: string
}

export interface ReleaseFeedEvents {
  /** A new block verified as a signed release with a higher revision than its product had. */
  release: [entry: FeedEntry, release: SignedRelease]
  /** A block that is not a valid release of the pinned key, or rewinds its product's revision. */
  rejected: [error: UpswarmError, index: number]
  /** Two conflicting signed histories exist; Hypercore froze the feed. Alert the administrators. */
  conflict: [error: UpswarmError]
  /** A peer offers a forked (rewritten) feed; it is not followed. Seen by update(). */
  'forked-peer': [error: UpswarmError, peer: string]
}

export class ReleaseFeed extends EventEmitter<ReleaseFeedEvents> {
  readonly publisherPublicKey: string
  /** Hypercore key (Hypercore.key of the publisher key) and discovery key. */
  readonly key: Buffer
  readonly discoveryKey: Buffer
  private readonly core: Hypercore
  private readonly entries: FeedEntry[] = []
  private readonly refused = new Map<number, UpswarmError>()
  private readonly lastRev = new Map<string, number>()
  private scanned = 0
  private scanning: Promise<void> = Promise.resolve()
  private closed = false
  private conflicted = false

  private constructor(core: Hypercore, publisherPublicKey: string) {
    super()
    this.core = core
    this.publisherPublicKey = publisherPublicKey
    this.key = core.key!
    this.discoveryKey = core.discoveryKey!
  }

  static async open(opts: OpenFeedOptions): Promise<ReleaseFeed> {
    if (!HEX64.test(opts.publisherPublicKey)) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `publisher public key must be 64 hex characters (got ${JSON.stringify(opts.publisherPublicKey.slice(0, 80))})`)
    }
    if (opts.writerKey && opts.writerKey.publicKey !== opts.publisherPublicKey) {
      throw new UpswarmError('UPSWARM_E_CONFIG',
        `the writer key (public key ${opts.writerKey.publicKey}) is not the pinned publisher key ${opts.publisherPublicKey}; use the publisher's key file`)
    }
    const key = Hypercore.key(b4a.from(opts.publisherPublicKey, 'hex') as Buffer)
    // The writer derives the key from its key pair (passing the key too leaves it without a signer).
    const core = opts.writerKey
      ? new Hypercore(opts.storageDir, { keyPair: sodiumKeyPair(opts.writerKey), allowFork: false })
      : new Hypercore(opts.storageDir, key, { allowFork: false })
    try {
      await core.ready()
    } catch (err) {
      await core.close().catch(() => {})
      throw new UpswarmError('UPSWARM_E_IO', `cannot open the release feed in ${opts.storageDir}: ${errorMessage(err)}`, { cause: err })
    }
    if (!core.key || !b4a.equals(core.key, key)) {
      await core.close()
      throw new UpswarmError('UPSWARM_E_CONFIG', `${opts.storageDir} holds another feed than publisher ${opts.publisherPublicKey}'s; give each publisher key its own feed directory`)
    }
    const feed = new ReleaseFeed(core, opts.publisherPublicKey)
    core.on('append', () => feed.scheduleScan())
    core.on('download', () => feed.scheduleScan())
    core.on('truncate', () => feed.onConflict('the feed was truncated'))
    core.on('conflict', (length: number) => feed.onConflict(`two different signed histories exist for length ${length}`))
    core.on('verification-error', (err: unknown, req: { block?: { index: number } | null } | null, _res: unknown, from: { remotePublicKey?: Buffer } | null) => {
      const peer = from?.remotePublicKey ? b4a.toString(from.remotePublicKey, 'hex') : 'unknown'
      feed.emit('rejected', new UpswarmError('UPSWARM_E_SIGNATURE',
        `peer ${peer} sent release feed data that does not verify against publisher key ${opts.publisherPublicKey}; ignored it and stopped asking that peer`,
        { cause: err, details: { peer } }), req?.block?.index ?? -1)
    })
    core.download({ start: 0, end: -1 })
    await feed.waitScanned()
    return feed
  }

  /** Blocks in the feed (verified or not yet). */
  get length(): number {
    return this.core.length
  }

  get writable(): boolean {
    return this.core.writable
  }

  /** The verified releases, in feed order. */
  releases(product?: string): FeedEntry[] {
    return product === undefined ? [...this.entries] : this.entries.filter((e) => e.product === product)
  }

  /** The highest verified revision of a product. */
  latest(product: string): FeedEntry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.product === product) return this.entries[i]
    return undefined
  }

  /** The full signed release of block `index`; throws the block's refusal if it was refused. */
  async get(index: number, opts: { timeoutMs?: number } = {}): Promise<SignedRelease> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.core.length) {
      throw new UpswarmError('UPSWARM_E_NOT_FOUND', `release feed has no block ${index} (length ${this.core.length})`)
    }
    if (index >= this.scanned) {
      await this.withTimeout(this.core.download({ start: this.scanned, end: index + 1 }).done(), opts.timeoutMs, `block ${index} of the release feed`)
      await this.waitScanned()
    }
    const refusal = this.refused.get(index)
    if (refusal) throw refusal
    const block = await this.core.get(index, { wait: false })
    if (!block) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `block ${index} of the release feed is not stored locally`)
    return decodeRelease(block, this.publisherPublicKey, `release feed block ${index}`)
  }

  /**
   * Appends a signed release (publisher only). Idempotent: a release already in the feed is
   * not appended twice. Refuses a release that does not verify against the pinned key or does
   * not raise its product's revision, and refuses to write while a connected peer holds a
   * longer feed (catch up with update() first, or the feed would fork; that refusal has
   * `details.reason` 'behind').
   */
  async append(releaseBytes: Uint8Array): Promise<{ index: number; length: number; appended: boolean }> {
    if (!this.core.writable) {
      throw new UpswarmError('UPSWARM_E_PUBLISH', 'this release feed was opened without the publisher key; it cannot be appended to')
    }
    if (releaseBytes.byteLength > MAX_RELEASE_BLOCK_BYTES) {
      throw new UpswarmError('UPSWARM_E_MANIFEST', `release manifest is ${releaseBytes.byteLength} bytes; the feed takes at most ${MAX_RELEASE_BLOCK_BYTES}`)
    }
    const release = decodeRelease(releaseBytes, this.publisherPublicKey, 'release feed append')
    await this.waitScanned()
    const ahead = this.core.peers.find((p) => p.remoteFork === this.core.fork && p.remoteLength > this.core.length)
    if (ahead) {
      throw new UpswarmError('UPSWARM_E_PUBLISH',
        `a peer holds ${ahead.remoteLength} feed blocks, this copy only ${this.core.length}; catch up with update() before appending, or the feed would fork`,
        { details: { reason: 'behind', remoteLength: ahead.remoteLength, length: this.core.length } })
    }
    const { product, rev } = release.manifest
    const sha = manifestSha256(release.manifest)
    const same = this.entries.find((e) => e.product === product && e.rev === rev)
    if (same) {
      if (same.manifestSha256 === sha) return { index: same.index, length: this.core.length, appended: false }
      throw new UpswarmError('UPSWARM_E_CONFLICT',
        `the release feed already holds a different release for product ${product} rev ${rev} (block ${same.index}); publish a new revision instead`)
    }
    const last = this.lastRev.get(product) ?? 0
    if (rev <= last) {
      throw new UpswarmError('UPSWARM_E_PUBLISH', `the release feed already has product ${product} at rev ${last}; rev ${rev} would move it backwards`)
    }
    const { length } = await this.core.append(b4a.from(releaseBytes) as Buffer)
    await this.waitScanned()
    return { index: length - 1, length, appended: true }
  }

  /**
   * Catches up with the connected peers: fetches their newest length and every block, then
   * verifies them. Resolves true when the feed grew. The publisher calls it before append().
   * Peers found offering a forked feed are reported ('forked-peer') and not followed.
   * With no feed peer connected it returns at once: a publisher passes `minPeers` (the servers
   * it connected to) so that it waits for their feed channels to open first.
   */
  async update(opts: { timeoutMs?: number; minPeers?: number } = {}): Promise<boolean> {
    const before = this.core.length
    const minPeers = opts.minPeers ?? 0
    await this.withTimeout((async () => {
      if (this.core.peers.length < minPeers) {
        await new Promise<void>((resolve) => {
          const onPeer = (): void => {
            if (this.core.peers.length < minPeers) return
            this.core.off('peer-add', onPeer)
            resolve()
          }
          this.core.on('peer-add', onPeer)
        })
      }
      await this.core.update({ wait: true, force: this.core.writable })
      if (this.core.length > 0) await this.core.download({ start: 0, end: this.core.length }).done()
      await this.waitScanned()
    })(), opts.timeoutMs, 'release feed update')
    for (const p of this.core.peers) {
      if (p.remoteFork === this.core.fork) continue
      const peer = b4a.toString(p.remotePublicKey, 'hex')
      this.emit('forked-peer', new UpswarmError('UPSWARM_E_CONFLICT',
        `peer ${peer} offers the release feed at fork ${p.remoteFork} (length ${p.remoteLength}); this node is at fork ${this.core.fork} ` +
        `(length ${this.core.length}) and does not follow a rewritten feed`, { details: { peer } }), peer)
    }
    return this.core.length > before
  }

  /**
   * Resolves once some connected peer holds the first `length` blocks (publish returns only
   * after a server has the block); with `all`, once every connected peer on this fork does.
   */
  async waitForRemote(length: number, opts: { timeoutMs?: number; signal?: AbortSignal; all?: boolean } = {}): Promise<void> {
    const has = (): boolean => {
      const holding = this.remotesHolding(length)
      return holding > 0 && (!opts.all || holding === this.sameForkPeers().length)
    }
    if (has()) return
    const events = ['remote-contiguous-length', 'peer-add', 'upload'] as const
    let check!: () => void
    const done = new Promise<void>((resolve, reject) => {
      check = () => { if (has()) resolve() }
      opts.signal?.addEventListener('abort', () => reject(opts.signal!.reason), { once: true })
    })
    for (const e of events) this.core.on(e, check)
    // Safety net: a peer's progress does not always raise an event (e.g. under a higher length seen before).
    const poll = setInterval(() => check(), 500)
    try {
      await this.withTimeout(done, opts.timeoutMs, `a peer to hold ${length} release feed blocks`)
    } finally {
      clearInterval(poll)
      for (const e of events) this.core.off(e, check)
    }
  }

  /** Connected peers on this feed's fork that hold its first `length` blocks. */
  remotesHolding(length: number): number {
    return this.sameForkPeers().filter((p) => p.remoteContiguousLength >= length).length
  }

  private sameForkPeers(): HypercorePeer[] {
    return this.core.peers.filter((p) => p.remoteFork === this.core.fork)
  }

  /** Replicates the feed over a connection, beside its piece channel (call it in the connection handler). */
  replicate(stream: NoiseSecretStream): void {
    if (this.closed || this.conflicted) return
    this.core.replicate(stream)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.core.close()
  }

  // ---------------------------------------------------------------- verification

  private scheduleScan(): void {
    this.scanning = this.scanning.then(() => this.scan())
  }

  /** Verifies every block stored locally that was not verified yet. */
  private async waitScanned(): Promise<void> {
    this.scheduleScan()
    await this.scanning
  }

  /** Verifies stored blocks in order, up to the first one not downloaded yet. Never throws. */
  private async scan(): Promise<void> {
    while (!this.closed && !this.conflicted && this.scanned < this.core.length) {
      const index = this.scanned
      let block: Buffer | null
      try {
        block = await this.core.get(index, { wait: false })
      } catch {
        return // closed, or the core froze on a conflict
      }
      if (!block) return // 'download' schedules the next scan
      this.scanned = index + 1
      this.verifyBlock(index, block)
    }
  }

  private verifyBlock(index: number, block: Buffer): void {
    let release: SignedRelease
    try {
      if (block.byteLength > MAX_RELEASE_BLOCK_BYTES) {
        throw new UpswarmError('UPSWARM_E_MANIFEST', `release feed block ${index} is ${block.byteLength} bytes, over the ${MAX_RELEASE_BLOCK_BYTES}-byte limit`)
      }
      release = decodeRelease(block, this.publisherPublicKey, `release feed block ${index}`)
      const { product, rev } = release.manifest
      const last = this.lastRev.get(product) ?? 0
      if (rev <= last) {
        throw new UpswarmError('UPSWARM_E_MANIFEST',
          `release feed block ${index} carries product ${product} rev ${rev}, but the feed already reached rev ${last}; a feed never moves backwards, refusing it`)
      }
    } catch (err) {
      const e = isUpswarmError(err) ? err : new UpswarmError('UPSWARM_E_MANIFEST', `release feed block ${index}: ${errorMessage(err)}`, { cause: err })
      this.refused.set(index, e)
      this.emit('rejected', e, index)
      return
    }
    const { product, rev, label } = release.manifest
    this.lastRev.set(product, rev)
    const entry: FeedEntry = { index, product, rev, ...(label !== undefined ? { label } : {}), manifestSha256: manifestSha256(release.manifest) }
    this.entries.push(entry)
    this.emit('release', entry, release)
  }

  private onConflict(what: string): void {
    if (this.conflicted) return
    this.conflicted = true
    this.emit('conflict', new UpswarmError('UPSWARM_E_CONFLICT',
      `release feed of publisher ${this.publisherPublicKey}: ${what}. The publisher key signed two histories (a publish that did not ` +
      `catch up first, or a stolen key). This node keeps the ${this.entries.length} releases it verified and stops following the feed; ` +
      `alert the administrators`))
  }

  private async withTimeout<T>(p: Promise<T>, timeoutMs: number | undefined, what: string): Promise<T> {
    if (!timeoutMs) return p
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UpswarmError('UPSWARM_E_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}; no peer with the feed answered`)), timeoutMs)
    })
    try {
      return await Promise.race([p, timeout])
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Opens (creating if needed) the release feed of a publisher key; writable with `writerKey`. */
export function openFeed(opts: OpenFeedOptions): Promise<ReleaseFeed> {
  return ReleaseFeed.open(opts)
}
