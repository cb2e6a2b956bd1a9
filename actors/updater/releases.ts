// Which signed manifests the updater accepts (R-WATCH, R-VERIFY, R-ROLLBACK). Every manifest
// must verify against the pinned publisher key. The client keeps its own record of the
// release history (rev → manifest SHA-256) from verified manifests and their `parent` links:
// - the automatic "newest revision" never goes backwards: a source advertising less than the
//   newest verified revision is ignored and logged (no rollback attack);
// - an older manifest is taken only on an explicit rollback / --rev, and only if its hash is
//   the one the client's record holds for that revision.
import { UpswarmError, toUpswarmError } from '../../infra/errors.ts'
import { manifestSha256 } from '../../infra/release/manifest-core.ts'
import type { SignedRelease } from '../../infra/release/manifest.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import type { UpdaterLog } from './session.ts'
import type { ReleaseSource } from '../../infra/release/source.ts'

const HEX64 = /^[0-9a-f]{64}$/

export class ReleaseHistory {
  private readonly wc: WorkingCopy
  private readonly source: ReleaseSource | undefined
  private readonly log: UpdaterLog
  /** Set once any call reached the source. */
  usedNetwork = false

  constructor(wc: WorkingCopy, source: ReleaseSource | undefined, log: UpdaterLog) {
    this.wc = wc
    this.source = source
    this.log = log
  }

  private get product(): string {
    return this.wc.config.product
  }

  private requireSource(why: string): ReleaseSource {
    if (!this.source) {
      throw new UpswarmError('UPSWARM_E_NO_SERVER', `${why}, and no release source (network) was given; connect to the servers and try again`)
    }
    this.usedNetwork = true
    return this.source
  }

  /**
   * R-WATCH: asks the source for its revisions and verifies the newest one if it is newer than
   * anything verified so far. Returns the newest verified revision (never lower than before).
   */
  async refresh(opts: { trust?: boolean } = {}): Promise<number> {
    const src = this.requireSource(`cannot look for new releases of ${this.product}`)
    if (opts.trust !== false) await this.refreshTrust(src)
    const advertised = await src.revisions(this.product).catch((err: unknown) => {
      throw toUpswarmError(err, 'UPSWARM_E_NO_SERVER', `cannot list the revisions of ${this.product}`)
    })
    const record = this.wc.state.record
    let newest = 0
    for (const { rev, manifestSha256: sha } of advertised) {
      if (!Number.isInteger(rev) || rev < 1 || !HEX64.test(sha)) {
        this.log.warn({ product: this.product, rev, sha }, 'ignoring a malformed revision advertised by the source')
        continue
      }
      const known = record[String(rev)]
      if (known && known !== sha) {
        this.log.warn({ product: this.product, rev, advertised: sha, recorded: known }, 'the source advertises a manifest that differs from the signed release history; ignoring it')
        continue
      }
      newest = Math.max(newest, rev)
    }
    const verified = this.wc.state.newestVerified
    if (newest < verified) {
      this.log.warn({ product: this.product, advertised: newest, verified },
        `a source advertises revision ${newest} as the newest, lower than the verified revision ${verified}; ignoring it (possible rollback attack)`)
      return verified
    }
    if (newest > verified) await this.accept(await this.fetch(newest))
    return this.wc.state.newestVerified
  }

  /**
   * Issue 10 item 7: newer roots (a rotation, a revocation) and the newest fresh statement, from
   * the source. A copy that pinned only a key adopts the first root that key endorses. Never
   * fatal (R-DHT-2): what cannot be had or verified is logged, and the copy goes on with the
   * keys it trusts.
   */
  async refreshTrust(src: ReleaseSource = this.requireSource(`cannot look for new roots of ${this.product}`)): Promise<void> {
    const store = this.wc.trust
    // Both asked at once (round trips through the proxy); taken in order: roots first, then the
    // fresh statement against them. Without a root yet, the statement is asked once one is adopted.
    const roots = src.roots?.(store.version + 1)
    const fresh = store.root ? src.fresh?.(this.product) : undefined
    for (const p of [roots, fresh]) p?.catch(() => {})
    try {
      if (roots) {
        const docs = await roots
        if (!store.root) {
          for (const d of docs) {
            if (await store.adoptEndorsed(d, 'the release source', this.product, this.wc.config.publicKey)) break
          }
        }
        if (store.root) {
          const before = store.version
          await store.acceptRoots(docs, 'the release source')
          if (store.version > before) this.log.info({ product: this.product, from: before, to: store.version }, 'root of trust updated')
        }
      }
      if (src.fresh && store.root) {
        const text = await (fresh ?? src.fresh(this.product))
        if (text !== undefined) await store.acceptFresh(text, 'the release source')
      }
    } catch (err) {
      this.log.warn({ product: this.product, err: toUpswarmError(err, 'UPSWARM_E_NO_SERVER', 'trust refresh').message }, 'cannot refresh the root of trust or freshness; going on with what is held')
    }
  }

