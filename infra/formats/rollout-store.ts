// The rollout statements one holder verified (issue 16 item 1: statements travel like releases —
// stream, disk and peers). Kept byte for byte as received, per product and `seq`, so they are passed
// on to peers that verify them again (the `upswarm/statements` channel, kind `rollout`), and saved
// atomically in a file of their own beside the trust store: an older upswarm that reads the trust
// store never meets a field it does not know. Each statement is verified against the holder's
// root when taken and again on load (one whose key the root no longer lists is dropped).
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { UpswarmError, errorMessage } from '../errors.ts'
import { writeFileAtomic } from '../store/working-copy/atomic.ts'
import type { Root } from './root.ts'
import { verifyRollout, type Rollout } from './rollout.ts'

/** Statements kept per product, newest `seq` first to stay. */
export const MAX_ROLLOUTS_PER_PRODUCT = 256

const FileSchema = z.strictObject({
  format: z.literal(1),
  rollouts: z.record(z.string(), z.array(z.string()).max(MAX_ROLLOUTS_PER_PRODUCT)),
})

export interface HeldRollout { text: string; rollout: Rollout }
export type RolloutOutcome = 'accepted' | 'known'

export class RolloutStore {
  private readonly byProduct = new Map<string, Map<number, HeldRollout>>()
  private readonly listeners = new Set<(held: HeldRollout) => void>()

  private constructor(private readonly file: string, private readonly tmpDir: string, private readonly root: () => Root | undefined) {}

  /** Opens the store at `file` (empty when there is none); `root` gives the holder's root at each check. */
  static async open(file: string, tmpDir: string, root: () => Root | undefined): Promise<RolloutStore> {
    const store = new RolloutStore(file, tmpDir, root)
    let text: string | undefined
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UpswarmError('UPSWARM_E_IO', `cannot read ${file}: ${errorMessage(err)}`, { cause: err })
    }
    if (text === undefined) return store
    let data: z.infer<typeof FileSchema>
    try {
      data = FileSchema.parse(JSON.parse(text))
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `${file} is not an upswarm rollout store: ${errorMessage(err)}`, { cause: err })
    }
    const held = root()
    if (!held) return store
    for (const texts of Object.values(data.rollouts)) {
      for (const t of texts) {
        try {
          store.keep({ text: t, rollout: verifyRollout(t, held, file).rollout })
        } catch {
          // Signed by a key the held root no longer lists: not passed on.
        }
      }
    }
    return store
  }

  /** The product's statements held, oldest `seq` first. */
  statements(product: string): HeldRollout[] {
    return [...(this.byProduct.get(product)?.values() ?? [])].sort((a, b) => a.rollout.seq - b.rollout.seq)
  }

  /** The newest `seq` held for the product (0: none). */
  newestSeq(product: string): number {
    return Math.max(0, ...(this.byProduct.get(product)?.keys() ?? []))
  }

  products(): string[] {
    return [...this.byProduct.keys()]
  }

  /** Calls `listener` after each statement this store gains and saved, whoever fed it. Returns the remover. */
  onChange(listener: (held: HeldRollout) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * A statement verified against the held root (UPSWARM_E_SIGNATURE / UPSWARM_E_MANIFEST when it
   * does not verify); 'known' when its product's `seq` is held already (a replay changes nothing).
   */
  async accept(bytes: Uint8Array | string, where: string): Promise<RolloutOutcome> {
    const root = this.root()
    if (!root) throw new UpswarmError('UPSWARM_E_CONFIG', `no root is pinned here, so the rollout statement from ${where} cannot be checked`)
    const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8')
    const { rollout } = verifyRollout(text, root, where)
    if (this.byProduct.get(rollout.product)?.has(rollout.seq)) return 'known'
    const held = { text, rollout }
    this.keep(held)
    await this.save()
    for (const l of [...this.listeners]) {
      try {
        l(held)
      } catch { /* a listener's bug must not undo what was stored */ }
    }
    return 'accepted'
  }

  private keep(held: HeldRollout): void {
    const map = this.byProduct.get(held.rollout.product) ?? new Map<number, HeldRollout>()
    map.set(held.rollout.seq, held)
    if (map.size > MAX_ROLLOUTS_PER_PRODUCT) map.delete(Math.min(...map.keys()))
    this.byProduct.set(held.rollout.product, map)
  }

  private async save(): Promise<void> {
    const rollouts: Record<string, string[]> = {}
    for (const product of this.products()) rollouts[product] = this.statements(product).map((h) => h.text)
    await writeFileAtomic(this.file, JSON.stringify({ format: 1, rollouts }) + '\n', this.tmpDir)
  }
}
