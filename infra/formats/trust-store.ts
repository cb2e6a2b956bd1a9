// What one holder (a working copy, a server, the notary) trusts: the chain of roots it verified
// from its pin, and the newest verified fresh statement per product. Kept byte for byte as
// received, so it can pass them on to peers that verify them again, and saved atomically.
import { readFile } from 'node:fs/promises'
import { UpswarmError, errorMessage } from '../errors.ts'
import { writeFileAtomic } from '../store/working-copy/atomic.ts'
import type { Freshness, SignedFresh } from './fresh.ts'
import type { KeyVerdict, Root, SignedRoot } from './root.ts'

// Issue 13 item 1: a working copy without a root (most of them, and every short command's) opens
// an empty store, and loads neither the signed formats nor zod. They are loaded by the first
// method that meets a document (each async method awaits `loadFormats()` first); a document
// held means they were loaded, so the synchronous methods find them there.
async function importFormats() {
  const [{ z }, envelope, fresh, root] = await Promise.all([import('zod'), import('./envelope.ts'), import('./fresh.ts'), import('./root.ts')])
  const StoreSchema = z.strictObject({
    format: z.literal(1),
    roots: z.array(z.string()),
    fresh: z.record(z.string(), z.string()),
  })
  return { StoreSchema, ...envelope, ...fresh, ...root }
}
type Formats = Awaited<ReturnType<typeof importFormats>>
let formats: Formats | undefined
async function loadFormats(): Promise<Formats> {
  return (formats ??= await importFormats())
}
function loaded(): Formats {
  if (!formats) throw new Error('trust store: a signed document was used before the formats were loaded (a method did not await loadFormats())')
  return formats
}
const encodeEnvelope: Formats['encodeEnvelope'] = (...a) => loaded().encodeEnvelope(...a)
const verifyFresh: Formats['verifyFresh'] = (...a) => loaded().verifyFresh(...a)
const freshnessOf: Formats['freshnessOf'] = (...a) => loaded().freshnessOf(...a)
const endorsedFor: Formats['endorsedFor'] = (...a) => loaded().endorsedFor(...a)
const keyVerdict: Formats['keyVerdict'] = (...a) => loaded().keyVerdict(...a)
const parseRoot: Formats['parseRoot'] = (...a) => loaded().parseRoot(...a)
const verifyNextRoot: Formats['verifyNextRoot'] = (...a) => loaded().verifyNextRoot(...a)
const verifyPinnedRoot: Formats['verifyPinnedRoot'] = (...a) => loaded().verifyPinnedRoot(...a)

export type RootOutcome = 'accepted' | 'known' | 'gap'
export type FreshOutcome = 'accepted' | 'not-newer'
/** What a store gained: a root (its version) or a product's fresh statement. */
export type TrustChange = { kind: 'root'; version: number } | { kind: 'fresh'; product: string; issued: string }

export class TrustStore {
  private chain: SignedRoot[] = []
  private texts: string[] = []
  private freshDocs = new Map<string, { text: string; signed: SignedFresh }>()
  private readonly file: string
  private readonly tmpDir: string
  private readonly listeners = new Set<(change: TrustChange) => void>()

  private constructor(file: string, tmpDir: string) {
    this.file = file
    this.tmpDir = tmpDir
  }