  /**
   * The verified release of `rev`: from the local store, else from the source — a revision
   * newer than any verified one on its signature, an older one only if it matches the record.
   */
  async resolve(rev: number): Promise<SignedRelease> {
    if (!Number.isInteger(rev) || rev < 1) throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `revision ${rev} does not exist: revisions are integers from 1`)
    const stored = await this.wc.manifests.get(rev)
    if (stored) return stored
    if (rev > this.wc.state.newestVerified) {
      const release = await this.fetch(rev)
      await this.accept(release)
      return release
    }
    await this.extendRecordDownTo(rev)
    const release = await this.fetch(rev)
    const expected = this.wc.state.record[String(rev)]
    const got = manifestSha256(release.manifest)
    if (got !== expected) {
      throw new UpswarmError('UPSWARM_E_ROLLBACK',
        `the manifest of revision ${rev} served by the source (SHA-256 ${got}) is not the one in this client's release history (${expected}); refusing it`)
    }
    await this.accept(release)
    return release
  }

  /** Follows `parent` links down from the lowest known revision above `rev` until `rev` is recorded. */
  private async extendRecordDownTo(rev: number): Promise<void> {
    const recorded = (r: number): boolean => this.wc.state.record[String(r)] !== undefined
    while (!recorded(rev)) {
      let k = rev + 1
      while (k <= this.wc.state.newestVerified && !recorded(k)) k++
      if (k > this.wc.state.newestVerified) break
      const release = (await this.wc.manifests.get(k)) ?? (await this.fetchRecorded(k))
      if (!release.manifest.parent) break
      await this.accept(release) // records k - 1: the loop ends after at most rev-newest steps
    }
    if (!recorded(rev)) {
      throw new UpswarmError('UPSWARM_E_ROLLBACK',
        `revision ${rev} cannot be checked against this client's release history (the chain of signed parent hashes does not reach it); refusing it`)
    }
  }

  private async fetchRecorded(rev: number): Promise<SignedRelease> {
    const release = await this.fetch(rev)
    const expected = this.wc.state.record[String(rev)]
    if (manifestSha256(release.manifest) !== expected) {
      throw new UpswarmError('UPSWARM_E_ROLLBACK', `the manifest of revision ${rev} served by the source is not the one in this client's release history; refusing it`)
    }
    return release
  }

  /** Downloads and verifies (pinned key, product, revision) a release. */
  private async fetch(rev: number): Promise<SignedRelease> {
    const src = this.requireSource(`revision ${rev} of ${this.product} is not stored locally`)
    const where = `the release source (product ${this.product}, revision ${rev})`
    const bytes = await src.release(this.product, rev).catch((err: unknown) => {
      throw toUpswarmError(err, 'UPSWARM_E_NO_SERVER', `cannot fetch revision ${rev} of ${this.product}`)
    })
    // Issue 13 item 1: the manifest schemas (zod) load when a release is fetched, not with `status`.
    const { decodeTrusted } = await import('../../infra/release/release-trust.ts')
    const { release, retired } = decodeTrusted(bytes, this.wc.releaseKeys(), where)
    if (release.manifest.product !== this.product || release.manifest.rev !== rev) {
      throw new UpswarmError('UPSWARM_E_MANIFEST',
        `${where} returned the manifest of product ${release.manifest.product} revision ${release.manifest.rev}; refusing it`)
    }
    if (retired) {
      // A retired key's release counts only on the chain that ends at its last release (docs/formats.md §3.2).
      const sha = manifestSha256(release.manifest)
      const anchored = rev === retired.lastRev ? (retired.lastRelease ?? sha) === sha : this.wc.state.record[String(rev)] === sha
      if (!anchored) {
        throw new UpswarmError('UPSWARM_E_SIGNATURE',
          `${where}: r${rev} is signed by a retired key and is not on the release chain that ends at its last revision r${retired.lastRev}; refusing it`)
      }
    }
    return release
  }

  /** Records a verified release and its parent link (write-once), stores it, saves the state. */
  private async accept(release: SignedRelease): Promise<void> {
    const { rev, parent } = release.manifest
    const sha = manifestSha256(release.manifest)
    const record = { ...this.wc.state.record }
    const mismatch = (r: number, h: string): boolean => record[String(r)] !== undefined && record[String(r)] !== h
    if (mismatch(rev, sha) || (parent && rev > 1 && mismatch(rev - 1, parent))) {
      throw new UpswarmError('UPSWARM_E_MANIFEST',
        `signed revision ${rev} of ${this.product} contradicts this client's record of the release history (the publisher's history was rewritten?); refusing it`)
    }
    record[String(rev)] = sha
    if (parent && rev > 1) record[String(rev - 1)] = parent
    await this.wc.manifests.put(release)
    this.wc.state = { ...this.wc.state, record, newestVerified: Math.max(this.wc.state.newestVerified, rev) }
    await this.wc.saveState()
    this.log.info({ product: this.product, rev, manifestSha256: sha }, 'verified release manifest')
  }
}
