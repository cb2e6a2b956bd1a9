// The updater's contract with the roles beside it (R-UPDATER). The network side (proxy, servers,
// and the sharing daemon's peers) implements ReleaseSource; the JetStream alert stream implements
// AlertSink; a run reports an UpdateResult. Shared here so that the sharing daemon and the updater
// never import each other's modules. Tests use a directory.
import type { BlobStore } from '../store/blob-store.ts'
import type { FileEntry } from './manifest.ts'
import type { ChunkRef } from '../formats/tree-node.ts'

export interface ReleaseSource {
  /** Newest revision and the manifest hashes of all revisions (R-WATCH). */
  revisions(product: string): Promise<{ rev: number; manifestSha256: string }[]>
  /** The signed release bytes; the updater verifies them with decodeTrusted (infra/release/release-trust.ts). */
  release(product: string, rev: number): Promise<Uint8Array>
  /**
   * Root documents of version ≥ `from`, as stored (issue 10 item 7). Optional: a source without
   * them leaves the copy on the keys it trusts; the updater verifies every one.
   */
  roots?(from: number): Promise<Array<Uint8Array | string>>
  /**
   * Issue 11 item 8: the revisions an operator pruned from the servers (1 … through; their file
   * contents are gone, their manifests stay), if any. Optional: a source without it never refuses.
   */
  pruned?(product: string): Promise<{ through: number; at: string } | undefined>
  /**
   * Format 2 (docs/formats.md §1.3, §5 step 6): the release document of `rev` (without: the newest)
   * as the servers received it; undefined when the source has none — no server answers format-2
   * requests (an older cluster) or none holds a format-2 release of the product. The updater
   * verifies it under its root. Optional: a source without it is read in format 1.
   */
  release2?(product: string, rev?: number): Promise<Uint8Array | string | undefined>
  /**
   * Issue 15 item 2: this source checks whole files piece by piece against format 1's piece hashes
   * (the swarm's piece protocol), so the run plans in format 1; the format-2 release of the same
   * revision (its `v1` names the manifest) still brings its deltas.
   */
  needsPieceHashes?: boolean
  /**
   * This source checks a file larger than one piece chunk by chunk (the swarm: each piece from a
   * peer is checked on arrival), so a format-2 run passes such a file's chunk list, from its
   * signed tree, in fetchBlob's `chunks`.
   */
  piecesByChunks?: boolean
  /** Format-2 tree nodes by hash (`upswarm.proxy.nodes`); each is checked against its name by the caller too. */
  nodes?(product: string, hashes: string[]): Promise<Map<string, Uint8Array>>
  /**
   * Issue 15: an object by its SHA-256 (a delta or a compressed file the release's delta index
   * lists), `length` bytes, into `into` (committed only once it hashes to its name), from servers
   * or peers — a peer serves the deltas it keeps like any blob (item 2). Optional: a source
   * without it fetches changed files whole.
   */
  unit?(product: string, sha256: string, length: number, into: BlobStore, opts: { signal?: AbortSignal; threads: number }): Promise<FetchedBlob>
  /**
   * The largest delta or compressed copy `unit` should be asked for; a larger one is passed over
   * and the file fetched as a file. The swarm's: one piece — its peers can send and check a unit
   * of one piece, while a larger one would come whole from the servers to every client at once.
   */
  unitMax?: number
  /**
   * Issue 15: `length` bytes at `offset` of blob `sha256` (a chunk of a format-2 file, §1.7),
   * checked against `expected` (the chunk's SHA-256) before it is returned. Optional.
   */
  range?(product: string, sha256: string, offset: number, length: number, expected: string): Promise<Uint8Array>
  /** The newest fresh statement of a product, if the source has one (docs/formats.md §1.4). */
  fresh?(product: string): Promise<Uint8Array | string | undefined>
  /**
   * Fetches a whole blob into the store (BlobStore.put / commitFile check its SHA-256); returns
   * where the bytes came from, and `verified: true` when the commit also checked size and SHA-1
   * against `entry` (R-VERIFY done: the updater does not read the blob again).
   */
  fetchBlob(entry: FileEntry, into: BlobStore, opts: { signal?: AbortSignal; threads: number; chunks?: readonly ChunkRef[] }): Promise<FetchedBlob>
  /**
   * Issue 13 item 4: many small units at once (a server's `units` request), each checked against
   * its SHA-256; what is not returned is fetched the per-file way. Optional.
   */
  units?(product: string, hashes: readonly string[], opts?: { bulk?: boolean }): Promise<Map<string, Uint8Array>>
  /**
   * How the download phase should order and overlap the files it fetches (asked once per
   * run). A swarm source staggers its clients: each starts with the files of its own stripe,
   * so that concurrent clients fetch different files from the servers and then trade them.
   * Without it: 4 files at once, in plan order.
   */
  schedule?(): DownloadSchedule
}

