// A working copy on disk (ARCHITECTURE §4): the installed tree plus its metadata folder.
// Opening one reads its configuration and state; callers hold its lock and have run recovery.
import { mkdir } from 'node:fs/promises'
import { UpswarmError } from '../../errors.ts'
import { keyIdOf } from '../../formats/key-id.ts'
import { TrustStore } from '../../formats/trust-store.ts'
import type { ReleaseKeys } from '../../release/release-trust.ts'
import type { Entry, SignedRelease } from '../../release/manifest.ts'
import { BlobStore } from '../blob-store.ts'
import { layoutOf, type WorkingCopyLayout } from './layout.ts'
import { ManifestStore } from './manifest-store.ts'
import { initialState, readConfig, readState, writeConfig, writeState, type WorkingCopyConfig, type WorkingCopyState } from './meta.ts'

export class WorkingCopy {
  readonly layout: WorkingCopyLayout
  readonly config: WorkingCopyConfig
  state: WorkingCopyState
  readonly manifests: ManifestStore
  readonly history: BlobStore
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
    this.history = new BlobStore(layout.history)
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

  /** Entries of a revision by path; revision 0 is the empty tree. */
  async entries(rev: number): Promise<Map<string, Entry>> {
    if (rev === 0) return new Map()
    return new Map((await this.release(rev)).manifest.entries.map((e) => [e.path, e]))
  }
}
