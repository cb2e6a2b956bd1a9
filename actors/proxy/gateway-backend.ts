// The HTTP gateway's and SFTP door's view of the repository through NATS (R-PROXY-PROTO). Nothing
// a server sends is passed on unverified (R-VERIFY): a manifest only when its signature verifies
// under a key the trust file pins for the product, bytes only once the piece (or file) SHA-256
// of that manifest matches. Each piece comes from one assigned server, pipelined (R-ACCEL-1); a
// server caught sending a bad manifest or bad bytes is quarantined in the pool.
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import type { GatewayBackend } from '../../infra/http/gateway.ts'
import { repoSubject, type RepoOp } from '../../infra/nats/names.ts'
import { request } from '../../infra/nats/service.ts'
import { SignedReleaseSchema, decodeRelease, type SignedRelease } from '../../infra/release/manifest.ts'
import type { TrustStore } from '../../infra/release/trust.ts'
import { unitsCovering, verifiedRange, type HashUnit, type UnitChunk } from '../../infra/release/verified-range.ts'
import type { Pool } from './pool.ts'
import { waitAfterBusy } from '../../infra/nats/busy.ts'

/** What a range request of the gateway waits for its answer; a busy answer extends it. */
const RANGE_WAIT_MS = 10_000

const CHUNK = 1024 * 1024
const PIPELINE = 4
const CACHE_LIMIT = 256

/** Forwards a request to an assigned server not in `tried` (adding it there); says which one answered. */
export type ForwardFrom = (op: RepoOp, product: string, rev: number | undefined, payload: unknown, tried: Set<string>) =>
  Promise<{ server: string; bytes: Uint8Array }>

export interface GatewayBackendOptions {
  nc: NatsConnection
  pool: Pool
  forward: ForwardFrom
  /** The products' pinned publisher keys; without it no manifest is trusted. Private products are not served here at all. */
  trust: Pick<TrustStore, 'refusal' | 'isPrivate'> | undefined
  log: (msg: string) => void
}

type Job = Omit<UnitChunk, 'bytes' | 'source'> & { length: number }

