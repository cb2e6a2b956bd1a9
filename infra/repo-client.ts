// The client side of the repository: asks the proxy for revisions and signed releases, and
// downloads blobs from the server the proxy assigns with K concurrent range requests
// (R-ACCEL-1). Each piece is checked against the manifest's piece hash as it arrives, so a bad
// server is caught early and the piece re-fetched from another one (R-VERIFY).
import { createHash, randomBytes, type Hash } from 'node:crypto'
import { open, rm } from 'node:fs/promises'
import type { NatsConnection } from '@nats-io/transport-node'
import { waitAfterBusy } from './nats/busy.ts'
import { UpswarmError, errorMessage, isUpswarmError } from './errors.ts'
import type { BulkReader } from './http/bulk-client.ts'
import { BulkOffer } from './http/bulk-wire.ts'
import { proxySubject } from './nats/names.ts'
import { request, requestJson } from './nats/request.ts'
import { sha256Hex, PIECE_SIZE } from './release/hash.ts'
import { NODES_MAX_HASHES, decodeNodesReply } from './formats/meta-wire.ts'
import type { FileEntry } from './release/manifest.ts'
import type { BlobStore } from './store/blob-store.ts'
import { BufferPool } from './buffer-pool.ts'

export interface RevisionList {
  product: string
  latest: number
  revs: { rev: number; manifestSha256: string; label: string | null; createdAt: string }[]
  /** Issue 11 item 8: revisions 1 … through were pruned by an operator (manifests only, no file contents). */
  pruned?: { through: number; at: string }
}

/** Largest byte range one request to a repository server may ask for (its range endpoint's bound). */
export const MAX_RANGE = 4 * 1024 * 1024

/** The proxy's answer to `assign`: the server to pull ranges from (R-ACCEL-1). */
export interface Assignment {
  server: string
  rangeSubject: string
  maxRange: number
}

const MAX_SERVER_SWITCHES = 5

export class RepoClient {
  /** `bulk: false` reads every range over NATS (RangeReader's option; the default follows UPSWARM_BULK). */
  constructor(private readonly nc: NatsConnection, private readonly timeoutMs = 10_000, private readonly opts: { bulk?: boolean } = {}) {}

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

  /** A range reader bound to one assigned server, switching server when one fails. */
  rangeReader(product: string): RangeReader {
    return new RangeReader(this.nc, product, this.timeoutMs, { bulks: this.bulks, ...(this.opts.bulk !== undefined ? { bulk: this.opts.bulk } : {}) })
  }

  /** The servers' bulk ports, shared by this client's range readers: one offer and one set of connections per server. */
  private readonly bulks: BulkPorts = new Map()
  /** 1 MiB piece buffers fetchBlob reuses (issue 14 item 2: no garbage per piece for the collector). */
  private readonly spare = new BufferPool(PIECE_SIZE, MAX_SPARE)

