// A repository server's local state: the content-addressed blob store, the verified signed
// releases of every product, and which revisions are synced. Written atomically (tmp + fsync +
// rename + directory fsync) so a killed server restarts with a consistent view.
import { mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../../infra/store/working-copy/atomic.ts'
import { BlobStore } from '../../infra/store/blob-store.ts'
import { PackStore } from '../../infra/store/pack-store.ts'
import { blobsOf, decodeSelfSigned, manifestSha256, type SignedRelease } from '../../infra/release/manifest.ts'

export interface RepoState {
  /** Stream sequence of the last release message processed. */
  lastSeq: number
  /** The key of each product's newest synced release (the feed the server seeds). */
  keys: Record<string, string>
  synced: Record<string, number>
  /**
   * Stream sequences of releases skipped because their product was not pinned in the trust
   * file, by product: examined again once the trust file pins the product.
   */
  awaitingPin?: Record<string, number[]>
  /** Releases that failed every try (issue 11 item 6): retried on the server's schedule, shown by `stats`. */
  parked?: ParkedRelease[]
  /**
   * Issue 11 item 8: per product, the revisions an operator pruned (1 … through) and when; their
   * manifests are kept and served, their file contents are not.
   */
  pruned?: Record<string, PrunedRange>
  /** The last PRUNE_STREAM sequence applied. */
  pruneSeq?: number
}

export interface PrunedRange {
  through: number
  /** ISO 8601: when the operator pruned. */
  at: string
}

export interface ParkedRelease {
  seq: number
  product: string
  rev: number
  reason: string
  /** ISO 8601: when it was parked (or last tried again). */
  at: string
}

export interface RevisionInfo {
  rev: number
  manifestSha256: string
  label: string | null
  createdAt: string
}

export class RepoStore {
  readonly dir: string
  readonly blobs: BlobStore
  /** Temporary files of the atomic writes (same file system as their targets). */
  private readonly tmpDir: string
  private state: RepoState = { lastSeq: 0, keys: {}, synced: {} }
  private readonly releases = new Map<string, Map<number, { bytes: Buffer; release: SignedRelease; sha: string }>>()

  constructor(dir: string) {
    this.dir = dir
    // Issue 13 item 4: units of format-2 packs are served from the packs they came in.
    this.blobs = new BlobStore(join(dir, 'blobs'), new PackStore(join(dir, 'packs')))
    this.tmpDir = join(dir, 'tmp')
  }

  /**
   * Loads the state and every stored release. Each was checked against the trusted keys before
   * it was written; here its signature is checked again, under the key it names.
   */
  async open(): Promise<void> {
    await mkdir(join(this.dir, 'releases'), { recursive: true })
    await this.blobs.packs!.open()
    try {
      this.state = JSON.parse(await readFile(join(this.dir, 'state.json'), 'utf8')) as RepoState
    } catch {
      this.state = { lastSeq: 0, keys: {}, synced: {} }
    }
    for (const product of await readdir(join(this.dir, 'releases'))) {
      if (!this.state.keys[product]) continue
      for (const name of await readdir(join(this.dir, 'releases', product))) {
        if (!name.endsWith('.json')) continue
        const bytes = await readFile(join(this.dir, 'releases', product, name))
        const release = decodeSelfSigned(bytes, `local store ${this.dir}`)
        if (release.manifest.rev <= (this.state.synced[product] ?? 0)) this.remember(bytes, release)
      }
    }
  }

  get lastSeq(): number {
    return this.state.lastSeq
  }

  get synced(): Record<string, number> {
    return { ...this.state.synced }
  }

  keyOf(product: string): string | undefined {
    return this.state.keys[product]
  }

  /** Releases skipped because their product was not pinned: product → stream sequences, oldest first. */
  get awaitingPin(): Record<string, number[]> {
    return { ...this.state.awaitingPin }
  }

  release(product: string, rev: number): { bytes: Buffer; release: SignedRelease; sha: string } | undefined {
    return this.releases.get(product)?.get(rev)
  }

  /** The revisions whose file contents this server holds and serves (pruned ones are left out). */
  revisions(product: string): RevisionInfo[] {
    const revs = [...(this.releases.get(product)?.values() ?? [])].filter(({ release }) => !this.isPruned(product, release.manifest.rev))
    return revs
      .map(({ release, sha }) => ({
        rev: release.manifest.rev,
        manifestSha256: sha,
        label: release.manifest.label ?? null,
        createdAt: release.manifest.createdAt,
      }))
      .sort((a, b) => a.rev - b.rev)
  }

  products(): string[] {
    return [...this.releases.keys()]
  }

  get pruned(): Record<string, PrunedRange> {
    return { ...this.state.pruned }
  }

  get pruneSeq(): number {
    return this.state.pruneSeq ?? 0
  }

  isPruned(product: string, rev: number): boolean {
    return rev <= (this.state.pruned?.[product]?.through ?? 0)
  }

  /**
   * Issue 11 item 8: records the pruned ranges (they only grow) and removes every blob of a
   * pruned revision that no kept revision of any product names. Returns what was removed.
   */
  async applyPrunes(ranges: Record<string, PrunedRange>, seq: number, more?: (isPruned: (product: string, rev: number) => boolean, candidates: Set<string>, kept: Set<string>) => Promise<void>): Promise<{ removed: string[]; bytes: number }> {
    const pruned = { ...this.state.pruned }
    for (const [product, range] of Object.entries(ranges)) {
      if (range.through > (pruned[product]?.through ?? 0)) pruned[product] = range
    }
    const isPruned = (product: string, rev: number): boolean => rev <= (pruned[product]?.through ?? 0)
    const candidates = new Set<string>()
    const kept = new Set<string>()
    // Issue 15: what the format-2 releases reference (their nodes, blobs and deltas) counts too.
    await more?.(isPruned, candidates, kept)
    for (const [product, revs] of this.releases) {
      for (const { release } of revs.values()) {
        const into = isPruned(product, release.manifest.rev) ? candidates : kept
        for (const sha of blobsOf(release.manifest).keys()) into.add(sha)
      }
    }
    const removed: string[] = []
    let bytes = 0
    for (const sha of candidates) {
      if (kept.has(sha)) continue
      const size = await this.blobs.size(sha)
      if (size === undefined) continue
      await this.blobs.remove(sha)
      removed.push(sha)
      bytes += size
    }
    // Recorded once the bytes are gone: a server stopped halfway reads the records again and finishes.
    this.state = { ...this.state, pruned, pruneSeq: Math.max(seq, this.pruneSeq) }
    await this.saveState()
    return { removed, bytes }
  }

  /** Records a release whose blobs are all in the store and verified: now it may be served. */
  async markSynced(seq: number, bytes: Buffer, release: SignedRelease): Promise<void> {
    const { product, rev } = release.manifest
    const dir = join(this.dir, 'releases', product)
    await mkdir(dir, { recursive: true })
    await writeFileAtomic(join(dir, `${rev}.json`), bytes, this.tmpDir)
    const next = {
      ...this.state,
      lastSeq: Math.max(this.state.lastSeq, seq),
      keys: rev >= (this.state.synced[product] ?? 0) ? { ...this.state.keys, [product]: release.publicKey } : this.state.keys,
      synced: { ...this.state.synced, [product]: Math.max(this.state.synced[product] ?? 0, rev) },
    }
    // Written first, then served: when the write fails (a full disk) the server never claims, in
    // its heartbeat, a revision its disk does not record (issue 11, fault suite).
    await this.saveState(next)
    this.state = next
    this.remember(bytes, release)
  }

  /**
   * Records that a message was processed without a release (rejected), so replay skips it; with
   * `awaitingPin`, it was a release of that product, not pinned yet, to examine again once it is.
   */
  async markSkipped(seq: number, awaitingPin?: string): Promise<void> {
    const awaiting = { ...this.state.awaitingPin }
    if (awaitingPin) awaiting[awaitingPin] = [...new Set([...(awaiting[awaitingPin] ?? []), seq])].sort((a, b) => a - b)
    this.state = { ...this.state, lastSeq: Math.max(this.state.lastSeq, seq), awaitingPin: awaiting }
    await this.saveState()
  }

  get parked(): ParkedRelease[] {
    return [...(this.state.parked ?? [])]
  }

  /** Parks a release that failed every try: replay skips it, the retry schedule takes it up again. */
  async markParked(p: ParkedRelease): Promise<void> {
    const parked = [...(this.state.parked ?? []).filter((x) => x.seq !== p.seq), p].sort((a, b) => a.seq - b.seq)
    this.state = { ...this.state, lastSeq: Math.max(this.state.lastSeq, p.seq), parked }
    await this.saveState()
  }

  /** A parked release synced (or turned out never to be one): no longer parked. */
  async unpark(seq: number): Promise<void> {
    if (!(this.state.parked ?? []).some((x) => x.seq === seq)) return
    this.state = { ...this.state, parked: (this.state.parked ?? []).filter((x) => x.seq !== seq) }
    await this.saveState()
  }

  /** A release awaiting its product's pin was examined again (synced, refused, or gone from the stream). */
  async examined(product: string, seq: number): Promise<void> {
    const awaiting = { ...this.state.awaitingPin }
    const left = (awaiting[product] ?? []).filter((s) => s !== seq)
    if (left.length > 0) awaiting[product] = left
    else delete awaiting[product]
    this.state = { ...this.state, awaitingPin: awaiting }
    await this.saveState()
  }

  private async saveState(state = this.state): Promise<void> {
    await writeFileAtomic(join(this.dir, 'state.json'), JSON.stringify(state), this.tmpDir)
  }

  private remember(bytes: Buffer, release: SignedRelease): void {
    const { product, rev } = release.manifest
    let revs = this.releases.get(product)
    if (!revs) this.releases.set(product, (revs = new Map()))
    revs.set(rev, { bytes, release, sha: manifestSha256(release.manifest) })
  }
}
