// Where the updater gets releases and blobs (its ReleaseSource):
// - serverSource: the proxy and the server it assigns, K concurrent ranges (R-ACCEL-1);
// - swarmSource: the same for releases, plus the multi-source download from peers and servers
//   (R-ACCEL-2), with the release feed as the source of releases when no server answers (R-DHT-2).
import type { NatsConnection } from '@nats-io/transport-node'
import { Readable } from 'node:stream'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import { RepoClient, fetchUnit, type RangeReader } from '../../infra/repo-client.ts'
import { PIECE_SIZE, sha256Hex } from '../../infra/release/hash.ts'
import { encodeRelease, type FileEntry, type SignedRelease } from '../../infra/release/manifest.ts'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import { readFresh, readRoots } from '../../infra/formats/meta-stream.ts'
import { fetchMeta, fetchNodes } from '../../infra/formats/meta-wire.ts'
import { isUpswarmError } from '../../infra/errors.ts'
import type { DownloadSchedule, ReleaseSource } from '../../infra/release/source.ts'
import type { HeldReleaseDoc } from '../../infra/formats/release-docs.ts'
import { nodesFromPeers } from './peer-nodes.ts'
import { addStats, emptyStats, fetchBlobMultiSource, layoutOf, stripeOwner, swarmKeysOf, type BlobFetchStats, type MultiSourceDeps } from './multi-source.ts'
import { runLength } from './piece-scheduler.ts'

/** Roots and fresh statements from UPSWARM_META / UPSWARM_FRESH (issue 10 item 7); the updater verifies them. */
export function natsTrustSource(nc: NatsConnection): Required<Pick<ReleaseSource, 'roots' | 'fresh'>> {
  return { roots: (from) => readRoots(nc, from), fresh: (p) => readFresh(nc, p) }
}

/** Bytes of signed metadata a source fetched (release lists, manifests, release documents, tree nodes): the meta bench's figure. */
export interface MetaStats { bytes: number; requests: number }

/**
 * Format 2 from the proxy (docs/formats.md §1.8, §2.2): `release2` answers undefined when no
 * server answers format-2 requests (an older cluster: no responders) or none holds a format-2
 * release of the product, so the updater reads format 1 instead.
 */
export function natsFormat2Source(nc: NatsConnection, meta: MetaStats): Required<Pick<ReleaseSource, 'release2' | 'nodes'>> {
  return {
    async release2(p, rev) {
      try {
        const text = await fetchMeta(nc, { kind: 'release', product: p, ...(rev !== undefined ? { rev } : {}) })
        meta.bytes += Buffer.byteLength(text)
        meta.requests++
        return text
      } catch (err) {
        if (isUpswarmError(err) && ['UPSWARM_E_NO_SERVER', 'UPSWARM_E_UNKNOWN_REVISION', 'UPSWARM_E_NOT_FOUND'].includes(err.code)) return undefined
        throw err
      }
    },
    nodes: (p, hashes) => fetchNodes(nc, p, hashes, undefined, (n) => {
      meta.bytes += n
      meta.requests++
    }),
  }
}

export function serverSource(nc: NatsConnection, product: string): ReleaseSource & { stats: BlobFetchStats; meta: MetaStats } {
  const client = new RepoClient(nc)
  const stats = emptyStats()
  const meta: MetaStats = { bytes: 0, requests: 0 }
  let unitReader: RangeReader | undefined
  return {
    stats,
    meta,
    ...natsTrustSource(nc),
    ...natsFormat2Source(nc, meta),
    async revisions(p) {
      const list = await client.revisions(p)
      meta.bytes += Buffer.byteLength(JSON.stringify(list))
      meta.requests++
      return list.revs.map((r) => ({ rev: r.rev, manifestSha256: r.manifestSha256 }))
    },
    async release(p, rev) {
      const bytes = await client.release(p, rev)
      meta.bytes += bytes.byteLength
      meta.requests++
      return bytes
    },
    pruned: async (p) => (await client.revisions(p)).pruned,
    async fetchBlob(entry, into, opts) {
      // Into the working copy's history store: its run fsyncs the copy it stages in the tree, and
      // a later run hashes the blob again before using it (checkLocal), so no fsync of its own.
      // A file of one piece or less: the run's assignment (issue 15 item 4: a proxy round trip per
      // small file was a tenth of a small update); a larger one asks for its own, so they spread.
      const reader = entry.size <= PIECE_SIZE ? (unitReader ??= client.rangeReader(product)) : undefined
      const r = await client.fetchBlob(product, entry, into, { ...opts, sync: false, ...(reader ? { reader } : {}) })
      stats.bytesFromServers += r.bytesFromServers
      return { bytesFromServers: r.bytesFromServers, bytesFromPeers: 0, verified: true }
    },
    async range(p, sha256, offset, length, expected) {
      unitReader ??= client.rangeReader(p)
      const bytes = await unitReader.readPiece(sha256, offset, length, expected)
      stats.bytesFromServers += bytes.length
      return bytes
    },
    async units(p, hashes, opts) {
      unitReader ??= client.rangeReader(p)
      const got = await unitReader.readUnits(hashes, opts)
      for (const b of got.values()) stats.bytesFromServers += b.length
      return got
    },
    async unit(p, sha256, length, into, opts) {
      if (await into.has(sha256)) return { bytesFromServers: 0, bytesFromPeers: 0 }
      // One assignment for the run's units: a delta costs its bytes, not a proxy round trip too.
      unitReader ??= client.rangeReader(p)
      const bytes = await fetchUnit(unitReader, sha256, length, opts)
      await into.put(sha256, Readable.from([bytes]), `server ${unitReader.servers.join(', ')}`, length)
      stats.bytesFromServers += bytes.length
      return { bytesFromServers: bytes.length, bytesFromPeers: 0 }
    },
  }
}