  /**
   * Downloads one blob into `into` with `threads` concurrent range requests to the assigned
   * server (R-ACCEL-1); each piece is checked against the manifest's piece hash on arrival.
   * `sync: false`: not fsynced (a working copy's history store; BlobStore.commitFile). `reader`:
   * an assignment already made (otherwise the proxy is asked for one, so large blobs spread).
   */
  async fetchBlob(product: string, entry: FileEntry, into: BlobStore, opts: { threads: number; signal?: AbortSignal; pieceSize?: number; sync?: boolean; reader?: RangeReader }): Promise<{ bytesFromServers: number; servers: string[] }> {
    if (await into.has(entry.sha256)) return { bytesFromServers: 0, servers: [] }
    const pieceSize = opts.pieceSize ?? PIECE_SIZE
    const count = Math.max(1, Math.ceil(entry.size / pieceSize))
    const reader = opts.reader ?? this.rangeReader(product)
    const tmp = await into.stagingPath()
    const fh = await open(tmp, 'w')
    const digests = new InOrderDigests(entry.sha1 !== undefined)
    let received = 0
    try {
      let next = 0
      const worker = async (): Promise<void> => {
        for (let i = next++; i < count; i = next++) {
          opts.signal?.throwIfAborted()
          const offset = i * pieceSize
          const length = Math.min(pieceSize, entry.size - offset)
          if (length === 0) continue
          const buffer = pieceSize === PIECE_SIZE ? this.spare.take() : undefined
          const data = await reader.readPiece(entry.sha256, offset, length, pieceHashOf(entry, i, pieceSize), opts.signal, buffer)
          received += data.length
          const written = fh.write(data, 0, data.length, offset)
          // The buffer goes back once its piece is written and hashed (an early piece is hashed
          // later); at once if the piece came in another (over NATS).
          const filled = buffer !== undefined && data.buffer === buffer.buffer
          const keep = (): void => {
            if (buffer) this.spare.give(buffer)
          }
          if (!filled) keep()
          let uses = 2
          const done = (): void => {
            if (--uses === 0 && filled) keep()
          }
          digests.add(i, data, done)
          await written
          done()
        }
      }
      await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.threads, count)) }, worker))
      await fh.close()
      await into.commitFile(entry.sha256, tmp, `server ${reader.servers.join(', ')}`, entry.size, entry.sha1, digests.result(), { sync: opts.sync !== false })
    } catch (err) {
      await fh.close().catch(() => {})
      await rm(tmp, { force: true })
      throw err
    }
    return { bytesFromServers: received, servers: reader.servers }
  }
}

/** Pieces held back for the in-order digests before they are given up (the commit then reads the file). */
const MAX_HELD_PIECES = 32
/** How often, and how far apart, a "no server" answer from the proxies is asked again (RangeReader.assign). */
const NO_SERVER_ASKS = 3
const NO_SERVER_WAIT_MS = 500
/** Piece buffers a client keeps for the next pieces. */
const MAX_SPARE = 16

/** The servers' bulk ports by server id: a reader, or null where there is none (or it cannot be reached). */
export type BulkPorts = Map<string, Promise<BulkReader | null>>

/**
 * Issue 14 item 2: SHA-256 and SHA-1 of a blob taken from its pieces as they arrive, in order
 * (a piece that comes early waits for the ones before it, at most MAX_HELD_PIECES of them), so
 * the commit need not read the whole blob back. Undefined (read it back) when too many waited.
 */
class InOrderDigests {
  private readonly sha256 = createHash('sha256')
  private readonly sha1: Hash | null
  private readonly held = new Map<number, { data: Buffer; hashed: () => void }>()
  private next = 0
  private size = 0
  private gaveUp = false

  constructor(sha1: boolean) {
    this.sha1 = sha1 ? createHash('sha1') : null
  }

  /** Piece `i`; `hashed` is called once its bytes are no longer needed here. */
  add(i: number, data: Buffer, hashed: () => void): void {
    if (this.gaveUp) return hashed()
    this.held.set(i, { data, hashed })
    for (let p = this.held.get(this.next); p; p = this.held.get(this.next)) {
      this.held.delete(this.next++)
      this.sha256.update(p.data)
      this.sha1?.update(p.data)
      this.size += p.data.length
      p.hashed()
    }
    if (this.held.size > MAX_HELD_PIECES) {
      this.gaveUp = true
      for (const p of this.held.values()) p.hashed()
      this.held.clear()
    }
  }

  result(): { sha256: string; sha1?: string; size: number } | undefined {
    if (this.gaveUp || this.held.size > 0) return undefined
    return { sha256: this.sha256.digest('hex'), size: this.size, ...(this.sha1 ? { sha1: this.sha1.digest('hex') } : {}) }
  }
}

/**
 * Issue 15: an object by its SHA-256 (a delta, a compressed file), `length` bytes, from the
 * assigned server: one range per piece, `threads` at a time, each a piece checked on arrival when
 * the object is one piece, the whole checked against its hash (R-VERIFY) before it is returned.
 */
