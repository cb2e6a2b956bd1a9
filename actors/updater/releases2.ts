// Format-2 releases for the updater (docs/formats.md §1.3, §3.3, §5 step 6; issue 13 item 3):
// the signed release document of a revision, verified under the copy's root (publish role and
// threshold, root version, minRev, critical fields), chained by `parent` hashes to the ones the
// copy holds, and its tree: only the nodes the copy lacks are fetched, by walking the installed
// revision's tree and the new one side by side (tree-diff.ts), so an update fetches the nodes of
// the directories that changed. Every node is checked against the hash its parent names before
// it is decoded or stored (R-VERIFY). What the run then installs is planned and verified exactly as
// in format 1: file bytes come whole by their SHA-256 from servers or peers (R-VERIFY).
import { UpswarmError, toUpswarmError } from '../../infra/errors.ts'
import { verifyRelease, type SignedRelease2 } from '../../infra/formats/release.ts'
import { checkedNode } from '../../infra/formats/tree-builder.ts'
import { diffTrees, type TreeChange } from '../../infra/formats/tree-diff.ts'
import type { ReleaseSource } from '../../infra/release/source.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import type { UpdaterLog } from './session.ts'

/** The last tree diff this process took (one copy's: a daemon's), kept up to this many changes. */
const DIFF_KEPT_MAX = 10_000
let lastDiff: { root: string; old: string; top: string; changes: TreeChange[] } | undefined

/** What the format-2 metadata of one run cost: tree nodes fetched (count, bytes, requests). */
export interface TreeFetch { nodes: number; bytes: number; requests: number }

export class Release2History {
  private readonly wc: WorkingCopy
  private readonly source: ReleaseSource | undefined
  private readonly log: UpdaterLog
  /** Tree nodes this run fetched (format 2 only). */
  readonly fetched: TreeFetch = { nodes: 0, bytes: 0, requests: 0 }
  usedNetwork = false

  constructor(wc: WorkingCopy, source: ReleaseSource | undefined, log: UpdaterLog) {
    this.wc = wc
    this.source = source
    this.log = log
  }

  private get product(): string {
    return this.wc.config.product
  }

  /** Whether the copy's root says the product publishes format 2 (docs/formats.md §2.2). */
  listed(): boolean {
    return this.wc.trust.root?.products[this.product]?.formats?.includes(2) ?? false
  }

  /**
   * Asks the source for its newest format-2 release without waiting (the run's refresh asks while
   * the trust refresh runs: one round trip instead of three in a row); `newest` checks what came,
   * against the trust as refreshed. Undefined when the root does not list format 2 for the product.
   */
  fetchNewest(): Promise<Uint8Array | string | undefined> | undefined {
    const src = this.source
    if (!src?.release2 || !src.nodes || !this.listed()) return undefined
    const fetched = src.release2(this.product)
    // Handled where newest() awaits it; a run that fails before that leaves no unhandled rejection.
    fetched.catch(() => {})
    return fetched
  }

  /**
   * The newest format-2 release the source offers, verified and recorded; undefined when the
   * root does not list format 2 for the product or the source has none (an older cluster: the
   * caller reads format 1). A release older than the newest verified revision is ignored and
   * logged, as in format 1 (no rollback attack).
   */
  async newest(fetched?: Promise<Uint8Array | string | undefined>): Promise<SignedRelease2 | undefined> {
    const src = this.source
    if (!src?.release2 || !src.nodes || !this.listed()) return undefined
    this.usedNetwork = true
    const text = await (fetched ?? src.release2(this.product))
    if (text === undefined) return undefined
    const r = this.verify(text, 'the release source (newest format-2 release)')
    const verified = this.wc.state.newestVerified
    if (r.release.rev < verified) {
      this.log.warn({ product: this.product, advertised: r.release.rev, verified },
        `a source offers format-2 revision ${r.release.rev} as the newest, lower than the verified revision ${verified}; ignoring it (possible rollback attack)`)
      return undefined
    }
    await this.accept(r, text, 'the release source')
    return r
  }

