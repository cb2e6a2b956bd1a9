// Where everything of a working copy lives (ARCHITECTURE §4): the installed tree plus the
// metadata folder META_DIR inside it. Only this file knows the folder's layout.
import { join } from 'node:path'
import { META_DIR } from '../../release/manifest-core.ts'

export interface WorkingCopyLayout {
  /** The installed tree. */
  root: string
  meta: string
  config: string
  state: string
  /** Verified signed releases, one file per revision. */
  manifests: string
  ignore: string
  /** The binary stat index (stat-index.ts): stat data, content hashes and the last statuses. */
  statCache: string
  /** The last status in short, for the file monitor's no-op answer (status-summary.ts). */
  statusSummary: string
  /** BlobStore of the file versions of the last K revisions (R-ROLLBACK S143–S144). */
  history: string
  /** New files ready to be renamed into the tree (`new/`) and replaced ones (`old/`). */
  staging: string
  journal: string
  lock: string
  /** Administrators' alerts not delivered yet (no connection, a failed publish): sent on the next connected run. */
  pendingAlerts: string
  /** The root of trust chain and newest fresh statements this copy verified (infra/formats/trust-store.ts). */
  trust: string
  /** Where the copy gets releases from, as `init` was told (sources.ts). */
  sources: string
  /** Peers the sharing daemon last reached, to dial when nothing else answers (infra/swarm/address-book.ts). */
  peers: string
  /** Format-2 release documents as received, one file per revision (docs/formats.md §1.3). */
  releases2: string
  /** Format-2 tree nodes, content-addressed (`<2 hex>/<sha256>`), checked against their names on read. */
  nodes: string
  /** Temporary files of atomic writes; wiped by recovery. */
  tmp: string
  /** The file monitor's socket (actors/monitor), which `status` asks what changed. */
  monitorSocket: string
  /** The file monitor's cookie files (tree-watch.ts). */
  monitorCookies: string
  /** The sharing daemon's control socket (control-wire.ts), through which `update` hands it the run. */
  controlSocket: string
}

export function layoutOf(root: string): WorkingCopyLayout {
  const meta = join(root, META_DIR)
  return {
    root,
    meta,
    config: join(meta, 'config.json'),
    state: join(meta, 'state.json'),
    manifests: join(meta, 'manifests'),
    ignore: join(meta, 'ignore'),
    statCache: join(meta, 'index'),
    statusSummary: join(meta, 'index-summary.json'),
    history: join(meta, 'history'),
    staging: join(meta, 'staging'),
    journal: join(meta, 'journal.json'),
    lock: join(meta, 'lock'),
    pendingAlerts: join(meta, 'alerts-pending.json'),
    trust: join(meta, 'trust.json'),
    sources: join(meta, 'sources.json'),
    peers: join(meta, 'peers.json'),
    releases2: join(meta, 'releases2'),
    nodes: join(meta, 'nodes'),
    tmp: join(meta, 'tmp'),
    monitorSocket: join(meta, 'monitor.sock'),
    monitorCookies: join(meta, 'monitor'),
    controlSocket: join(meta, 'daemon.sock'),
  }
}

/** Absolute path of a manifest path (POSIX, relative) inside the tree. */
export function treePath(layout: WorkingCopyLayout, rel: string): string {
  return join(layout.root, ...rel.split('/'))
}

/** The stored signed release of a revision (manifest-store.ts). */
export function manifestFile(layout: WorkingCopyLayout, rev: number): string {
  return join(layout.manifests, `${rev}.json`)
}