  /** Opens the store at `file` (empty when there is none). Every document is verified again on load. */
  static async open(file: string, tmpDir: string): Promise<TrustStore> {
    const store = new TrustStore(file, tmpDir)
    let text: string | undefined
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UpswarmError('UPSWARM_E_IO', `cannot read ${file}: ${errorMessage(err)}`, { cause: err })
    }
    if (text === undefined) return store
    const { StoreSchema } = await loadFormats()
    let data: { roots: string[]; fresh: Record<string, string> }
    try {
      data = StoreSchema.parse(JSON.parse(text))
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `${file} is not an upswarm trust store: ${errorMessage(err)}`, { cause: err })
    }
    const [first, ...rest] = data.roots
    if (first !== undefined) {
      const pinned = parseRoot(first, file)
      verifyPinnedRoot(pinned, file)
      store.push(pinned, first)
      for (const t of rest) {
        const next = parseRoot(t, file)
        verifyNextRoot(store.root!, next, file)
        store.push(next, t)
      }
    }
    for (const [product, t] of Object.entries(data.fresh)) {
      if (store.root) store.freshDocs.set(product, { text: t, signed: verifyFresh(t, store.root, file) })
    }
    return store
  }

  private push(signed: SignedRoot, text: string): void {
    this.chain.push(signed)
    this.texts.push(text)
  }

  get root(): Root | undefined {
    return this.chain.at(-1)?.root
  }

  get version(): number {
    return this.root?.version ?? 0
  }

  /** The roots held with a version ≥ `from`, as received: what a peer asking for them gets. */
  rootsFrom(from: number): string[] {
    return this.texts.filter((_, i) => this.chain[i]!.root.version >= from)
  }

  /**
   * Calls `listener` after each root or fresh statement this store gains and saved, whoever fed
   * it (stream, server, peer), so holders pass it on (docs/formats.md §3.5). Returns the remover.
   */
  onChange(listener: (change: TrustChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private changed(change: TrustChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(change)
      } catch { /* a listener's bug must not undo what was stored */ }
    }
  }

  /** Products this store holds a fresh statement for. */
  freshProducts(): string[] {
    return [...this.freshDocs.keys()]
  }

  /**
   * Writes the store, first taking in what another holder of the same file (the CLI beside a
   * running daemon) verified since this one was read, so neither loses the other's roots.
   */
  private async save(): Promise<void> {
    const disk = await TrustStore.open(this.file, this.tmpDir).catch(() => undefined)
    if (disk?.root && this.root) {
      for (const t of disk.rootsFrom(this.version + 1)) {
        const next = parseRoot(t, this.file)
        try {
          verifyNextRoot(this.root, next, this.file)
          this.push(next, t)
        } catch {
          break // a different chain on disk: ours was verified, keep it
        }
      }
      for (const [p, f] of disk.freshDocs) {
        const mine = this.freshDocs.get(p)
        if (mine && Date.parse(mine.signed.fresh.issued) >= Date.parse(f.signed.fresh.issued)) continue
        try {
          this.freshDocs.set(p, { text: f.text, signed: verifyFresh(f.text, this.root, this.file) })
        } catch {
          // signed by a fresh key this chain does not hold: not taken
        }
      }
    }
    const fresh: Record<string, string> = {}
    for (const [p, f] of this.freshDocs) fresh[p] = f.text
    await writeFileAtomic(this.file, JSON.stringify({ format: 1, roots: this.texts, fresh }) + '\n', this.tmpDir)
  }

  /**
   * Pins a root given by the user (`init --root`, a trust file): valid under its own root keys.
   * A store already holding a chain takes it only as the chain's next link or a known one.
   */
  async pin(bytes: Uint8Array | string, where: string): Promise<void> {
    await loadFormats()
    const signed = parseRoot(bytes, where)
    if (this.root) {
      const outcome = await this.acceptRoot(bytes, where)
      if (outcome === 'gap') throw new UpswarmError('UPSWARM_E_ROLLBACK', `root version ${signed.root.version} from ${where} does not follow the held version ${this.version}`)
      return
    }
    verifyPinnedRoot(signed, where)
    this.push(signed, canonical(signed))
    await this.save()
    this.changed({ kind: 'root', version: signed.root.version })
  }

  /** First root of a client that pinned only a publisher key: accepted when that key endorses it (docs/formats.md §3.1). */
  async adoptEndorsed(bytes: Uint8Array | string, where: string, product: string, pinnedKey: string): Promise<boolean> {
    await loadFormats()
    if (this.root) return false
    const signed = parseRoot(bytes, where)
    if (!endorsedFor(signed, product, pinnedKey)) return false
    this.push(signed, canonical(signed))
    await this.save()
    this.changed({ kind: 'root', version: signed.root.version })
    return true
  }

  /** The next root of the chain; 'known' for one held, 'gap' for one further ahead (fetch the ones between first). */
  async acceptRoot(bytes: Uint8Array | string, where: string): Promise<RootOutcome> {
    await loadFormats()
    const signed = parseRoot(bytes, where)
    const v = signed.root.version
    if (!this.root) throw new UpswarmError('UPSWARM_E_CONFIG', `no root is pinned here, so root version ${v} from ${where} cannot be checked`)
    if (v <= this.version) {
      const held = this.chain.find((c) => c.root.version === v)
      if (held && canonical(held) !== canonical(signed)) {
        // Two different roots of one version, both signed: the root keys are compromised or misused.
        throw new UpswarmError('UPSWARM_E_ROLLBACK', `${where} offers a root version ${v} that differs from the one held; keeping the held one`)
      }
      return 'known'
    }
    if (v > this.version + 1) return 'gap'
    verifyNextRoot(this.root, signed, where)
    this.push(signed, canonical(signed))
    // A fresh statement signed by a key the new root dropped is no longer believed.
    for (const [p, f] of this.freshDocs) {
      try {
        verifyFresh(f.text, this.root!, 'the trust store')
      } catch {
        this.freshDocs.delete(p)
      }
    }
    await this.save()
    this.changed({ kind: 'root', version: v })
    return 'accepted'
  }

  /** Accepts whatever of `docs` extends the chain, in version order; returns how many were new. */
  async acceptRoots(docs: Array<Uint8Array | string>, where: string): Promise<number> {
    await loadFormats()
    const parsed = docs.map((d) => ({ d, v: parseRoot(d, where).root.version })).sort((a, b) => a.v - b.v)
    let added = 0
    for (const { d } of parsed) if ((await this.acceptRoot(d, where)) === 'accepted') added++
    return added
  }

  /** A fresh statement for `product`, kept when it verifies and is newer than the held one (rollback of freshness refused). */
  async acceptFresh(bytes: Uint8Array | string, where: string): Promise<FreshOutcome> {
    await loadFormats()
    if (!this.root) throw new UpswarmError('UPSWARM_E_CONFIG', `no root is pinned here, so the fresh statement from ${where} cannot be checked`)
    const signed = verifyFresh(bytes, this.root, where)
    const held = this.freshDocs.get(signed.fresh.product)
    if (held && Date.parse(held.signed.fresh.issued) >= Date.parse(signed.fresh.issued)) return 'not-newer'
    this.freshDocs.set(signed.fresh.product, { text: typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'), signed })
    await this.save()
    this.changed({ kind: 'fresh', product: signed.fresh.product, issued: signed.fresh.issued })
    return 'accepted'
  }

  freshText(product: string): string | undefined {
    return this.freshDocs.get(product)?.text
  }

  fresh(product: string): SignedFresh | undefined {
    return this.freshDocs.get(product)?.signed
  }

  freshness(product: string, nowMs = Date.now()): Freshness | undefined {
    const f = this.freshDocs.get(product)
    return f ? freshnessOf(f.signed.fresh, nowMs) : undefined
  }

  /** May `publicKey` sign r`rev` of `product`? Without a root: undefined (the caller's format-1 pin decides). */
  verdict(product: string, publicKey: string, rev: number): KeyVerdict | undefined {
    return this.root ? keyVerdict(this.root, product, publicKey, rev) : undefined
  }
}

function canonical(signed: SignedRoot): string {
  return encodeEnvelope(signed.env).toString('utf8')
}
