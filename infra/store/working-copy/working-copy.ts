// A working copy on disk (ARCHITECTURE §4): the installed tree plus its metadata folder.
// Opening one reads its configuration and state; callers hold its lock and have run recovery.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { UpswarmError } from '../../errors.ts'
import { keyIdOf } from '../../formats/key-id.ts'
import { TrustStore } from '../../formats/trust-store.ts'
import type { ReleaseKeys } from '../../release/release-trust.ts'
import type { Entry, SignedRelease } from '../../release/manifest.ts'
import { BlobStore } from '../blob-store.ts'
import { PackStore } from '../pack-store.ts'
import { layoutOf, type WorkingCopyLayout } from './layout.ts'
import { ManifestStore } from './manifest-store.ts'
import { TreeStore } from './tree-store.ts'
// The format-2 codecs (zod, the envelope) load only when a format-2 revision is read: `status
// --offline` of a format-1 copy stays without them (issue 13 item 1, test/integration/startup-modules).
import type { SignedRelease2 } from '../../formats/release.ts'
import type { TreeNode } from '../../formats/tree-node.ts'
import { initialState, readConfig, readState, writeConfig, writeState, type WorkingCopyConfig, type WorkingCopyState } from './meta.ts'

/** Decoded tree nodes a working copy keeps between walks (a node may hold thousands of entries). */
const DECODED_NODES_MAX = 50_000

export class WorkingCopy {
  readonly layout: WorkingCopyLayout
  readonly config: WorkingCopyConfig
  state: WorkingCopyState
  readonly manifests: ManifestStore
  readonly history: BlobStore
  /** Format-2 release documents and tree nodes (docs/formats.md §1.3, §1.6). */
  readonly trees: TreeStore
  /** Format-2 nodes checked and decoded by this process's walks, by hash (walkTree). */
  private readonly decodedNodes = new Map<string, TreeNode>()
  /** The root of trust chain and fresh statements this copy verified (issue 10 item 7); empty for a copy that pinned only a key. */
  readonly trust: TrustStore

  private constructor(layout: WorkingCopyLayout, config: WorkingCopyConfig, state: WorkingCopyState, trust: TrustStore) {
    this.layout = layout
    this.config = config
    this.state = state
    this.trust = trust
    // Stored releases were verified when accepted; on reading, the signature is checked again
    // (tampering) under the key it names, which must be the pinned key or one the root lists.
    this.manifests = new ManifestStore(layout, (publicKey) => publicKey === config.publicKey || trust.root?.keys[keyIdOf(publicKey)] !== undefined)
    // Issue 13 item 4: small blobs that came by the batch are kept in packs (history/packs), the rest a file each.
    this.history = new BlobStore(layout.history, new PackStore(join(layout.history, 'packs'), join(layout.history, 'tmp')))
    this.trees = new TreeStore(layout)
  }

  static async open(root: string): Promise<WorkingCopy> {
    const layout = layoutOf(root)
    const config = await readConfig(layout)
    return new WorkingCopy(layout, config, await readState(layout), await TrustStore.open(layout.trust, layout.tmp))
  }

  /** Which keys may sign this product's releases: the root's verdict when a root is held, else the pinned key. */
  releaseKeys(): ReleaseKeys {
    return { product: this.config.product, pinnedKey: this.config.publicKey, store: this.trust }
  }

  /** Writes the metadata folder of a new working copy at revision 0 (nothing installed). */
  static async create(root: string, config: WorkingCopyConfig): Promise<WorkingCopy> {
    const layout = layoutOf(root)
    await mkdir(layout.meta, { recursive: true })
    await writeConfig(layout, config)
    const state = initialState()
    await writeState(layout, state)
    return new WorkingCopy(layout, config, state, await TrustStore.open(layout.trust, layout.tmp))
  }

  async saveState(): Promise<void> {
    await writeState(this.layout, this.state)
  }

  /** The verified release of `rev`; refuses when it is not stored locally. */
  async release(rev: number): Promise<SignedRelease> {
    const release = await this.manifests.get(rev)
    if (!release) {
      throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `revision ${rev} of product ${this.config.product} is not known to the working copy ${this.layout.root}`)
    }
    return release
  }

  /**
   * The stored format-2 release of `rev`, verified again under the copy's root (a tampered
   * metadata folder is refused, not trusted), or undefined when none is stored.
   */
  async release2(rev: number): Promise<SignedRelease2 | undefined> {
    const text = await this.trees.release(rev)
    if (text === undefined) return undefined
    const where = this.trees.where(rev)
    const root = this.trust.root
    if (!root) throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${where} is a format-2 release, but ${this.layout.root} holds no root of trust to verify it; delete it and run the command again`)
    const { verifyRelease } = await import('../../formats/release.ts')
    const r = verifyRelease(text, root, where)
    if (r.release.product !== this.config.product || r.release.rev !== rev) {
      throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${where} holds r${r.release.rev} of ${r.release.product}, not r${rev} of ${this.config.product}; delete it and run the command again`)
    }
    return r
  }

  /** Whether the copy holds the signed metadata of `rev` (a format-1 manifest or a format-2 release). */
  async knows(rev: number): Promise<boolean> {
    return (await this.manifests.get(rev)) !== undefined || (await this.trees.release(rev)) !== undefined
  }

  /**
   * The nodes of `rev`'s tree by hash: the stored ones, else (missing or damaged) from `fetch`;
   * without `fetch`, a missing node is an error that says how to get it back. `fetch` must check
   * what it returns as the store's nodes were (checkedNode): readers take them as `held`.
   */
  nodeGetter(rev: number, fetch?: (hash: string) => Promise<Uint8Array>): (hash: string) => Promise<Uint8Array> {
    return async (hash: string): Promise<Uint8Array> => {
      const held = await this.trees.node(hash)
      if (held) return held
      if (fetch) return fetch(hash)
      throw new UpswarmError('UPSWARM_E_WORKING_COPY',
        `tree node ${hash.slice(0, 16)}… of r${rev} is ${this.trees.damaged.has(hash) ? 'damaged' : 'missing'} in ${this.layout.nodes}; run \`upswarm update\` connected to fetch it again`,
        { details: { missingNodeOf: rev, node: hash } })
    }
  }

  /**
   * Entries of a revision by path; revision 0 is the empty tree. A format-1 manifest when one is
   * stored, else the format-2 tree walked from the stored nodes, each checked against the hash its
   * parent names (R-VERIFY); `fetch` supplies nodes that are missing or damaged locally.
   */
  async entries(rev: number, fetch?: (hash: string) => Promise<Uint8Array>): Promise<Map<string, Entry>> {
    if (rev === 0) return new Map()
    const v1 = await this.manifests.get(rev)
    if (v1) return new Map(v1.manifest.entries.map((e) => [e.path, e]))
    const r2 = await this.release2(rev)
    if (!r2) return new Map((await this.release(rev)).manifest.entries.map((e) => [e.path, e]))
    const get = this.nodeGetter(rev, fetch)
    const { walkTree } = await import('../../formats/tree-builder.ts')
    const out = new Map<string, Entry>()
    // A bound on what a long-lived copy keeps (a node holds up to thousands of entries).
    if (this.decodedNodes.size > DECODED_NODES_MAX) this.decodedNodes.clear()
    for (const { content: _content, ...e } of await walkTree(r2.release.tree, get, this.decodedNodes, { held: true })) out.set(e.path, e)
    return out
  }
}
