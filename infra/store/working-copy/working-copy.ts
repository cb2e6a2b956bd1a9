// A working copy on disk (ARCHITECTURE §4): the installed tree plus its metadata folder.
// Opening one reads its configuration and state; callers hold its lock and have run recovery.
import { mkdir } from 'node:fs/promises'
import { UpswarmError } from '../../errors.ts'
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

  private constructor(layout: WorkingCopyLayout, config: WorkingCopyConfig, state: WorkingCopyState) {
    this.layout = layout
    this.config = config
    this.state = state
    this.manifests = new ManifestStore(layout, config.publicKey)
    this.history = new BlobStore(layout.history)
  }

  static async open(root: string): Promise<WorkingCopy> {
    const layout = layoutOf(root)
    return new WorkingCopy(layout, await readConfig(layout), await readState(layout))
  }

  /** Writes the metadata folder of a new working copy at revision 0 (nothing installed). */
  static async create(root: string, config: WorkingCopyConfig): Promise<WorkingCopy> {
    const layout = layoutOf(root)
    await mkdir(layout.meta, { recursive: true })
    await writeConfig(layout, config)
    const state = initialState()
    await writeState(layout, state)
    return new WorkingCopy(layout, config, state)
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