  /**
   * The verified release of `rev`: stored (verified again on read), else fetched — a newer
   * revision on its signatures and the chain, an older one only when the `parent` links from a
   * revision the copy holds reach it (docs/formats.md §3.3).
   */
  async resolve(rev: number): Promise<SignedRelease2> {
    const stored = await this.wc.release2(rev)
    if (stored) return stored
    const src = this.requireSource(rev)
    if (rev < this.wc.state.newestVerified) await this.extendDownTo(rev)
    const text = await src.release2!(this.product, rev)
    if (text === undefined) throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `no server holds format-2 revision ${rev} of ${this.product}`)
    const r = this.verify(text, `the release source (format-2 revision ${rev})`)
    if (r.release.rev !== rev) throw new UpswarmError('UPSWARM_E_MANIFEST', `the release source returned r${r.release.rev} of ${this.product} for r${rev}; refusing it`)
    await this.accept(r, text, 'the release source')
    return r
  }

  /**
   * Makes every node of `to`'s tree available locally, fetching only what the copy lacks: the
   * walk from the tree of `from` (0: none) descends only where hashes differ. Nothing is stored
   * unless every fetched node verified. Returns what changed from `from`'s tree, or undefined when
   * the copy holds no format-2 tree of `from` (nothing installed, or a format-1 install).
   */
  async ensureTree(from: number, to: SignedRelease2): Promise<TreeChange[] | undefined> {
    // `from` installed in format 1 (a run planned for the swarm's piece hashes) may have its
    // format-2 release stored (it brought the deltas) but none of its tree: then the target's
    // tree is walked whole, as after a format-1 install, instead of a diff that would need
    // `from`'s nodes (an offline rollback has no source to fetch them from).
    const stored = from > 0 ? (await this.wc.release2(from))?.release.tree : undefined
    const old = stored !== undefined && this.wc.trees.holds(stored) ? stored : undefined
    // Trees are named by their hashes, so their diff never changes: the one a daemon's prefetch
    // took is the run's (issue 15 item 4), once this copy holds every node it walked.
    const known = lastDiff && lastDiff.root === this.wc.layout.root && lastDiff.old === old && lastDiff.top === to.release.tree ? lastDiff.changes : undefined
    if (known) return known
    const src = this.source
    const diff = await diffTrees(old, to.release.tree, {
      local: (hash) => this.wc.trees.node(hash),
      held: true,
      fetch: async (hashes) => {
        if (!src?.nodes) throw new UpswarmError('UPSWARM_E_NO_SERVER', `${hashes.length} tree node(s) of r${to.release.rev} are not stored locally, and no release source (network) was given; connect to the servers and try again`)
        this.usedNetwork = true
        return src.nodes(this.product, hashes).catch((err: unknown) => {
          throw toUpswarmError(err, 'UPSWARM_E_NO_SERVER', `cannot fetch ${hashes.length} tree node(s) of r${to.release.rev} of ${this.product}`)
        })
      },
    })
    // The walk saw only what changed: the nodes it reused are held already.
    const fresh = new Map<string, Uint8Array>()
    for (const [hash, bytes] of diff.nodes) if (!this.wc.trees.holds(hash)) fresh.set(hash, bytes)
    await this.wc.trees.putNodes(fresh)
    this.fetched.nodes += diff.fetched.nodes
    this.fetched.bytes += diff.fetched.bytes
    this.fetched.requests += diff.fetched.requests
    this.log.info({ product: this.product, from, to: to.release.rev, format: 2, changes: diff.changes.length, fetched: diff.fetched }, 'format-2 tree nodes fetched')
    if (old === undefined) return undefined
    if (diff.changes.length <= DIFF_KEPT_MAX) lastDiff = { root: this.wc.layout.root, old, top: to.release.tree, changes: diff.changes }
    return diff.changes
  }

  /** A node by hash for a walk: local, else one fetch (damaged or lost local nodes). */
  fetchOne = async (hash: string): Promise<Uint8Array> => {
    const src = this.source
    if (!src?.nodes) throw new UpswarmError('UPSWARM_E_WORKING_COPY', `tree node ${hash.slice(0, 16)}… is missing locally and no release source (network) was given`)
    this.usedNetwork = true
    const got = (await src.nodes(this.product, [hash])).get(hash)
    if (!got) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `tree node ${hash.slice(0, 16)}… was not sent`)
    // The store keeps checked nodes only (its readers rely on it: checkedNode's `held`).
    checkedNode(hash, got, false, 'a node fetched again')
    await this.wc.trees.putNodes(new Map([[hash, got]]))
    return got
  }

  private requireSource(rev: number): ReleaseSource {
    if (!this.source?.release2) {
      throw new UpswarmError('UPSWARM_E_NO_SERVER', `format-2 revision ${rev} of ${this.product} is not stored locally, and no release source (network) was given; connect to the servers and try again`)
    }
    this.usedNetwork = true
    return this.source
  }

  private verify(text: Uint8Array | string, where: string): SignedRelease2 {
    const root = this.wc.trust.root
    if (!root) throw new UpswarmError('UPSWARM_E_SIGNATURE', `${where}: a format-2 release needs a root of trust, and ${this.wc.layout.root} holds none`)
    const r = verifyRelease(text, root, where)
    if (r.release.product !== this.product) {
      throw new UpswarmError('UPSWARM_E_MANIFEST', `${where} is a release of product ${r.release.product}, not ${this.product}; refusing it`)
    }
    return r
  }

  /** Follows `parent` links down from the lowest held revision above `rev` until `rev` is held. */
  private async extendDownTo(rev: number): Promise<void> {
    const held = await this.wc.trees.revisions()
    const above = held.filter((r) => r > rev)
    if (above.length === 0) return // nothing to anchor on: accept() checks what it can
    for (let k = above[0]! - 1; k >= rev; k--) {
      if (await this.wc.trees.release(k)) continue
      const text = await this.source!.release2!(this.product, k)
      if (text === undefined) throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `no server holds format-2 revision ${k} of ${this.product}`)
      const r = this.verify(text, `the release source (format-2 revision ${k})`)
      if (r.release.rev !== k) throw new UpswarmError('UPSWARM_E_MANIFEST', `the release source returned r${r.release.rev} of ${this.product} for r${k}; refusing it`)
      await this.accept(r, text, 'the release source')
    }
  }

  /**
   * Records a verified release (write-once per revision; docs/formats.md §3.3): it must be the
   * one held for its revision, its parent the one held for rev − 1, and the release held for
   * rev + 1 must name it as parent. An older revision with nothing held above it to anchor on is
   * refused (the chain must reach it).
   */
  private async accept(r: SignedRelease2, text: Uint8Array | string, where: string): Promise<void> {
    const { rev, parent } = r.release
    const what = `format-2 release r${rev} of ${this.product} from ${where}`
    const same = await this.wc.release2(rev)
    if (same) {
      if (same.id !== r.id) throw new UpswarmError('UPSWARM_E_ROLLBACK', `${what} is not the r${rev} this copy holds (${same.id.slice(0, 16)}…): the publisher's history was rewritten? Refusing it`)
      return
    }
    const below = await this.wc.release2(rev - 1)
    if (below && parent !== below.id) {
      throw new UpswarmError('UPSWARM_E_SIGNATURE', `${what} names parent ${parent?.slice(0, 16) ?? 'none'}…, but the r${rev - 1} this copy holds is ${below.id.slice(0, 16)}…: refusing a forked history`)
    }
    const above = await this.wc.release2(rev + 1)
    if (above && above.release.parent !== r.id) {
      throw new UpswarmError('UPSWARM_E_ROLLBACK', `${what} is not the parent the r${rev + 1} this copy holds names; refusing it`)
    }
    const held = await this.wc.trees.revisions()
    if (!above && rev < this.wc.state.newestVerified && held.some((h) => h > rev)) {
      throw new UpswarmError('UPSWARM_E_ROLLBACK', `${what} cannot be checked against this copy's release chain (no held revision above it names it); refusing it`)
    }
    await this.wc.trees.putRelease(rev, typeof text === 'string' ? text : Buffer.from(text).toString('utf8'))
    this.wc.state = { ...this.wc.state, newestVerified: Math.max(this.wc.state.newestVerified, rev) }
    await this.wc.saveState()
    this.log.info({ product: this.product, rev, release: r.id, format: 2 }, 'verified format-2 release')
  }
}
