// The releases a sharing daemon learnt from the release stream (R-WATCH) or from the feeds of
// rotated keys, kept for when no server answers (the swarm source's fallback, R-DHT-2) and for the
// revisions its staged rollout may pick.
// A daemon runs for months: it keeps a release's whole manifest only while the release may still
// be installed — newer than the installed revision, or the newest — and only the revision and
// manifest hash of the others (a manifest of 40 000 files is about 20 MiB of heap; kept for every
// release heard, it grew the daemon by that much per release, forever). An older revision's
// manifest is in the copy's manifest store once installed, and in the release feed.
import { manifestSha256 } from '../../infra/release/manifest-core.ts'
import type { SignedRelease } from '../../infra/release/manifest.ts'

export class StreamReleases {
  /** Whole releases: newer than the installed revision, or the newest. */
  private readonly whole = new Map<number, SignedRelease>()
  /**
   * Revision → manifest SHA-256 of every release heard (the whole ones too), taken once when it
   * arrives: the list is read at every heartbeat that moves the stage, and hashing a manifest means
   * its canonical JSON (about 1 % of a daemon's CPU in a swarm update when it was taken each time).
   */
  private readonly hashes = new Map<number, string>()

  /** A verified release of the product; `installed` is the copy's current revision. */
  add(release: SignedRelease, installed: number): void {
    const rev = release.manifest.rev
    this.whole.set(rev, release)
    this.hashes.set(rev, manifestSha256(release.manifest))
    this.prune(installed)
  }

  /** Drops the manifests of revisions at or below `installed`, but the newest's. */
  prune(installed: number): void {
    const newest = this.newest()
    for (const rev of this.whole.keys()) if (rev <= installed && rev !== newest) this.whole.delete(rev)
  }

  /** The whole release of `rev`, if still kept. */
  get(rev: number): SignedRelease | undefined {
    return this.whole.get(rev)
  }

  /** Every revision heard, with its manifest hash. */
  list(): ReadonlyMap<number, string> {
    return this.hashes
  }

  newest(): number {
    return Math.max(0, ...this.hashes.keys())
  }

  /** Whole manifests held (for tests and the memory figures). */
  get held(): number {
    return this.whole.size
  }
}