export async function fetchUnit(reader: RangeReader, sha256: string, length: number, opts: { threads: number; signal?: AbortSignal }): Promise<Buffer> {
  if (length <= PIECE_SIZE) return reader.readPiece(sha256, 0, length, sha256)
  const count = Math.ceil(length / PIECE_SIZE)
  const parts: Buffer[] = new Array(count)
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      opts.signal?.throwIfAborted()
      parts[i] = await reader.readPiece(sha256, i * PIECE_SIZE, Math.min(PIECE_SIZE, length - i * PIECE_SIZE), undefined)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.threads, count)) }, worker))
  const bytes = Buffer.concat(parts)
  if (sha256Hex(bytes) !== sha256) throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `object ${sha256} from server ${reader.servers.join(', ')} does not hash to its name`)
  return bytes
}

/**
 * The expected SHA-256 of piece `i` of a file entry; undefined for a piece of a file larger than
 * one piece that has no piece hashes (a format-2 entry: its tree carries chunk hashes, not 1 MiB
 * piece hashes), whose bytes are checked as a whole by the blob store's commit (R-VERIFY).
 */
export function pieceHashOf(entry: FileEntry, i: number, pieceSize = PIECE_SIZE): string | undefined {
  if (entry.pieces) return entry.pieces[i]!
  return entry.size <= pieceSize ? entry.sha256 : undefined
}

/**
 * Ranges shorter than this open no bulk port (its offer is a NATS round trip and its connection a
 * TLS handshake, 20–40 ms here): an update of a few small files stays on NATS. A port already open
 * takes every range.
 */
export const BULK_OPEN_MIN = 256 * 1024

/**
 * Reads verified pieces of blobs from the server the proxy assigns; a server that fails or
 * sends a bad piece is excluded and another one assigned (R-VERIFY: retry from another source).
 */
export class RangeReader {
  private assignment: Promise<Assignment> | undefined
  private readonly excluded: string[] = []
  readonly servers: string[] = []
  /** Pieces a server sent that did not verify. */
  badPieces = 0
  /** Answers `busy` (a capped server's queue longer than the request waited): each asked again, ready to wait. */
  busyAnswers = 0

  /** Issue 14 item 2: each assigned server's bulk port, or null where there is none (or it cannot be reached). */
  private readonly bulks: BulkPorts
  /** Why a bulk port was given up for NATS, one line per server. */
  readonly bulkFailures: string[] = []
  private readonly useBulk: boolean
  /** Servers whose bulk port serves no units (an earlier release): their batches go over NATS. */
  private readonly unitsOverNats = new Set<string>()
  /** Bytes received over bulk ports (the rest of what readPiece returned came over NATS). */
  bulkBytes = 0

  /**
   * `bulk: false` (or UPSWARM_BULK=0 in the environment) reads every range over NATS; `bulks`
   * shares the bulk ports' offers and connections with other readers (RepoClient's).
   */
  constructor(private readonly nc: NatsConnection, private readonly product: string, private readonly timeoutMs: number, opts: { bulk?: boolean; bulks?: BulkPorts } = {}) {
    this.useBulk = opts.bulk ?? process.env.UPSWARM_BULK !== '0'
    this.bulks = opts.bulks ?? new Map()
  }

  /**
   * The server's bulk port: its offer asked once over NATS. None from a server of an earlier
   * release (no responder), one started without it, or with UPSWARM_BULK=0 in the environment.
   */
  private bulkOf(a: Assignment): Promise<BulkReader | null> {
    // Before the shared map: a reader told to use NATS never takes another reader's bulk port.
    if (!this.useBulk) return Promise.resolve(null)
    let got = this.bulks.get(a.server)
    if (!got) {
      const subject = a.rangeSubject.replace(/\.range$/, '.bulk')
      const offer = async (): Promise<BulkOffer> => BulkOffer.parse(await requestJson(this.nc, subject, {}, this.timeoutMs))
      got = Promise.all([offer(), import('./http/bulk-client.ts')]).then(([o, { BulkReader }]) => new BulkReader(o, a.server, offer), () => null)
      this.bulks.set(a.server, got)
    }
    return got
  }

