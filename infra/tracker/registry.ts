// The tracker's registry (R-TRACKER, R-PEERLIST): every peer's revision, address and port per
// product, shared by all tracker instances through the JetStream KV bucket PEER_BUCKET. Each
// instance answers from an in-memory view that it keeps in step by watching the bucket. Its own
// writes are batched: an announce only marks its key, and every WRITE_FLUSH_MS (1 s) the keys
// changed since the last flush go, each once with its newest value, as one or a few batch
// messages (peer-log.ts). An announce never waits for, nor publishes to, JetStream; another
// instance sees it within 1 s plus the cluster's delivery time.
//
// Swarms are keyed by info hash. A peer announced under a known (product, rev) is keyed
// `<product>.<peerId>`; a BitTorrent announce for an info hash nobody has named yet is keyed
// `ih.<hash>.<peerId>`. When an announce that names (product, rev) reveals the hash, the mapping
// is written as `map.<hash>` and the unmapped peers merge into the product.
//
// Each entry records its owner, who announced it: a NATS identity or, over HTTP and UDP, a source
// address. Only the owner stops or replaces it (a BitTorrent client at the address it lists may
// too), and a NATS identity holds a bounded number of entries, so one identity's flood of invented
// peers cannot fill the registry.
import { randomBytes } from 'node:crypto'
import type { KV, KvWatchEntry } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'
import { infoHashKey, PEER_BUCKET, PEER_BUCKET_MAX_AGE_MS, productPeerKey, unmappedPeerKey } from '../nats/names.ts'
import { BucketWriter } from './bucket-writer.ts'
import { compactIPv4 } from './compact.ts'
import { infoHashHex } from './info-hash.ts'
import { batchInstance, batchKey, decodeBatch, encodeBatches, isBatchKey, type PeerRecord } from './peer-log.ts'
import { PeerSet } from './peer-set.ts'
import { MAX_NUMWANT, storedMappingSchema, storedPeerSchema } from './schema.ts'
import { addressOwner, isIdentityOwner, type AnnounceInput, type AnnounceResult, type PeerEntry, type SwarmStats } from './types.ts'

export const DEFAULT_PEER_TTL_MS = 180_000

/**
 * How often an instance sends its batched writes to the bucket: the most another instance's view
 * lags behind this one's, plus the cluster's delivery time (docs/ops.md, "Tracker").
 */
export const WRITE_FLUSH_MS = 1_000

/** The flush interval for a peer TTL: WRITE_FLUSH_MS, or a tenth of a (test's) shorter TTL, so a peer is seen well before it expires. */
export const flushEveryMs = (peerTtlMs = DEFAULT_PEER_TTL_MS): number => Math.max(50, Math.min(WRITE_FLUSH_MS, peerTtlMs / 10))

/**
 * Most batches of one instance awaiting their ack (each up to BATCH_MAX_BYTES). Beyond it changes
 * wait in memory (one per key, the newest), so a burst of new peers faster than the stream stores
 * them delays the other instances' view instead of being sent again and again until dropped.
 */
export const WRITE_WINDOW = 8

export interface RegistryOptions {
  /** The shared bucket and the connection it is reached by; absent = a registry of this process only. */
  shared?: { kv: KV; nc: NatsConnection }
  /** How long a peer stays listed after its last announce. */
  peerTtlMs?: number
  /** Re-announce interval told to peers; must be below the TTL. */
  intervalMs?: number
  /** Most peers held at once; announces of new peers beyond it are refused. */
  maxPeers?: number
  /** Most peers one NATS identity lists, per product and in all (default 32 and 256). */
  maxPeersPerIdentity?: { product: number; total: number }
  now?: () => number
  onError?: (err: unknown) => void
  /**
   * false: no timers of its own; the owner calls `sweep()` every `sweepEveryMs(peerTtlMs)` and
   * `retryLateWrites()` (which also flushes the batched writes) every `flushEveryMs(peerTtlMs)` (the
   * tracker's statechart does: issue 12, no timers outside a role's machine). Default true.
   */
  ownTimers?: boolean
}

/** How often expired peers are dropped: twice per TTL, between 250 ms and 15 s. */
export const sweepEveryMs = (peerTtlMs = DEFAULT_PEER_TTL_MS): number => Math.max(250, Math.min(peerTtlMs, 30_000) / 2)

