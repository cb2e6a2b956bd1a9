// A repository server's format-2 state (docs/formats.md §5 step 5; issue 13 item 3): the verified
// release documents of every product, as received, under `meta2/releases/<product>/<rev>.json`,
// and the last UPSWARM_META sequence handled. Tree nodes live in the server's blob store beside
// the whole-file blobs (both are named by SHA-256); the set of node hashes reachable from the
// held releases is what `nodes` serves. Written atomically, as the format-1 state is.
import { mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseRelease, type SignedRelease2 } from '../../infra/formats/release.ts'
import { walkReachable } from '../../infra/formats/tree-objects.ts'
import { addReleaseRefs } from '../../infra/formats/tree-refs.ts'
import { isUpswarmError } from '../../infra/errors.ts'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import { writeFileAtomic } from '../../infra/store/working-copy/atomic.ts'

export interface HeldRelease2 {
  text: string
  signed: SignedRelease2
}

/** `meta2/state.json`: the last UPSWARM_META sequence handled, and the ranges pruned (issue 15). */
interface Meta2State { lastSeq: number; pruned?: Record<string, number> }

export class Meta2Store {
  private readonly dir: string
  private readonly tmpDir: string
  private state: Meta2State = { lastSeq: 0 }
  private readonly releases = new Map<string, Map<number, HeldRelease2>>()
  /** Every node reachable from a held release: what `nodes` answers. */
  private readonly nodes = new Set<string>()

  constructor(serverDir: string, private readonly blobs: BlobStore) {
    this.dir = join(serverDir, 'meta2')
    this.tmpDir = join(serverDir, 'tmp')
  }

  /** Loads the held releases and, from the blob store, the nodes their trees reach (each checked again). */
  async open(): Promise<void> {
    await mkdir(join(this.dir, 'releases'), { recursive: true })
    try {
      this.state = JSON.parse(await readFile(join(this.dir, 'state.json'), 'utf8')) as Meta2State
    } catch {
      this.state = { lastSeq: 0 }
    }
    for (const product of await readdir(join(this.dir, 'releases'))) {
      for (const name of await readdir(join(this.dir, 'releases', product))) {
        if (!name.endsWith('.json')) continue
        const text = await readFile(join(this.dir, 'releases', product, name), 'utf8')
        const signed = parseRelease(text, `local store ${this.dir}`)
        // A pruned revision is kept as its document only: its nodes may be gone.
        if (this.isPruned(signed.release.product, signed.release.rev)) {
          this.remember({ text, signed }, [])
          continue
        }
        let nodes: Map<string, Uint8Array>
        try {
          ({ nodes } = await walkReachable(signed.release.tree, (h) => this.readNode(h)))
        } catch {
          // Nodes gone: a prune stopped between its deletions and markPruned (or a damaged store).
          // The document stays, so the chain does; its nodes are not served, nor counted.
          this.remember({ text, signed }, [])
          continue
        }
        // Issue 15: its delta-index nodes are served by `nodes` too (copied before the release was kept).
        this.remember({ text, signed }, [...nodes.keys(), ...(signed.release.deltas ?? [])])
      }
    }
  }

  /** Issue 15: revisions an operator pruned (`upswarm prune`), as this store last applied them. */
  isPruned(product: string, rev: number): boolean {
    return rev <= (this.state.pruned?.[product] ?? 0)
  }

  /**
   * The objects the held releases reference, split by `pruned` (tree-refs.ts): what only pruned
   * revisions use may go. A pruned revision whose nodes are gone already names nothing more.
   */
  async references(pruned: (product: string, rev: number) => boolean, candidates: Set<string>, kept: Set<string>): Promise<void> {
    for (const [product, revs] of this.releases) {
      for (const [rev, held] of revs) {
        const side = pruned(product, rev) ? candidates : kept
        if (side === candidates && this.isPruned(product, rev)) continue
        try {
          await addReleaseRefs({ tree: held.signed.release.tree, deltas: held.signed.release.deltas, packs: held.signed.release.packs }, (h) => this.readNode(h), side, `r${rev} of ${product} (${this.dir})`)
        } catch (err) {
          // Pruned, and stopped halfway last time: what is gone needs no count.
          if (side === candidates && isUpswarmError(err, 'UPSWARM_E_NOT_FOUND')) continue
          throw err
        }
      }
    }
  }

  /** Records the pruned ranges once their objects are gone; `removed` are no longer served. */
  async markPruned(ranges: Record<string, number>, removed: Iterable<string>): Promise<void> {
    for (const h of removed) this.nodes.delete(h)
    const pruned = { ...this.state.pruned }
    for (const [p, through] of Object.entries(ranges)) pruned[p] = Math.max(pruned[p] ?? 0, through)
    this.state = { ...this.state, pruned }
    await writeFileAtomic(join(this.dir, 'state.json'), JSON.stringify(this.state), this.tmpDir)
  }

  get lastSeq(): number {
    return this.state.lastSeq
  }

  /** Newest held format-2 revision per product (the heartbeat's `synced2`). */
  get synced(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [product, revs] of this.releases) out[product] = Math.max(...revs.keys())
    return out
  }

  release(product: string, rev?: number): HeldRelease2 | undefined {
    const revs = this.releases.get(product)
    if (!revs) return undefined
    return revs.get(rev ?? Math.max(...revs.keys()))
  }

  hasNode(hash: string): boolean {
    return this.nodes.has(hash)
  }

  /** A held node's bytes from the blob store. */
  async readNode(hash: string): Promise<Uint8Array> {
    const size = await this.blobs.size(hash)
    if (size === undefined) throw new Error(`node ${hash} is not in ${this.blobs.path(hash)}`)
    return this.blobs.readRange(hash, 0, size)
  }

  /** Records a verified, fully copied release and the nodes its tree reaches. */
  async record(seq: number, held: HeldRelease2, nodes: Iterable<string>): Promise<void> {
    const { product, rev } = held.signed.release
    const dir = join(this.dir, 'releases', product)
    await mkdir(dir, { recursive: true })
    await writeFileAtomic(join(dir, `${rev}.json`), held.text, this.tmpDir)
    this.remember(held, nodes)
    await this.passed(seq)
  }

  /** A message handled without a release to keep (refused, or not a release). */
  async passed(seq: number): Promise<void> {
    if (seq <= this.state.lastSeq) return
    this.state = { ...this.state, lastSeq: seq }
    await writeFileAtomic(join(this.dir, 'state.json'), JSON.stringify(this.state), this.tmpDir)
  }

  private remember(held: HeldRelease2, nodes: Iterable<string>): void {
    const { product, rev } = held.signed.release
    let revs = this.releases.get(product)
    if (!revs) this.releases.set(product, (revs = new Map()))
    revs.set(rev, held)
    for (const h of nodes) this.nodes.add(h)
  }
}
