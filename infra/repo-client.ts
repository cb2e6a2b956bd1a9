// The client side of the repository: asks the proxy for revisions and signed releases, and
// downloads blobs from the server the proxy assigns with K concurrent range requests
// (R-ACCEL-1). Each piece is checked against the manifest's piece hash as it arrives, so a bad
// server is caught early and the piece re-fetched from another one (R-VERIFY).
import { open, rm } from 'node:fs/promises'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, isUpswarmError } from './errors.ts'
import { proxySubject } from './nats/names.ts'
import { request, requestJson } from './nats/service.ts'
import { sha256Hex, PIECE_SIZE } from './release/hash.ts'
import type { FileEntry } from './release/manifest.ts'
import type { BlobStore } from './store/blob-store.ts'

export interface RevisionList {
  product: string
  latest: number
  revs: { rev: number; manifestSha256: string; label: string | null; createdAt: string }[]
}

interface Assignment {
  server: string
  rangeSubject: string
  maxRange: number
}

const MAX_SERVER_SWITCHES = 5

export class RepoClient {
  constructor(private readonly nc: NatsConnection, private readonly timeoutMs = 10_000) {}

  /** R-WATCH: every revision of the product with its manifest hash, from one pool server. */
  async revisions(product: string): Promise<RevisionList> {
    return requestJson<RevisionList>(this.nc, proxySubject('revs'), { product }, this.timeoutMs)
  }

  async release(product: string, rev: number): Promise<Uint8Array> {
    return request(this.nc, proxySubject('manifest'), { product, rev }, this.timeoutMs)
  }

  async sha1s(product: string, rev: number): Promise<{ files: { path: string; sha1: string }[] }> {
    return requestJson(this.nc, proxySubject('sha1s'), { product, rev }, this.timeoutMs)
  }

  /**
   * Downloads one blob into `into` with `threads` concurrent range requests to the assigned
   * server; switches server when one fails or sends a bad piece. Returns bytes received.
   */
  async fetchBlob(product: string, entry: FileEntry, into: BlobStore, opts: { threads: number; signal?: AbortSignal; pieceSize?: number }): Promise<{ bytesFromServers: number; servers: string[] }> {
    if (await into.has(entry.sha256)) return { bytesFromServers: 0, servers: [] }
    const pieceSize = opts.pieceSize ?? PIECE_SIZE
    const count = Math.max(1, Math.ceil(entry.size / pieceSize))
    const pieceHash = (i: number): string => (entry.pieces ? entry.pieces[i]! : entry.sha256)
    const tmp = await into.stagingPath()
    const fh = await open(tmp, 'w')
    const excluded: string[] = []
    const used: string[] = []
    let received = 0
    try {
      let assignment = await this.assign(product, excluded)
      used.push(assignment.server)
      const queue = Array.from({ length: count }, (_, i) => i)
      const worker = async (): Promise<void> => {
        for (;;) {
          opts.signal?.throwIfAborted()
          const i = queue.shift()
          if (i === undefined) return
          const offset = i * pieceSize
          const length = Math.min(pieceSize, entry.size - offset)
          if (length === 0) return
          const current = assignment
          try {
            const data = await request(this.nc, current.rangeSubject, { sha256: entry.sha256, offset, length }, this.timeoutMs)
            received += data.length
            if (data.length !== length || sha256Hex(data) !== pieceHash(i)) {
              throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `server ${current.server} sent a bad piece ${i} of ${entry.path}`)
            }
            await fh.write(data, 0, data.length, offset)
          } catch (err) {
            if (isUpswarmError(err) && err.code === 'UPSWARM_E_BAD_REQUEST') throw err
            queue.push(i)
            if (assignment === current) {
              excluded.push(current.server)
              if (excluded.length > MAX_SERVER_SWITCHES) throw err
              assignment = await this.assign(product, excluded)
              used.push(assignment.server)
            }
          }
        }
      }
      await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.threads, count)) }, worker))
      await fh.close()
      await into.commitFile(entry.sha256, tmp, `server ${used.join(', ')}`, entry.size)
    } catch (err) {
      await fh.close().catch(() => {})
      await rm(tmp, { force: true })
      throw err
    }
    return { bytesFromServers: received, servers: used }
  }

  private async assign(product: string, exclude: string[]): Promise<Assignment> {
    return requestJson<Assignment>(this.nc, proxySubject('assign'), { product, exclude }, this.timeoutMs)
  }
}
