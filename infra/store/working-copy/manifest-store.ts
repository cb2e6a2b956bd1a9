// Verified signed releases of the revisions this working copy knows, one file per revision.
// Files are re-verified when read, under the key they name, which the working copy must trust
// (the pinned key, or a key of its root): a tampered metadata folder is refused, not trusted.
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { UpswarmError } from '../../errors.ts'
import { verifyBytes } from '../../release/keys.ts'
import { encodeRelease } from '../../release/manifest-core.ts'
import type { Manifest, SignedRelease } from '../../release/manifest.ts'
import { writeFileAtomic } from './atomic.ts'
import { manifestFile, type WorkingCopyLayout } from './layout.ts'

const MANIFEST_FIELD = Buffer.from('{"manifest":')
const PUBLIC_KEY_FIELD = Buffer.from(',"publicKey":"')

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

export class ManifestStore {
  private readonly layout: WorkingCopyLayout
  private readonly trusts: (publicKey: string) => boolean
  private readonly cache = new Map<number, SignedRelease>()

  constructor(layout: WorkingCopyLayout, trusts: (publicKey: string) => boolean) {
    this.layout = layout
    this.trusts = trusts
  }

  private file(rev: number): string {
    return manifestFile(this.layout, rev)
  }

  async get(rev: number): Promise<SignedRelease | undefined> {
    const hit = this.cache.get(rev)
    if (hit) return hit
    let bytes: Buffer
    try {
      bytes = await readFile(this.file(rev))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new UpswarmError('UPSWARM_E_IO', `cannot read ${this.file(rev)}: ${(err as Error).message}`, { cause: err })
    }
    const release = await this.decodeStored(bytes, this.file(rev))
    if (release.manifest.rev !== rev) {
      throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${this.file(rev)} holds revision ${release.manifest.rev}, not ${rev}; delete it and run the command again`)
    }
    this.cache.set(rev, release)
    return release
  }

  /**
   * A stored file is `encodeRelease` output: canonical JSON whose `manifest` value is exactly
   * the signed bytes. Verifying the signature over that slice skips re-canonicalising (the
   * costly part for 100 000 entries); anything else takes the full decodeRelease path.
   */
  private async decodeStored(bytes: Buffer, file: string): Promise<SignedRelease> {
    const at = bytes.lastIndexOf(PUBLIC_KEY_FIELD)
    if (bytes.subarray(0, MANIFEST_FIELD.length).equals(MANIFEST_FIELD) && at > MANIFEST_FIELD.length) {
      const signed = bytes.subarray(MANIFEST_FIELD.length, at)
      const tail = safeParse(`{${bytes.subarray(at + 1).toString('utf8')}`) as { publicKey?: unknown; signature?: unknown } | undefined
      const key = tail?.publicKey
      if (typeof key === 'string' && /^[0-9a-f]{64}$/.test(key) && this.trusts(key) && typeof tail?.signature === 'string' && verifyBytes(key, signed, tail.signature)) {
        return { manifest: JSON.parse(signed.toString('utf8')) as Manifest, publicKey: key, signature: tail.signature }
      }
    }
    // Issue 13 item 1: the schemas (and zod) load only for a file the fast path did not take.
    const { decodeSelfSigned } = await import('../../release/manifest.ts')
    const release = decodeSelfSigned(bytes, file)
    if (!this.trusts(release.publicKey)) {
      throw new UpswarmError('UPSWARM_E_SIGNATURE', `${file} is signed by key ${release.publicKey.slice(0, 16)}…, which this working copy does not trust; delete it and run the command again`)
    }
    return release
  }

  /** Stores a release the caller has verified (signature, product, revision, history record). */
  async put(release: SignedRelease): Promise<void> {
    await mkdir(this.layout.manifests, { recursive: true })
    await writeFileAtomic(this.file(release.manifest.rev), encodeRelease(release), this.layout.tmp)
    this.cache.set(release.manifest.rev, release)
  }

  async revisions(): Promise<number[]> {
    let names: string[]
    try {
      names = await readdir(this.layout.manifests)
    } catch {
      return []
    }
    return names.map((n) => /^([1-9][0-9]*)\.json$/.exec(n)?.[1]).filter((r): r is string => r !== undefined).map(Number).sort((a, b) => a - b)
  }
}