  /**
   * Whether `err` says the server's bulk port cannot be reached from here (a firewall, a server
   * behind NAT): then the port is given up for NATS, and why is kept.
   */
  private bulkUnreachable(a: Assignment, err: unknown): boolean {
    if ((err as Error).name !== 'BulkUnreachable') return false
    this.bulks.set(a.server, Promise.resolve(null))
    this.bulkFailures.push(errorMessage(err))
    return true
  }

  /**
   * A server from the proxies. Proxies answer as one queue group, and one that started a moment
   * ago has not heard every server's heartbeats yet: its "no server" is asked again, at most
   * NO_SERVER_ASKS times, NO_SERVER_WAIT_MS apart, before it is believed.
   */
  private async assign(): Promise<Assignment> {
    for (let ask = 1; ; ask++) {
      try {
        return await requestJson<Assignment>(this.nc, proxySubject('assign'), { product: this.product, exclude: this.excluded }, this.timeoutMs)
      } catch (err) {
        if (ask >= NO_SERVER_ASKS || !isUpswarmError(err, 'UPSWARM_E_NO_SERVER') || err.details?.status !== '503') throw err
        await new Promise((r) => setTimeout(r, NO_SERVER_WAIT_MS))
      }
    }
  }

  private current(): Promise<Assignment> {
    this.assignment ??= this.assign()
      .then((a) => {
        this.servers.push(a.server)
        return a
      })
    const pending = this.assignment
    pending.catch(() => {
      if (this.assignment === pending) this.assignment = undefined
    })
    return pending
  }

  /**
   * A verified piece (over the bulk port, checked against `expected`: its SHA-256, or a test of
   * the bytes, e.g. a run of chunks each checked by its hash; a piece that fails it is asked of
   * another server, in `into` when given: a buffer of at least `length` bytes
   * the caller reuses). With `signal`, the request carries a ticket: aborting it tells the server,
   * which drops the range unsent if it is still waiting for its turn (issue 14: servers do not
   * upload what a client no longer needs), and rejects with the signal's reason at once.
   */
  async readPiece(sha256: string, offset: number, length: number, expected: string | ((data: Buffer) => boolean) | undefined, signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    let lastErr: unknown
    // What this request waits for its answer, told to the server (issue 14: a capped server answers
    // `busy` with its queue's wait rather than let the range time out there).
    let waitMs = this.timeoutMs
    let busyAsks = 0
    for (let attempt = 0; attempt <= MAX_SERVER_SWITCHES; attempt++) {
      signal?.throwIfAborted()
      const pending = this.current()
      const a = await pending
      try {
        const range = { sha256, offset, length, waitMs }
        const overNats = async (): Promise<Buffer> => Buffer.from(signal
          ? await this.withdrawable(a, range, signal, waitMs)
          : await request(this.nc, a.rangeSubject, range, waitMs))
        // A small range alone does not pay for the offer and a TLS handshake: it opens no bulk port.
        const bulk = length >= BULK_OPEN_MIN || this.bulks.has(a.server) ? await this.bulkOf(a) : null
        const data = bulk
          ? await bulk.read(sha256, offset, length, waitMs, signal, into).then((d) => {
            this.bulkBytes += d.length
            return d
          }, (err: unknown) => {
            if (!this.bulkUnreachable(a, err)) throw err
            return overNats()
          })
          : await overNats()
        if (data.length === length && (expected === undefined || (typeof expected === 'function' ? expected(data) : sha256Hex(data) === expected))) return data
        this.badPieces++
        lastErr = new UpswarmError('UPSWARM_E_HASH_MISMATCH', `server ${a.server} sent a bad piece at ${offset} of blob ${sha256}`)
      } catch (err) {
        if (signal?.aborted) throw signal.reason
        if (isUpswarmError(err) && err.code === 'UPSWARM_E_BAD_REQUEST') throw err
        // A busy server is slow, not bad: asked again at once, ready to wait what it said (bounded).
        const longer = waitAfterBusy(err, busyAsks, this.timeoutMs)
        if (longer !== undefined) {
          busyAsks++
          this.busyAnswers++
          waitMs = longer
          attempt--
          continue
        }
        lastErr = err
      }
      if (this.assignment === pending) {
        this.excluded.push(a.server)
        this.assignment = undefined
      }
    }
    throw lastErr
  }