/** Releases known without a server (the release feed, the release stream), for when no server answers. */
export interface FeedReleases {
  list(product: string): { rev: number; manifestSha256: string }[]
  get(product: string, rev: number): Promise<SignedRelease | undefined>
}

export function swarmSource(opts: {
  nc: NatsConnection | undefined
  product: string
  deps: Omit<MultiSourceDeps, 'server' | 'pieceSize' | 'startedAt'>
  feed?: FeedReleases
  /**
   * The newest format-2 release document the daemon verified (from the servers or a peer): what
   * `release2` answers when no server does, its tree nodes then coming from peers (R-DHT-2).
   */
  releaseDocs?: { newest(product: string): HeldReleaseDoc | undefined }
  /** Files fetched at once (default 16). */
  files?: number
  log?: (msg: string) => void
}): ReleaseSource & { stats: BlobFetchStats } {
  const client = opts.nc ? new RepoClient(opts.nc) : undefined
  const stats = emptyStats()
  const startedAt = Date.now()
  // Without NATS, roots and fresh statements come from peers (the statements channel) into the copy's store.
  const trust = opts.nc ? natsTrustSource(opts.nc) : {}
  const fromFeed = (why: unknown): { rev: number; manifestSha256: string }[] => {
    const list = opts.feed?.list(opts.product) ?? []
    if (list.length === 0) throw why instanceof Error ? why : new UpswarmError('UPSWARM_E_NO_SERVER', 'no server and no release feed to ask for revisions')
    opts.log?.(`servers unavailable (${errorMessage(why)}); using the release feed from peers`)
    return list
  }
  const nats2 = opts.nc ? natsFormat2Source(opts.nc, { bytes: 0, requests: 0 }) : undefined
  const heldDoc = (p: string, rev: number | undefined): string | undefined => {
    const held = opts.releaseDocs?.newest(p)
    return held && (rev === undefined || held.rev === rev) ? held.text : undefined
  }
  return {
    stats,
    ...trust,
    // Format 2 when the servers have it: a larger file's pieces from peers are checked by its chunk
    // hashes (piece-layout.ts), so the run needs no format-1 manifest. Without a server, the
    // release document the daemon holds (from the servers earlier, or from a peer on the
    // statements channel) and tree nodes from peers: a product without format-1 manifests
    // updates from peers alone (issue 13 item 3, R-DHT-2).
    async release2(p, rev) {
      if (nats2) {
        try {
          const text = await nats2.release2(p, rev)
          if (text !== undefined) return text
        } catch (err) {
          const held = heldDoc(p, rev)
          if (held === undefined) throw err
          opts.log?.(`servers unavailable (${errorMessage(err)}); using the release document from peers`)
          return held
        }
      }
      return heldDoc(p, rev)
    },
    async nodes(p, hashes) {
      if (nats2) {
        try {
          return await nats2.nodes(p, hashes)
        } catch (err) {
          if (opts.deps.peers.all().length === 0) throw err
          opts.log?.(`servers unavailable for ${hashes.length} tree node(s) (${errorMessage(err)}); asking peers`)
        }
      }
      return nodesFromPeers(opts.deps.peers, hashes)
    },
    piecesByChunks: true,
    async revisions(p) {
      if (!client) return fromFeed(new UpswarmError('UPSWARM_E_NO_SERVER', 'no NATS connection'))
      try {
        return (await client.revisions(p)).revs.map((r) => ({ rev: r.rev, manifestSha256: r.manifestSha256 }))
      } catch (err) {
        return fromFeed(err)
      }
    },
    async release(p, rev) {
      let why: unknown = new UpswarmError('UPSWARM_E_NO_SERVER', 'no NATS connection')
      if (client) {
        try {
          return await client.release(p, rev)
        } catch (err) {
          why = err
        }
      }
      const r = await opts.feed?.get(p, rev)
      if (!r) throw why
      return encodeRelease(r)
    },
    // Without a server nobody says what was pruned: peers may still hold those revisions.
    pruned: async (p) => (client ? (await client.revisions(p)).pruned : undefined),
    // Issue 15 item 2: a delta (or compressed copy) of one piece or less comes from peers that
    // keep it (their history store, announced in `have` like any blob) or the servers, checked
    // against its name, striped like a file: clients updating together ask the servers for
    // different units and trade them (every client taking each unit from the servers at once cost
    // 2.6 F of origin bytes at N = 8, docs/decisions.md "The swarm plans in format 2"). A larger one
    // is passed over (unitMax): its file comes through the swarm instead.
    unitMax: PIECE_SIZE,
    async unit(p: string, sha256: string, length: number, into: BlobStore, o: { signal?: AbortSignal; threads: number }) {
      if (await into.has(sha256)) return { bytesFromServers: 0, bytesFromPeers: 0 }
      if (length <= PIECE_SIZE) {
        // A unit has no SHA-1 of its own: the commit checks its SHA-256 and size.
        const unit = { path: `(delta ${sha256.slice(0, 16)}…)`, kind: 'file', mode: 0o644, size: length, sha256, sha1: undefined as unknown as string } satisfies FileEntry
        const s = await fetchBlobMultiSource(unit, into, { ...opts.deps, server: client?.rangeReader(p), pieceSize: PIECE_SIZE, startedAt, sync: false }, o.signal)
        addStats(stats, s)
        return { bytesFromServers: s.bytesFromServers, bytesFromPeers: s.bytesFromPeers }
      }
      if (!client) throw new UpswarmError('UPSWARM_E_NO_SERVER', `delta ${sha256} (${length} bytes) comes from the servers, and there is no NATS connection`)
      const reader = client.rangeReader(p)
      const bytes = await fetchUnit(reader, sha256, length, o)
      await into.put(sha256, Readable.from([bytes]), `server ${reader.servers.join(', ')}`, length)
      stats.bytesFromServers += bytes.length
      return { bytesFromServers: bytes.length, bytesFromPeers: 0 }
    },
    schedule: (): DownloadSchedule => swarmSchedule(opts.deps.selfKey, opts.deps.peers, opts.files ?? 16),
    async fetchBlob(entry: FileEntry, into: BlobStore, o) {
      let layout
      try {
        // In a swarm larger than the view, shorter runs (issue 14 item 3: piece-scheduler.ts LARGE_SWARM_RUN).
        const run = runLength(opts.deps.swarmSize?.(), swarmKeysOf(opts.deps.selfKey, opts.deps.peers).length, PIECE_SIZE)
        layout = layoutOf(entry, PIECE_SIZE, o.chunks, run)
      } catch (err) {
        // A chunk list that does not describe the file (a publisher's bug): no piece can be checked alone.
        opts.log?.(`${errorMessage(err)}; fetching ${entry.path} from the servers, checked whole`)
      }
      if (!layout) {
        // A larger format-2 file whose chunk list the run did not pass: from the servers, checked whole.
        if (!client) throw new UpswarmError('UPSWARM_E_NO_SERVER', `${entry.path} (blob ${entry.sha256}) has no chunk list to check pieces from peers by, and there is no NATS connection`)
        const r = await client.fetchBlob(opts.product, entry, into, { ...o, sync: false })
        stats.bytesFromServers += r.bytesFromServers
        return { bytesFromServers: r.bytesFromServers, bytesFromPeers: 0, verified: true }
      }
      const s = await fetchBlobMultiSource(entry, into, {
        ...opts.deps,
        server: client?.rangeReader(opts.product),
        pieceSize: PIECE_SIZE,
        startedAt,
        // The history store: as the server source's downloads, not fsynced (BlobStore.commitFile).
        sync: false,
      }, o.signal, layout)
      addStats(stats, s)
      return { bytesFromServers: s.bytesFromServers, bytesFromPeers: s.bytesFromPeers, verified: true }
    },
  }
}

/**
 * Staggered clients: each fetches first the files with a piece in its own stripe (see
 * fetchBlobMultiSource), in an order of its own, so that N clients starting together ask the
 * servers for N different sets of files and then trade them, instead of all waiting on the same
 * few files.
 */
export function swarmSchedule(selfKey: string, peers: MultiSourceDeps['peers'], files: number): DownloadSchedule {
  const keys = swarmKeysOf(selfKey, peers)
  return {
    concurrency: files,
    rank(entry) {
      const pieces = Math.max(1, Math.ceil(entry.size / PIECE_SIZE))
      let own = false
      for (let i = 0; i < pieces && !own; i++) own = stripeOwner(entry.sha256, i, keys) === selfKey
      const shuffle = parseInt(sha256Hex(`${selfKey}:${entry.sha256}`).slice(0, 8), 16) / 2 ** 32
      return (own ? 0 : 1) + shuffle
    },
  }
}