export function natsGatewayBackend({ nc, pool, forward, trust, log }: GatewayBackendOptions): GatewayBackend {
  const cache = new Map<string, SignedRelease>()
  const quarantine = (server: string, reason: string): void => {
    log(`quarantined server ${server}: ${reason}`)
    pool.suspect(server, reason)
  }
  const refusal = (product: string, publicKey: string, rev: number): Promise<string | null> | string => trust
    ? trust.refusal(product, publicKey, rev)
    : `the proxy has no trust file: start it with --trust FILE (or UPSWARM_TRUST) naming each product's publisher keys`

  return {
    // Issue 10 item 9: a private product is for the fleet's members, who fetch it over NATS and the
    // swarm with their identities; these doors ask for none, so they neither list nor serve it.
    async products() {
      const all = pool.products()
      const out: Record<string, number> = {}
      for (const [p, rev] of Object.entries(all)) if (!(await trust?.isPrivate(p).catch(() => true))) out[p] = rev
      return out
    },

    async release(product, rev) {
      if (await trust?.isPrivate(product).catch(() => true)) {
        throw new UpswarmError('UPSWARM_E_NOT_FOUND', `product ${product} is private: it is served to members of the fleet over NATS and the swarm, not by the gateway or the SFTP door`)
      }
      const wanted = rev === 'latest' ? pool.newest(product) : rev
      if (wanted === 0) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `no healthy repository server holds product ${product}`)
      const key = `${product}/${wanted}`
      const hit = cache.get(key)
      // The trust file may have changed since: a key the operator removed is not trusted any more.
      const hitRefused = hit && (await refusal(product, hit.publicKey, wanted))
      if (hit && !hitRefused) return hit
      cache.delete(key)
      const tried = new Set<string>()
      let badFrom: UpswarmError | undefined
      for (;;) {
        let answer: { server: string; bytes: Uint8Array }
        try {
          answer = await forward('manifest', product, wanted, { product, rev: wanted }, tried)
        } catch (err) {
          // Every server left sent a bad manifest or none is left: say what the last one sent.
          throw badFrom && isUpswarmError(err, 'UPSWARM_E_NO_SERVER') ? badFrom : err
        }
        const where = `server ${answer.server}`
        const claimed = SignedReleaseSchema.safeParse(safeJson(answer.bytes))
        // A release signed by a key that is not pinned is not this server's fault: every server holds it.
        const refused = claimed.success && (await refusal(product, claimed.data.publicKey, wanted))
        if (refused) throw new UpswarmError('UPSWARM_E_SIGNATURE', `refusing revision ${wanted} of ${product} from ${where}: ${refused}`)
        try {
          const release = decodeRelease(answer.bytes, claimed.success ? claimed.data.publicKey : '', where)
          if (release.manifest.product !== product || release.manifest.rev !== wanted) {
            throw new UpswarmError('UPSWARM_E_MANIFEST', `${where} answered revision ${wanted} of ${product} with revision ${release.manifest.rev} of ${release.manifest.product}`)
          }
          if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!)
          cache.set(key, release)
          return release
        } catch (err) {
          badFrom = err as UpswarmError
          quarantine(answer.server, errorMessage(err))
        }
      }
    },

    async *read(release, entry, start, end) {
      const { product, rev, pieceSize } = release.manifest
      const what = `${entry.path} of ${product} r${rev}`
      const jobs = unitsCovering(entry, pieceSize, start, end).flatMap((unit) => chunksOf(unit))
      const serverOf = new Map<HashUnit, string>()
      const failed = new Set<string>()
      const fetchChunk = async (job: Job): Promise<UnitChunk> => {
        // What the request waits, told to the server (issue 14: a capped server answers busy with
        // its queue's wait instead of letting the range time out), and the busy answers taken.
        let waitMs = RANGE_WAIT_MS
        let busyAsks = 0
        for (;;) {
          // Every chunk of a piece from the same server: a bad piece names the server that sent it.
          const server = serverOf.get(job.unit) ?? pool.assign(product, rev, failed)
          if (!server) throw new UpswarmError('UPSWARM_E_NO_SERVER', `no healthy repository server can send ${what}`)
          serverOf.set(job.unit, server)
          try {
            const bytes = await request(nc, repoSubject(server, 'range'), { sha256: entry.sha256, offset: job.offset, length: job.length, waitMs }, waitMs)
            return { unit: job.unit, offset: job.offset, last: job.last, bytes, source: server }
          } catch (err) {
            if (isUpswarmError(err, 'UPSWARM_E_BAD_REQUEST')) throw err
            // Slow, not bad: the same server again, ready to wait what it said (bounded).
            const longer = waitAfterBusy(err, busyAsks, RANGE_WAIT_MS)
            if (longer !== undefined) {
              busyAsks++
              waitMs = longer
              continue
            }
            waitMs = RANGE_WAIT_MS
            failed.add(server)
            if (serverOf.get(job.unit) === server) serverOf.delete(job.unit)
            pool.failed(server, errorMessage(err))
          }
        }
      }
      async function* fetched(): AsyncGenerator<UnitChunk> {
        const inflight: Promise<UnitChunk>[] = []
        let next = 0
        const start = (): void => {
          const p = fetchChunk(jobs[next++]!)
          p.catch(() => {}) // awaited below in order; a response that ends early leaves the rest unread
          inflight.push(p)
        }
        while (next < jobs.length && inflight.length < PIPELINE) start()
        while (inflight.length > 0) {
          const chunk = await inflight.shift()!
          if (next < jobs.length) start()
          yield chunk
        }
      }
      try {
        yield* verifiedRange(fetched(), start, end, what)
      } catch (err) {
        if (isUpswarmError(err, 'UPSWARM_E_HASH_MISMATCH')) {
          for (const server of (err.details?.sources ?? []) as string[]) quarantine(server, err.message)
        }
        throw err
      }
    },
  }
}

/** The range requests that fetch one unit, at most CHUNK bytes each. */
function chunksOf(unit: HashUnit): Job[] {
  const jobs: Job[] = []
  for (let offset = unit.start; offset < unit.end; offset += CHUNK) {
    const length = Math.min(CHUNK, unit.end - offset)
    jobs.push({ unit, offset, length, last: offset + length >= unit.end })
  }
  return jobs
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return undefined
  }
}
