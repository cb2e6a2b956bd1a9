// The newest format-2 release document of each product a holder follows (docs/formats.md §1.8;
// issue 13 item 3, R-DHT-2): what a daemon passes to peers on the `upswarm/statements` channel
// (kind `release`), so that a client of a product without format-1 manifests, cut off from the
// servers, still learns of a release from any peer that heard of it. A document counts only once
// it verifies under the held root (publish keys and threshold, root version, minRev) and names a
// followed product; only a higher revision replaces the one held. Nothing is written to disk: the
// working copy keeps every release it verified (TreeStore), and the daemon offers its newest one
// again at start.
import { UpswarmError } from '../errors.ts'
import { verifyRelease, type SignedRelease2 } from './release.ts'
import type { Root } from './root.ts'

export type ReleaseDocOutcome = 'accepted' | 'known'

export interface HeldReleaseDoc {
  rev: number
  /** The document's bytes as signed (UTF-8 JSON envelope). */
  text: string
}

/** A held document and the root version it last verified under. */
interface Held extends HeldReleaseDoc { rootVersion: number }

export class ReleaseDocs {
  private readonly root: () => Root | undefined
  private readonly followed: ReadonlySet<string>
  private readonly held = new Map<string, Held>()
  private readonly listeners = new Set<(product: string, rev: number) => void>()

  /** `root`: the holder's root of trust now (documents are judged under it when they come). */
  constructor(root: () => Root | undefined, products: readonly string[]) {
    this.root = root
    this.followed = new Set(products)
  }

  /** Products whose documents are asked for and kept. */
  products(): string[] {
    return [...this.followed]
  }

  follows(product: string): boolean {
    return this.followed.has(product)
  }

  /**
   * The newest verified document of `product`, if any. Checked again under a newer root first: one
   * a rotation or a declared compromise no longer lets stand is dropped, not offered (an up-to-date
   * peer would take it for a forgery).
   */
  newest(product: string): HeldReleaseDoc | undefined {
    const held = this.held.get(product)
    if (!held) return undefined
    const root = this.root()
    if (root && root.version !== held.rootVersion) {
      try {
        verifyRelease(held.text, root, 'a held release document')
        held.rootVersion = root.version
      } catch {
        this.held.delete(product)
        return undefined
      }
    }
    return { rev: held.rev, text: held.text }
  }

  /**
   * Verifies a document under the held root; throws UPSWARM_E_SIGNATURE (not signed as the root
   * requires, or signed under a root not held yet) or UPSWARM_E_MANIFEST (another product).
   */
  verify(bytes: Uint8Array | string, where: string): SignedRelease2 {
    const root = this.root()
    if (!root) throw new UpswarmError('UPSWARM_E_SIGNATURE', `${where}: a format-2 release needs a root of trust, and none is held`)
    const r = verifyRelease(bytes, root, where)
    if (!this.followed.has(r.release.product)) {
      throw new UpswarmError('UPSWARM_E_MANIFEST', `${where} is a release of product ${r.release.product}, which this node does not follow`)
    }
    return r
  }

  /** Verifies and keeps a document; 'known' when the one held is as new or newer. */
  accept(bytes: Uint8Array | string, where: string): ReleaseDocOutcome {
    const r = this.verify(bytes, where)
    return this.keep(r.release.product, r.release.rev, typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'))
  }

  /** Keeps a document its caller verified (verify()); tells the listeners when it is newer. */
  keep(product: string, rev: number, text: string): ReleaseDocOutcome {
    const was = this.newest(product)
    if (was && was.rev >= rev) return 'known'
    this.held.set(product, { rev, text, rootVersion: this.root()?.version ?? 0 })
    for (const l of [...this.listeners]) {
      try {
        l(product, rev)
      } catch { /* a listener's bug must not undo what was kept */ }
    }
    return 'accepted'
  }

  onChange(listener: (product: string, rev: number) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
