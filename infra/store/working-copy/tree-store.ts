// A working copy's format-2 metadata (docs/formats.md §1.3, §1.6; issue 13 item 3): the release
// documents of the revisions it verified, byte for byte as received (one file per revision), and
// the tree nodes they reach, content-addressed under `nodes/<2 hex>/<sha256>`. The nodes of every
// revision the copy installed stay here, so the next update fetches only the nodes of directories
// that changed (tree-diff.ts). Nothing here is trusted on read: a release is verified again under
// the copy's root by its reader, a node is checked against its name here and decoded by its reader.
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { UpswarmError } from '../../errors.ts'
import { nodeHash } from '../../formats/tree-node.ts'
import { writeFileAtomic } from './atomic.ts'
import type { WorkingCopyLayout } from './layout.ts'
import { eachLimited } from '../../parallel.ts'

const HEX64 = /^[0-9a-f]{64}$/

export class TreeStore {
  private readonly layout: WorkingCopyLayout
  /** Nodes found damaged on read (a torn write after a crash): the caller fetches them again. */
  readonly damaged = new Set<string>()

  constructor(layout: WorkingCopyLayout) {
    this.layout = layout
  }

  private nodeFile(hash: string): string {
    if (!HEX64.test(hash)) throw new UpswarmError('UPSWARM_E_MANIFEST', `tree node name ${JSON.stringify(hash.slice(0, 80))} is not 64 hex characters`)
    return join(this.layout.nodes, hash.slice(0, 2), hash)
  }

  private releaseFile(rev: number): string {
    return join(this.layout.releases2, `${rev}.json`)
  }

  /**
   * A stored node whose bytes hash to `hash`; undefined when it is absent or damaged (then noted in
   * `damaged`). Read synchronously: a node is a few KiB, and a walk reads thousands (at 100 000
   * files a first install's promise reads and writes of nodes were seconds of thread-pool round trips).
   */
  async node(hash: string): Promise<Uint8Array | undefined> {
    let bytes: Buffer
    try {
      bytes = readFileSync(this.nodeFile(hash))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new UpswarmError('UPSWARM_E_IO', `cannot read ${this.nodeFile(hash)}: ${(err as Error).message}`, { cause: err })
    }
    if (nodeHash(bytes) !== hash) {
      this.damaged.add(hash)
      return undefined
    }
    return bytes
  }

  /** Whether a node is stored and not known damaged (no read: a first install asks it of every node). */
  holds(hash: string): boolean {
    return !this.damaged.has(hash) && existsSync(this.nodeFile(hash))
  }

  /**
   * Stores nodes the caller checked against their names. Not fsynced one by one (a first install
   * writes thousands): a node lost or torn by a crash fails its check on read and is fetched again.
   */
  async putNodes(nodes: ReadonlyMap<string, Uint8Array>): Promise<void> {
    const dirs = new Set<string>()
    for (const hash of nodes.keys()) dirs.add(hash.slice(0, 2))
    await Promise.all([...dirs].map((d) => mkdir(join(this.layout.nodes, d), { recursive: true })))
    // Written by the thread pool, 8 at a time, while the loop decodes the next reply (synchronous
    // writes, tried, made a first install of 100 000 files' tree slower: 4.7-5.2 s against 4.0 s).
    await eachLimited([...nodes], 8, async ([hash, bytes]) => {
      await writeFileAtomic(this.nodeFile(hash), bytes, this.layout.tmp, 0o644, false)
      this.damaged.delete(hash)
    })
  }

  /** The release document of `rev` as received, or undefined. */
  async release(rev: number): Promise<string | undefined> {
    try {
      return await readFile(this.releaseFile(rev), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new UpswarmError('UPSWARM_E_IO', `cannot read ${this.releaseFile(rev)}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Stores a release document the caller verified (signature, product, revision, chain). */
  async putRelease(rev: number, text: string): Promise<void> {
    await mkdir(this.layout.releases2, { recursive: true })
    await writeFileAtomic(this.releaseFile(rev), text, this.layout.tmp)
  }

  /** Revisions with a stored release document, ascending. */
  async revisions(): Promise<number[]> {
    let names: string[]
    try {
      names = await readdir(this.layout.releases2)
    } catch {
      return []
    }
    return names.map((n) => /^([1-9][0-9]*)\.json$/.exec(n)?.[1]).filter((r): r is string => r !== undefined).map(Number).sort((a, b) => a - b)
  }

  where(rev: number): string {
    return this.releaseFile(rev)
  }
}