interface Mapping {
  product: string
  rev: number
  /** When this instance last wrote (or saw written) the mapping to the bucket. */
  writtenAt: number
}

const kvSubject = (key: string): string => `$KV.${PEER_BUCKET}.${key}`

export const DEFAULT_MAX_PEERS_PER_IDENTITY = { product: 32, total: 256 }

/** The entries an identity lists: in all, and per swarm (a product, or an unnamed info hash). */
interface OwnerCount {
  total: number
  swarms: Map<string, number>
}

export class PeerRegistry {
  readonly peerTtlMs: number
  readonly intervalMs: number
  readonly #shared: { kv: KV; nc: NatsConnection } | undefined
  readonly #maxPeers: number
  readonly #maxPerIdentity: { product: number; total: number }
  readonly #now: () => number
  readonly #onError: (err: unknown) => void

  /** kvKey → entry, for every live peer of every swarm. */
  readonly #entries = new Map<string, PeerEntry>()
  /** Info hash → its peers. */
  readonly #swarms = new Map<string, PeerSet>()
  /** Product → the info hashes of its revisions that have peers. */
  readonly #products = new Map<string, Set<string>>()
  /** Info hash → (product, rev): the reverse index. */
  readonly #mappings = new Map<string, Mapping>()
  /** NATS identity owner → how many entries it lists. */
  readonly #owners = new Map<string, OwnerCount>()
  /** When each entry was last written to the bucket, so steady re-announces write half as often. */
  readonly #persistedExpires = new Map<string, number>()

  readonly #writer: BucketWriter | undefined
  /** Keys removed here, and when: a late echo of an older write must not bring them back. */
  readonly #removedAt = new Map<string, number>()
  #watch: { stop(): void } | undefined
  #sweeper: NodeJS.Timeout | undefined
  #flusher: NodeJS.Timeout | undefined
  /** key → value (a number: removed at that time) written here since the last flushWrites(), in order. */
  readonly #unflushed = new Map<string, object | number>()
  /** Names this process's batches (peer-log.ts): its own come back through the watch and are skipped. */
  readonly #instance = randomBytes(8).toString('hex')
  #batchSeq = 0
  /** This instance's batches in the bucket and when each ends (every record in it over): then it is deleted. */
  readonly #batchEnds: { at: number; key: string }[] = []
  #closed = false
  readonly #ownTimers: boolean

