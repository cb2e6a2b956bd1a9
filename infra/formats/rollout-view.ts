// What an `--auto` client (daemon, watch) knows of its product's staged rollout (issue 16 item 1):
// the rollout statements it verified, and from them the revision its stage lets it be on
// (autoTarget, docs/formats.md §1.5). Statements are verified under the root the working copy
// holds and must name the release the client's own record has for that revision; anything else
// is refused with the reason, never believed.
import { UpswarmError } from '../errors.ts'
import type { Root } from './root.ts'
import { autoTarget, type Client, type Rollout } from './rollout.ts'
import { verifyProductRollout } from './rollout-stream.ts'

export class RolloutView {
  readonly product: string
  readonly client: Client
  private readonly bySeq = new Map<number, Rollout>()

  constructor(product: string, client: Client) {
    this.product = product
    this.client = client
  }

  /** Whether a statement governs the product: from the first one on, every later release waits for its own. */
  get governs(): boolean {
    return this.bySeq.size > 0
  }

  get statements(): Rollout[] {
    return [...this.bySeq.values()]
  }

  /**
   * Verifies and keeps one statement; returns it when it is new (undefined: known already). `record` is the client's
   * rev → manifest SHA-256: a statement naming another release of a revision it knows is refused.
   */
  accept(text: string, root: Root, record: Readonly<Record<string, string>>, where: string): Rollout | undefined {
    const s = verifyProductRollout(text, root, this.product, where)
    const known = record[String(s.rev)]
    if (known !== undefined && known !== s.release) {
      throw new UpswarmError('UPSWARM_E_SIGNATURE', `${where}: rollout statement ${s.seq} names release ${s.release.slice(0, 16)}… as r${s.rev}, but this client's record of r${s.rev} is ${known.slice(0, 16)}…; refusing it`)
    }
    if (this.bySeq.has(s.seq)) return undefined
    this.bySeq.set(s.seq, s)
    return s
  }

  /**
   * The revision the client should be on, given the revisions it knows and where it is; undefined
   * while no statement governs the product (then every release is at 100%, as before staged
   * rollout). A revision newer than every revision a statement names waits for its own statement.
   */
  target(revisions: Iterable<number>, current: number): number | undefined {
    if (!this.governs) return undefined
    const named = Math.max(...this.statements.map((s) => s.rev))
    const revs = [...new Set([...revisions, current])].filter((r) => r > 0).map((rev) => ({ rev, staged: rev > named }))
    return autoTarget(revs, this.statements, this.product, this.client, current) ?? current
  }
}
