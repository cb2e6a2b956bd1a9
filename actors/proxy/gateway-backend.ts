// The HTTP gateway's view of the repository through NATS: manifests via the proxy's forwarding
// and blob bytes as pipelined range requests to one assigned server (R-ACCEL-1).
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, isUpswarmError } from '../../infra/errors.ts'
import type { GatewayBackend } from '../../infra/http/gateway.ts'
import { repoSubject, type RepoOp } from '../../infra/nats/names.ts'
import { request } from '../../infra/nats/service.ts'
import { SignedReleaseSchema, type SignedRelease } from '../../infra/release/manifest.ts'
import type { Pool } from './pool.ts'

const CHUNK = 1024 * 1024
const PIPELINE = 4
const CACHE_LIMIT = 256

type Forward = (op: RepoOp, product: string, rev: number | undefined, payload: unknown) => Promise<Uint8Array>

export function natsGatewayBackend(nc: NatsConnection, pool: Pool, forward: Forward): GatewayBackend {
  const cache = new Map<string, SignedRelease>()

  return {
    products: () => pool.products(),

    async release(product, rev) {
      const wanted = rev === 'latest' ? pool.newest(product) : rev
      if (wanted === 0) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `no healthy repository server holds product ${product}`)
      const key = `${product}/${wanted}`
      const hit = cache.get(key)
      if (hit) return hit
      const bytes = await forward('manifest', product, wanted, { product, rev: wanted })
      // Servers only serve releases they verified; the gateway re-parses at its own boundary.
      const release = SignedReleaseSchema.parse(JSON.parse(Buffer.from(bytes).toString('utf8')))
      if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!)
      cache.set(key, release)
      return release
    },

    async *read(product, rev, sha256, start, end) {
      const chunks: { offset: number; length: number }[] = []
      for (let off = start; off <= end; off += CHUNK) chunks.push({ offset: off, length: Math.min(CHUNK, end - off + 1) })
      const failed = new Set<string>()
      const fetchChunk = async (c: { offset: number; length: number }): Promise<Uint8Array> => {
        for (;;) {
          const server = pool.assign(product, rev, failed)
          if (!server) throw new UpswarmError('UPSWARM_E_NO_SERVER', `no healthy repository server can send blob ${sha256}`)
          try {
            return await request(nc, repoSubject(server, 'range'), { sha256, offset: c.offset, length: c.length }, 10_000)
          } catch (err) {
            if (isUpswarmError(err) && err.code === 'UPSWARM_E_BAD_REQUEST') throw err
            failed.add(server)
            pool.failed(server, (err as Error).message)
          }
        }
      }
      const inflight: Promise<Uint8Array>[] = []
      let next = 0
      while (next < chunks.length && inflight.length < PIPELINE) inflight.push(fetchChunk(chunks[next++]!))
      while (inflight.length > 0) {
        const data = await inflight.shift()!
        if (next < chunks.length) inflight.push(fetchChunk(chunks[next++]!))
        yield data
      }
    },
  }
}