  /**
   * Issue 13 item 4: small units by the batch from the assigned server (its `units` request),
   * each checked against its name by the reply's decoder (R-VERIFY). What the server does not hold,
   * and everything when the server has no `units` request (an older release), is left out: the
   * caller fetches those the per-file way. A reply that does not verify excludes the server.
   */
  async readUnits(hashes: readonly string[], opts: { bulk?: boolean } = {}): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>()
    let todo = [...new Set(hashes)]
    // What the next request waits, told to the server (issue 14), and the busy answers taken.
    let waitMs = this.timeoutMs
    let busyAsks = 0
    while (todo.length > 0) {
      const pending = this.current()
      const a = await pending
      const subject = a.rangeSubject.replace(/\.range$/, '.units')
      const ask = todo.slice(0, NODES_MAX_HASHES)
      let got: { nodes: Map<string, Uint8Array>; left: string[] }
      try {
        const overNats = (): Promise<Uint8Array> => request(this.nc, subject, { hashes: ask, waitMs }, waitMs)
        // A large batch over the bulk port (issue 13 item 4): the bytes skip the NATS routes.
        const bulk = opts.bulk && !this.unitsOverNats.has(a.server) ? await this.bulkOf(a) : null
        const reply = bulk
          ? await bulk.units(ask, waitMs).then((d) => {
            this.bulkBytes += d.length
            return d
          }, (err: unknown) => {
            if (isUpswarmError(err, 'UPSWARM_E_NOT_FOUND')) this.unitsOverNats.add(a.server) // a server of an earlier release: ranges only
            else if (!this.bulkUnreachable(a, err)) throw err
            return overNats()
          })
          : await overNats()
        got = decodeNodesReply(reply, ask, `server ${a.server}`, 'unit')
        waitMs = this.timeoutMs
        busyAsks = 0
      } catch (err) {
        // A busy server is slow, not bad: the same batch again, ready to wait what it said (bounded).
        const longer = waitAfterBusy(err, busyAsks, this.timeoutMs)
        if (longer !== undefined) {
          busyAsks++
          this.busyAnswers++
          waitMs = longer
          continue
        }
        if (isUpswarmError(err, 'UPSWARM_E_PEER')) {
          this.badPieces++
          if (this.assignment === pending) {
            this.excluded.push(a.server)
            this.assignment = undefined
          }
        }
        return out // the rest the per-file way
      }
      for (const [h, b] of got.nodes) out.set(h, b)
      const left = new Set(got.left)
      // Neither sent nor left: not held there. Sent nothing and left everything: stop asking.
      if (got.nodes.size === 0) return out
      todo = [...ask.filter((h) => left.has(h)), ...todo.slice(ask.length)]
    }
    return out
  }

  private async withdrawable(a: Assignment, range: { sha256: string; offset: number; length: number; waitMs: number }, signal: AbortSignal, timeoutMs: number): Promise<Uint8Array> {
    const ticket = randomBytes(12).toString('base64url')
    const reply = request(this.nc, a.rangeSubject, { ...range, ticket }, timeoutMs)
    let onAbort!: () => void
    const withdrawn = new Promise<never>((_, reject) => {
      onAbort = (): void => {
        // Best effort: a server of the previous release has no cancel endpoint and sends the range.
        try {
          this.nc.publish(a.rangeSubject.replace(/\.range$/, '.cancel'), JSON.stringify({ ticket }))
        } catch { /* closed connection: nothing to withdraw */ }
        reject(signal.reason)
      }
    })
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    try {
      return await Promise.race([reply, withdrawn])
    } finally {
      signal.removeEventListener('abort', onAbort)
      withdrawn.catch(() => {})
      reply.catch(() => {}) // settles later (the server's "cancelled", or a timeout): nobody waits for it
    }
  }
}