export interface FetchedBlob {
  bytesFromServers: number
  bytesFromPeers: number
  verified?: boolean
}

export interface DownloadSchedule {
  /** Files fetched at once. */
  concurrency: number
  /** Lower first; entries compare by it (ties keep the plan's order). */
  rank(entry: FileEntry): number
}

/** What a local entry or a manifest entry is, as an alert reports it. */
export type EntrySummary =
  | { kind: 'file'; size: number; mode: number; sha1: string; sha256: string }
  | { kind: 'symlink'; target: string }
  | { kind: 'dir' }
  | { kind: 'other' }

/** What the updater reports to the administrators. */
export type AnyUpdaterAlert = UpdaterAlert | HealthAlert

/**
 * Issue 16 item 2: revision `rev` was installed, failed its health check (or post-install hook, or
 * the check ran past its time), and the working copy went back to `to`.
 */
export interface HealthAlert {
  type: 'health'
  product: string
  clientId: string
  rev: number
  to: number
  phase: 'postInstall' | 'health'
  reason: string
  /** ISO 8601. */
  at: string
}

/** R-STATUS-3: a file modified by hand AND out of date, reported to the administrators. */
export interface UpdaterAlert {
  type: 'conflict'
  product: string
  clientId: string
  path: string
  /** The working copy's installed revision. */
  rev: number
  /** The revision being installed. */
  targetRev: number
  /** The entry of the revision being installed; null when that revision deletes the path. */
  expected: EntrySummary | null
  /** What is on disk. */
  found: EntrySummary | null
  /** ISO 8601. */
  at: string
}

export interface AlertSink {
  publish(alert: AnyUpdaterAlert): Promise<void>
}

export interface AlertReport {
  /** Conflicting paths of this run whose alert reached the administrators. */
  delivered: string[]
  /** Conflicting paths of this run whose alert did not, and why; kept for the next connected run. */
  undelivered: { path: string; reason: string }[]
  /** Alerts of earlier runs delivered by this one. */
  earlierDelivered: number
  /** Alerts still waiting in the working copy's metadata after this run. */
  pending: number
}

/** What one update, checkout or rollback run did. */
export interface UpdateResult {
  from: number
  to: number
  /** Files and symlinks replaced by their new version. */
  updated: number
  /** Files and symlinks that were missing and were checked out. */
  checkedOut: number
  /** Files and symlinks deleted because the revision no longer has them. */
  removed: number
  /** Paths changed by hand and out of date (left alone unless --on-conflict=overwrite). */
  conflicts: string[]
  /**
   * Paths of the target revision left uninstalled because something the user keeps is in the
   * way (a file where the release has a directory, a symlink over a release directory): the
   * run is partial. Each one also has a warning.
   */
  blocked: string[]
  /** Whether the conflicts' alerts reached the administrators (R-STATUS-3). */
  alerts: AlertReport
  bytesFromServers: number
  bytesFromPeers: number
  /**
   * Which signed format the target revision was read in (docs/formats.md §5 step 6): 2 = a
   * format-2 release and its tree; 1 = a format-1 manifest (an older cluster, or a product that
   * publishes format 1 only).
   */
  format: 1 | 2
  /** Format 2: the tree nodes this run fetched (those of the directories that changed). */
  treeNodes?: { nodes: number; bytes: number; requests: number }
  /**
   * Issue 15: files rebuilt from a delta or a compressed copy instead of fetched whole: how many,
   * the bytes fetched for them (counted in `bytesFromServers`), the bytes of the files they made,
   * and deltas that failed (each fell back to the whole file, with a warning); `chunked` of the
   * files were made from chunks this copy held plus the chunks it lacked.
   */
  deltas?: { files: number; bytes: number; fileBytes: number; failed: number; chunked: number }
  warnings: string[]
}