  constructor(opts: RegistryOptions = {}) {
    this.peerTtlMs = opts.peerTtlMs ?? DEFAULT_PEER_TTL_MS
    this.#ownTimers = opts.ownTimers ?? true
    this.intervalMs = opts.intervalMs ?? Math.floor(this.peerTtlMs / 3)
    if (this.intervalMs >= this.peerTtlMs) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `tracker: announce interval ${this.intervalMs} ms must be below the peer TTL ${this.peerTtlMs} ms; lower --interval or raise --peer-ttl`)
    }
    if (this.peerTtlMs > PEER_BUCKET_MAX_AGE_MS) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `tracker: peer TTL ${this.peerTtlMs} ms exceeds the bucket's max age ${PEER_BUCKET_MAX_AGE_MS} ms`)
    }
    this.#shared = opts.shared
    this.#writer = opts.shared
      ? new BucketWriter(opts.shared.nc, {
          subjectOf: kvSubject,
          ownTimer: this.#ownTimers,
          // Not persisted: the next announce of each peer in it writes it again.
          onDropped: (key) => (isBatchKey(key) ? this.#persistedExpires.clear() : undefined),
          // A flush cut short by the window goes on as acks come back.
          drainBelow: WRITE_WINDOW / 2,
          onDrain: () => this.flushWrites(),
        })
      : undefined
    this.#maxPeers = opts.maxPeers ?? 1_000_000
    this.#maxPerIdentity = opts.maxPeersPerIdentity ?? DEFAULT_MAX_PEERS_PER_IDENTITY
    this.#now = opts.now ?? Date.now
    this.#onError = opts.onError ?? (() => {})
  }

  /** Loads the bucket's current content, then follows it. Resolves once the view is current. */
  async start(): Promise<void> {
    if (this.#ownTimers) {
      this.#sweeper = setInterval(() => this.sweep(), sweepEveryMs(this.peerTtlMs))
      this.#sweeper.unref()
      if (this.#shared) {
        this.#flusher = setInterval(() => this.flushWrites(), flushEveryMs(this.peerTtlMs))
        this.#flusher.unref()
      }
    }
    if (!this.#shared) return
    const { kv } = this.#shared
    const status = await kv.status()
    const watch = await kv.watch({ key: '>' })
    this.#watch = watch
    let initialised: () => void = () => {}
    const ready = new Promise<void>((resolve) => (initialised = resolve))
    if (status.values === 0) initialised()
    void (async () => {
      try {
        for await (const e of watch) {
          this.#apply(e)
          if (e.isUpdate) initialised()
        }
      } catch (err) {
        if (!this.#closed) this.#onError(err)
      } finally {
        initialised()
      }
    })()
    await ready
  }

  async close(): Promise<void> {
    this.flushWrites(true)
    this.#closed = true
    clearInterval(this.#sweeper)
    clearInterval(this.#flusher)
    this.#watch?.stop()
    await this.#writer?.flush(2_000)
    this.#writer?.close()
  }

  get size(): number {
    return this.#entries.size
  }

  /** The name of this process's batches in the bucket (`batch.<instance>.<seq>`, peer-log.ts). */
  get instance(): string {
    return this.#instance
  }

  /** Requests answered since start, by operation, whichever door they came through (issue 16 item 5: metrics). */
  readonly requests = { announce: 0, peers: 0, scrape: 0 }

  /** Bucket writes given up on (their peers' next announces write them again). */
  get droppedWrites(): number {
    return this.#writer?.dropped ?? 0
  }

  /** Bucket writes sent and not yet acknowledged. */
  get writesInFlight(): number {
    return this.#writer?.inFlight ?? 0
  }

  /** R-ANNOUNCE, R-PEERLIST: records the peer for `owner` (identityOwner / addressOwner), returns peers of its swarm. */
  announce(input: AnnounceInput, owner: string): AnnounceResult {
    const now = this.#now()
    const { hash, product, rev, swarm } = this.#record(input, owner, now)
    const base = { intervalMs: this.intervalMs, ttlMs: this.peerTtlMs, infoHash: hash, product, rev }
    if (!swarm) return { ...base, peers: [], seeders: 0, leechers: 0 }
    const stats = swarm.stats()
    if (input.event === 'stopped') return { ...base, peers: [], seeders: stats.seeders, leechers: stats.leechers }
    const numwant = Math.min(Math.max(0, input.numwant), MAX_NUMWANT)
    return {
      ...base, peers: sameSiteFirst(swarm, numwant, input, now), seeders: stats.seeders, leechers: stats.leechers,
      ...(input.site !== undefined ? { sitePeers: swarm.siteSize(input.site) } : {}),
    }
  }

  /**
   * As announce(), for the UDP door's hot path: the peers are written as BEP 23 compact IPv4
   * addresses into `out` from `offset` (room for MAX_NUMWANT of them) and the counts into `head`
   * (a reused object); returns how many peers.
   */
  announceCompact(input: AnnounceInput, owner: string, out: Buffer, offset: number, head: { seeders: number; leechers: number }): number {
    const now = this.#now()
    const { key, swarm } = this.#record(input, owner, now)
    if (!swarm) {
      head.seeders = 0
      head.leechers = 0
      return 0
    }
    const stats = swarm.stats()
    head.seeders = stats.seeders
    head.leechers = stats.leechers
    if (input.event === 'stopped') return 0
    const numwant = Math.min(Math.max(0, input.numwant), MAX_NUMWANT)
    if (input.site === undefined) return swarm.writeCompact(out, offset, numwant, key, now)
    // A peer that told its site (BEP 41 URL data): peers of its site first, as over NATS and HTTP.
    const compact = compactIPv4(sameSiteFirst(swarm, numwant, input, now))
    compact.copy(out, offset)
    return compact.byteLength / 6
  }

  /** Records (or, for `stopped`, removes) the announced peer; returns its swarm as it now is. */
  #record(input: AnnounceInput, owner: string, now: number): { hash: string; key: string; product: string | undefined; rev: number | undefined; swarm: PeerSet | undefined } {
    this.requests.announce++
    let hash = input.infoHash
    let product = input.product
    let rev = input.rev
    if (product !== undefined && rev !== undefined) {
      const named = infoHashHex(product, rev)
      if (hash !== undefined && hash !== named) {
        throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `info_hash ${hash} is not the swarm of product ${product} revision ${rev} (expected ${named}); drop info_hash or fix product/rev`)
      }
      hash = named
      this.#learn(hash, product, rev, now, true)
    } else if (hash !== undefined) {
      const m = this.#mappings.get(hash)
      product = m?.product
      rev = m?.rev
    } else {
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', 'announce names no swarm: give info_hash, or product and rev')
    }

    const key = product !== undefined ? productPeerKey(product, input.peerId) : unmappedPeerKey(hash, input.peerId)
    if (input.event === 'stopped') {
      const unmapped = product !== undefined ? unmappedPeerKey(hash, input.peerId) : key
      this.#checkOwner(this.#entries.get(key), owner, now, 'stop')
      if (unmapped !== key) this.#checkOwner(this.#entries.get(unmapped), owner, now, 'stop')
      this.#remove(key, true)
      if (unmapped !== key) this.#remove(unmapped, true)
      return { hash, key, product, rev, swarm: this.#swarms.get(hash) }
    }

    const previous = this.#entries.get(key)
    this.#checkOwner(previous, owner, now, 'replace')
    if (!previous && this.#entries.size >= this.#maxPeers) {
      throw new UpswarmError('UPSWARM_E_TRACKER', `tracker full: ${this.#maxPeers} peers listed; retry after ${Math.ceil(this.intervalMs / 1000)} s or raise --max-peers`, { details: { status: 503 } })
    }
    const live = previous && previous.expires > now ? previous : undefined
    if (isIdentityOwner(owner) && live?.owner !== owner) this.#checkQuota(owner, product ?? hash)
    const sameSwarm = previous?.infoHash === hash
    const entry: PeerEntry = {
      peerId: input.peerId,
      ip: input.ip,
      port: input.port,
      infoHash: hash,
      left: input.left,
      completed: input.event === 'completed' || (sameSwarm && previous.completed),
      at: now,
      expires: now + this.peerTtlMs,
    }
    if (product !== undefined) entry.product = product
    if (rev !== undefined) entry.rev = rev
    // A door without the key (UDP) keeps the one given earlier from the same address.
    const publicKey = input.publicKey ?? (previous && previous.ip === input.ip && previous.port === input.port ? previous.publicKey : undefined)
    if (publicKey !== undefined) entry.publicKey = publicKey
    if (input.site !== undefined) entry.site = input.site
    // A live entry keeps its owner when the address it lists updates it.
    entry.owner = live?.owner ?? owner
    this.#store(key, entry)
    if (this.#shared && (!previous || changed(previous, entry) || (this.#persistedExpires.get(key) ?? 0) - now < this.peerTtlMs / 2)) {
      this.#persistedExpires.set(key, entry.expires)
      this.#write(key, entry)
    }
    if (product !== undefined) this.#remove(unmappedPeerKey(hash, input.peerId), true)
    return { hash, key, product, rev, swarm: this.#swarms.get(hash) }
  }

  /** R-PEERLIST: peers of one revision of a product, or of all its revisions. */
  peersOf(product: string, rev: number | undefined, limit: number): PeerEntry[] {
    this.requests.peers++
    const now = this.#now()
    if (rev !== undefined) {
      // The info hash names the swarm, so BitTorrent peers nobody has named yet belong to it too.
      const peers = this.#swarms.get(infoHashHex(product, rev))?.sample(limit, undefined, now) ?? []
      return peers.map((p) => (p.product === undefined ? { ...p, product, rev } : p))
    }
    const out: PeerEntry[] = []
    for (const hash of this.#products.get(product) ?? []) {
      out.push(...(this.#swarms.get(hash)?.sample(limit - out.length, undefined, now) ?? []))
      if (out.length >= limit) break
    }
    return out
  }

  /** BEP 15/48 scrape of one swarm. */
  scrape(hash: string): SwarmStats {
    this.requests.scrape++
    return this.#swarms.get(hash)?.stats() ?? { seeders: 0, leechers: 0, completed: 0 }
  }

  /** Drops expired peers and forgotten mappings from memory (the bucket ages them out itself). */
  /** Sends the writes batched since the last call, and again those not acknowledged in time (see BucketWriter). */
  retryLateWrites(): void {
    this.flushWrites()
    this.#writer?.retryLate()
  }

  sweep(): void {
    const now = this.#now()
    for (const [key, entry] of this.#entries) {
      if (entry.expires <= now) this.#remove(key, false)
    }
    // A write older than a TTL is expired anyway: its tombstone can go.
    for (const [key, at] of this.#removedAt) {
      if (now - at < this.peerTtlMs) break // insertion order ≈ time order
      this.#removedAt.delete(key)
    }
    for (const [hash, m] of this.#mappings) {
      if (!this.#swarms.has(hash) && now - m.writtenAt > PEER_BUCKET_MAX_AGE_MS) this.#mappings.delete(hash)
    }
  }

  /**
   * Refuses to let `owner` stop or replace someone else's live entry. Its own owner may, and so
   * may a request over HTTP or UDP from the address the entry lists (BitTorrent's rule). Entries
   * written before owners were recorded have none and are open to all.
   */
  #checkOwner(entry: PeerEntry | undefined, owner: string, now: number, what: 'stop' | 'replace'): void {
    if (!entry?.owner || entry.expires <= now || entry.owner === owner || owner === addressOwner(entry.ip)) return
    throw new UpswarmError('UPSWARM_E_TRACKER', `cannot ${what} peer ${entry.peerId}: another identity announced it; only that identity (or a BitTorrent client at ${entry.ip}) may, or wait until it expires`, { details: { status: 403 } })
  }

  /** Refuses a new entry to an identity that lists its share of a swarm, or of the registry. */
  #checkQuota(owner: string, swarm: string): void {
    const count = this.#owners.get(owner)
    const name = owner.slice(owner.indexOf(':') + 1)
    const { product, total } = this.#maxPerIdentity
    if ((count?.swarms.get(swarm) ?? 0) >= product) {
      throw new UpswarmError('UPSWARM_E_TRACKER', `identity ${name} already lists ${product} peers of product ${swarm}, the most one identity may; stop one (event stopped) or let it expire (${Math.ceil(this.peerTtlMs / 1000)} s)`, { details: { status: 429 } })
    }
    if ((count?.total ?? 0) >= total) {
      throw new UpswarmError('UPSWARM_E_TRACKER', `identity ${name} already lists ${total} peers, the most one identity may; stop some (event stopped) or let them expire (${Math.ceil(this.peerTtlMs / 1000)} s)`, { details: { status: 429 } })
    }
  }

  /** Keeps the per-identity counts in step with the entries (`sign` +1 on store, -1 on removal). */
  #countOwner(entry: PeerEntry, sign: 1 | -1): void {
    if (!entry.owner || !isIdentityOwner(entry.owner)) return
    let count = this.#owners.get(entry.owner)
    if (!count) {
      count = { total: 0, swarms: new Map() }
      this.#owners.set(entry.owner, count)
    }
    const swarm = entry.product ?? entry.infoHash
    const n = (count.swarms.get(swarm) ?? 0) + sign
    count.total += sign
    if (n > 0) count.swarms.set(swarm, n)
    else count.swarms.delete(swarm)
    if (count.total <= 0) this.#owners.delete(entry.owner)
  }

  #store(key: string, entry: PeerEntry): void {
    this.#removedAt.delete(key)
    const previous = this.#entries.get(key)
    if (previous && previous.infoHash !== entry.infoHash) this.#unindex(key, previous)
    if (previous) this.#countOwner(previous, -1)
    this.#countOwner(entry, 1)
    this.#entries.set(key, entry)
    let swarm = this.#swarms.get(entry.infoHash)
    if (!swarm) {
      swarm = new PeerSet()
      this.#swarms.set(entry.infoHash, swarm)
    }
    swarm.set(key, entry)
    if (entry.product !== undefined) {
      let hashes = this.#products.get(entry.product)
      if (!hashes) {
        hashes = new Set()
        this.#products.set(entry.product, hashes)
      }
      hashes.add(entry.infoHash)
    }
  }

  #remove(key: string, persist: boolean): void {
    const entry = this.#entries.get(key)
    if (entry) {
      this.#entries.delete(key)
      this.#unindex(key, entry)
      this.#countOwner(entry, -1)
      if (this.#removedAt.size >= this.#maxPeers) this.#removedAt.delete(this.#removedAt.keys().next().value!)
      this.#removedAt.set(key, Math.max(entry.at, this.#now()))
    }
    this.#persistedExpires.delete(key)
    if (persist && entry) this.#write(key, null)
  }

  #unindex(key: string, entry: PeerEntry): void {
    const swarm = this.#swarms.get(entry.infoHash)
    if (!swarm) return
    swarm.delete(key)
    if (swarm.size > 0) return
    this.#swarms.delete(entry.infoHash)
    const product = entry.product ?? this.#mappings.get(entry.infoHash)?.product
    const hashes = product === undefined ? undefined : this.#products.get(product)
    if (!hashes) return
    hashes.delete(entry.infoHash)
    if (hashes.size === 0) this.#products.delete(product!)
  }

  /** Records hash → (product, rev) and moves the swarm's unmapped peers under the product; `local` also persists the mapping. */
  #learn(hash: string, product: string, rev: number, now: number, local: boolean): void {
    const known = this.#mappings.get(hash)
    if (known && (known.product !== product || known.rev !== rev)) return // first writer wins
    if (!known && this.#mappings.size >= this.#maxPeers) return // bounded like the peers
    if (known && !(local && now - known.writtenAt > PEER_BUCKET_MAX_AGE_MS / 2)) return
    this.#mappings.set(hash, { product, rev, writtenAt: now })
    if (local) this.#write(infoHashKey(hash), { product, rev })
    if (known) return
    const swarm = this.#swarms.get(hash)
    if (!swarm) return
    for (const { key, entry } of [...swarm.entries()].filter((e) => e.entry.product === undefined)) this.#adopt(key, entry, product, rev)
  }

  /**
   * Moves an unmapped peer (`ih.<hash>.<peer>`) under its product, in memory and in the bucket.
   * Every instance that meets one does it: the writes are identical, so doing it twice is harmless,
   * and it does not wait for the peer's next announce.
   */
  #adopt(key: string, entry: PeerEntry, product: string, rev: number): void {
    const target = productPeerKey(product, entry.peerId)
    this.#remove(key, false)
    this.#write(key, null)
    const current = this.#entries.get(target)
    if (current && current.at >= entry.at) return
    const named: PeerEntry = { ...entry, product, rev }
    this.#store(target, named)
    this.#persistedExpires.set(target, named.expires)
    this.#write(target, named)
  }

  /** Applies one change seen in the bucket: a batch of another instance, a mapping, or a per-peer key of an earlier version. */
  #apply(e: KvWatchEntry): void {
    if (isBatchKey(e.key)) {
      // Our own batches hold what we applied when we wrote them; a batch's deletion changes nothing.
      if (e.operation !== 'PUT' || batchInstance(e.key) === this.#instance) return
      const now = this.#now()
      for (const r of decodeBatch(e.value) ?? []) {
        if (isBatchKey(r.key) || r.key.startsWith('map.')) continue
        if ('peer' in r) this.#applyPut(r.key, r.peer, now)
        else this.#applyRemoval(r.key, r.removed)
      }
      return
    }
    const parts = e.key.split('.')
    if (parts[0] === 'map' && parts.length === 2) {
      if (e.operation !== 'PUT') return
      const m = storedMappingSchema.safeParse(parseJson(e.value))
      if (m.success) this.#learn(parts[1]!, m.data.product, m.data.rev, e.created.getTime(), false)
      return
    }
    if (e.operation !== 'PUT') this.#applyRemoval(e.key, e.created.getTime())
    else this.#applyPut(e.key, parseJson(e.value), this.#now())
  }

  /** Another instance removed `key` at time `at`: it goes unless we hold a newer announce. */
  #applyRemoval(key: string, at: number): void {
    const current = this.#entries.get(key)
    if (current && current.at <= at) this.#remove(key, false)
  }

  /** Another instance stored `value` under `key`: it replaces an older entry, unless removed since or expired. */
  #applyPut(key: string, value: unknown, now: number): void {
    const current = this.#entries.get(key)
    const v = value as { at?: unknown; expires?: unknown } | undefined
    // Most records are older than what we hold: skip them cheaply.
    if (current && typeof v?.at === 'number' && current.at >= v.at) {
      if (typeof v.expires === 'number') this.#persistedExpires.set(key, Math.max(this.#persistedExpires.get(key) ?? 0, v.expires))
      return
    }
    if (typeof v?.at === 'number' && v.at <= (this.#removedAt.get(key) ?? -1)) return
    const parsed = storedPeerSchema.safeParse(value)
    if (!parsed.success || parsed.data.expires <= now) return
    const entry = parsed.data as PeerEntry
    if (!current && this.#entries.size >= this.#maxPeers) return
    const m = entry.product === undefined ? this.#mappings.get(entry.infoHash) : undefined
    if (m) return this.#adopt(key, entry, m.product, m.rev)
    this.#store(key, entry)
    this.#persistedExpires.set(key, entry.expires)
  }

  /**
   * A put (value) or a delete (null) of `key` in the bucket, sent with the next flushWrites():
   * an announce never writes to NATS itself, and a key changed several times between two
   * flushes is written once, as it last was.
   */
  #write(key: string, value: object | null): void {
    if (!this.#writer || this.#closed) return
    this.#unflushed.set(key, value ?? this.#now())
  }

  /**
   * Sends the writes made since the last flush to the bucket: the peers' changes as batches
   * (peer-log.ts), the info-hash mappings as their own keys. Runs every `flushEveryMs(peerTtlMs)`
   * (WRITE_FLUSH_MS, 1 s): so another instance's view lags this one's by at most that, plus the
   * cluster's delivery time. Also deletes this instance's batches whose records have all ended.
   */
  flushWrites(all = false): void {
    const writer = this.#writer
    if (!writer) return
    const now = this.#now()
    while (this.#batchEnds.length > 0 && this.#batchEnds[0]!.at <= now) writer.delete(this.#batchEnds.shift()!.key)
    // At most WRITE_WINDOW batches unacknowledged: the rest waits here, still merged per key, and
    // goes as acks come back. `all` (close) sends everything.
    if (this.#unflushed.size === 0 || (!all && writer.inFlight >= WRITE_WINDOW)) return
    const records: PeerRecord[] = []
    for (const [key, value] of this.#unflushed) {
      if (key.startsWith('map.')) {
        if (typeof value === 'number') writer.delete(key)
        else writer.put(key, Buffer.from(JSON.stringify(value)))
      } else records.push(typeof value === 'number' ? { key, removed: value } : { key, peer: value })
    }
    this.#unflushed.clear()
    // A batch ends when its last record does: a peer at its expiry (at most a TTL from now), a
    // removal once every earlier record of its key has expired (a TTL after it).
    for (const bytes of encodeBatches(records)) {
      const key = batchKey(this.#instance, ++this.#batchSeq)
      writer.put(key, bytes)
      this.#batchEnds.push({ at: now + this.peerTtlMs, key })
    }
  }

  /** Writes made here and not yet sent to the bucket (waiting for the next flush, or for room in the window). */
  get unflushedWrites(): number {
    return this.#unflushed.size
  }
}

/** Of an answer to a node that names its site, the share of peers of that site (the rest keep the site's links to others). */
export const SAME_SITE_SHARE = 0.75

/**
 * Issue 14 item 4: `numwant` peers for an announcer. One that told its site gets peers of its site
 * first — three quarters of the answer, more when there are too few others — then peers of other
 * sites (or none), each part a random sample.
 */
function sameSiteFirst(swarm: PeerSet, numwant: number, input: AnnounceInput, now: number): PeerEntry[] {
  const site = input.site
  if (site === undefined) return swarm.sample(numwant, input.peerId, now)
  const near = swarm.sampleSite(site, Math.ceil(SAME_SITE_SHARE * numwant), input.peerId, now)
  // Peers elsewhere, by rejection from the whole swarm: all of a small one, four times the need of a large one.
  const need = numwant - near.length
  const far = swarm.sample(swarm.size <= 4 * numwant ? swarm.size : 4 * need, input.peerId, now).filter((p) => p.site !== site).slice(0, need)
  if (near.length + far.length >= numwant || near.length < Math.ceil(SAME_SITE_SHARE * numwant)) return [...near, ...far]
  // Few peers elsewhere: the rest of the answer from the site too.
  return [...swarm.sampleSite(site, numwant - far.length, input.peerId, now), ...far]
}

function changed(a: PeerEntry, b: PeerEntry): boolean {
  return a.ip !== b.ip || a.port !== b.port || a.infoHash !== b.infoHash || a.left !== b.left || a.completed !== b.completed || a.publicKey !== b.publicKey || a.rev !== b.rev || a.owner !== b.owner || a.site !== b.site
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    return undefined
  }
}
