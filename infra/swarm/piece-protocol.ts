// The piece protocol (ARCHITECTURE §5, R-ACCEL-2, R-ACCEL-3, R-SHARE): one Protomux channel
// 'upswarm/pieces' per encrypted connection, beside the release feed's Hypercore channel.
// Pieces are addressed by blob SHA-256 + byte range, never by revision, so a peer at any
// revision serves every blob it holds. Wire format: docs/protocol.md, codec: piece-codec.ts.
//
// Everything a peer sends is untrusted: a malformed or abusive message closes this channel
// (the connection and its other channels stay up) and is reported as 'protocol-error';
// nothing here throws into Protomux, and every remote-driven structure is capped.
import { EventEmitter } from 'node:events'
import b4a from 'b4a'
import c from 'compact-encoding'
import { rawDecode, sentTypedReceivedRaw } from './wire-kit.ts'
import Protomux, { type Channel, type ProtomuxMessage } from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { UpswarmError, errorMessage, type ErrorCode } from '../errors.ts'
import {
  MAX_HAVE_PER_MESSAGE, MAX_OUTSTANDING_LIMIT, MAX_PRODUCT_BYTES, MAX_REQUEST_LENGTH, PROTOCOL, PROTOCOL_VERSION,
  PieceDecodeError, decoders, decodeHandshake, encoders, toBytes,
  type DataMessage, type HaveMessage, type HavePieceMessage, type RejectMessage, type RejectReasonName, type RequestMessage,
  type WireEncoder,
} from './piece-codec.ts'
import { agedRank, TokenBucket } from './token-bucket.ts'
import { lastAtOrBefore } from '../sorted.ts'

export const DEFAULT_MAX_OUTSTANDING = 32
export const DEFAULT_SERVE_CONCURRENCY = 4
export const DEFAULT_MAX_UPLOAD_BACKLOG_MS = 2_000
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
export const DEFAULT_STALL_TIMEOUT_MS = 15_000
export const DEFAULT_MAX_REMOTE_BLOBS = 1 << 17
export const DEFAULT_MAX_REMOTE_PIECES = 1 << 16

const HEX64 = /^[0-9a-f]{64}$/

/** A blob's SHA-256: 64 lowercase hex characters or its 32 bytes. */
export type Sha256 = string | Uint8Array

/**
 * Serves one range of a blob this node holds: at most `length` bytes from `offset` (fewer only
 * at the end of the blob), or null when it does not hold the blob. R-SHARE: a working-copy
 * file must be checked pristine before it is served.
 */
export type ServeFn = (sha256: string, offset: number, length: number) => Promise<Uint8Array | null>

/** Why a request failed; in `err.details.reason` of the UpswarmError a request rejects with. */
export type PieceFailure = Exclude<RejectReasonName, 'unknown'> | 'rejected' | 'timeout' | 'stalled' | 'aborted' | 'closed'

export interface PieceSessionOptions {
  /** Serving side; without it every request is rejected 'not-found' (a pure downloader). */
  serve?: ServeFn
  /** Product UUID and revision carried in `have` messages ('' / 0: none, e.g. a server seeding all). */
  product?: string
  rev?: number
  /** Upload limit of this session in bytes/s, 0 = unlimited. Ignored when `uploadBucket` is given. */
  maxUploadRate?: number
  /** A limiter shared by several sessions (the daemon's --max-upload-rate). */
  uploadBucket?: TokenBucket
  /** Requests from the peer queued or being served at once; more are rejected 'busy'. */
  maxOutstanding?: number
  /** Requests served in parallel (each holds at most one piece in memory). */
  serveConcurrency?: number
  /**
   * With an upload limit: a request that would wait longer than this for upload capacity
   * (over every session sharing the limiter) is rejected 'busy' at once, so the requester asks
   * another holder instead of timing out in a queue. Default 2 s.
   */
  maxUploadBacklogMs?: number
  /**
   * With an upload limit: the rank of a range waiting for upload capacity, lowest sent first (the
   * daemon passes how many of its peers hold it, so the rarest piece spreads first; issue 14); one
   * that waited RANKED_WAIT_MAX_MS goes as if of rank 0 (agedRank). Without it, first come first served.
   */
  uploadRank?: (sha256: string, offset: number, length: number) => number
  /** Default time limit of one request, from the call. */
  requestTimeoutMs?: number
  /** With requests in flight, this long without any message from the peer fails them as 'stalled'. */
  stallTimeoutMs?: number
  /** Caps on what the peer may announce (`have` hashes, `have-piece` entries). */
  maxRemoteBlobs?: number
  maxRemotePieces?: number
}

export interface RequestOptions {
  signal?: AbortSignal
  timeoutMs?: number
}

export interface RemoteHave {
  product: string
  rev: number
  reset: boolean
  /** Hex SHA-256s added by this message. */
  hashes: string[]
}

export interface RemotePiece { sha256: string; pieceSize: number; index: number }
export interface RemoteRange { sha256: string; offset: number; length: number }

export interface PieceSessionEvents {
  open: []
  have: [have: RemoteHave]
  'have-piece': [piece: RemotePiece]
  /** The peer holds verified bytes `offset` … `offset + length` of a blob it does not hold whole yet. */
  'have-range': [range: RemoteRange]
  choke: []
  unchoke: []
  /** Requests were failed because the peer went silent; the caller decides whether to drop it. */
  stalled: [failed: number]
  /** The peer broke the protocol; the channel is closed. Report / ban the peer. */
  'protocol-error': [error: UpswarmError]
  /** `serve` threw; the request was rejected 'error'. */
  'serve-error': [error: unknown, sha256: string]
  upload: [sha256: string, bytes: number]
  close: []
}

interface OutgoingRequest {
  id: number
  sha256: Uint8Array
  hex: string
  offset: number
  length: number
  sent: boolean
  resolve: (data: Buffer) => void
  reject: (err: UpswarmError) => void
  cleanup: () => void
}

/** Sorted, disjoint byte spans [starts[k], ends[k]) of a blob. */
interface Spans {
  starts: number[]
  ends: number[]
}

/** A blob's announced ranges (offset → length) merged into sorted spans; touching ranges join. */
function mergeRanges(ranges: ReadonlyMap<number, number>): Spans {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0])
  const out: Spans = { starts: [], ends: [] }
  for (const [offset, length] of sorted) {
    const last = out.ends.length - 1
    if (last >= 0 && offset <= out.ends[last]!) out.ends[last] = Math.max(out.ends[last]!, offset + length)
    else {
      out.starts.push(offset)
      out.ends.push(offset + length)
    }
  }
  return out
}

interface IncomingRequest {
  id: number
  hex: string
  offset: number
  length: number
  cancelled: boolean
  /** Bytes counted in the upload limiter's `reserved` until this request's turn to take tokens. */
  reserved: number
  /** While it waits for its upload turn (uploadRank): aborted when the peer cancels it, so it leaves the turns unsent. */
  turn?: AbortController
  /** When it arrived (performance.now()): how long it has waited, for agedRank. */
  at: number
}

type MessageName = Exclude<keyof typeof encoders, 'handshake'>
type Senders = { [K in MessageName]: ProtomuxMessage<Parameters<(typeof encoders)[K]['encode']>[1]> }

/** One peer connection's piece channel: both the requesting and the serving side. */
export class PieceSession extends EventEmitter<PieceSessionEvents> {
  readonly stream: NoiseSecretStream
  /** Hex Noise public key of the peer (for reports and bans). */
  readonly peer: string
  bytesUp = 0
  bytesDown = 0

  private readonly remoteState: { product: string | null; rev: number | null; blobs: Set<string> } = { product: null, rev: null, blobs: new Set() }
  private readonly remotePieces = new Map<string, { pieceSize: number; indexes: Set<number> }>()
  private remotePieceCount = 0
  /** Ranges announced with `have-range`: blob → offset → length (counted with the pieces). */
  private readonly remoteRanges = new Map<string, Map<number, number>>()
  /** Per blob, its announced ranges merged into sorted spans (built when first read after a change). */
  private readonly remoteSpans = new Map<string, Spans>()

  private readonly channel: Channel
  private readonly send: Senders
  private readonly opts: Required<Omit<PieceSessionOptions, 'serve' | 'uploadBucket' | 'maxUploadRate' | 'maxUploadBacklogMs' | 'uploadRank'>> & { serve: ServeFn | undefined }
  private readonly uploadRank: PieceSessionOptions['uploadRank']
  private readonly maxBacklogSeconds: number
  private readonly bucket: TokenBucket
  private readonly openedPromise: Promise<boolean>
  private resolveOpened!: (ok: boolean) => void
  private remoteMaxOutstanding = 0
  private remoteMaxRequestLength = 0
  private closedFlag = false
  private readonly closeController = new AbortController()

  // requesting side
  private nextId = 1
  private readonly waiting: OutgoingRequest[] = []
  private readonly inflight = new Map<number, OutgoingRequest>()
  private remoteChoked = false
  private stallTimer: NodeJS.Timeout | null = null

  // serving side
  private readonly queue: IncomingRequest[] = []
  private readonly active = new Map<number, IncomingRequest>()
  private localChoked = false
  private drainWaiters: (() => void)[] = []

  /** Create it synchronously in the connection handler, before the stream is read. */
  constructor(stream: NoiseSecretStream, options: PieceSessionOptions = {}) {
    super()
    this.stream = stream
    this.peer = stream.remotePublicKey ? b4a.toString(stream.remotePublicKey, 'hex') : 'unknown'
    this.opts = {
      serve: options.serve,
      product: options.product ?? '',
      rev: options.rev ?? 0,
      maxOutstanding: clampInt(options.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING, 1, MAX_OUTSTANDING_LIMIT),
      serveConcurrency: clampInt(options.serveConcurrency ?? DEFAULT_SERVE_CONCURRENCY, 1, MAX_OUTSTANDING_LIMIT),
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      stallTimeoutMs: options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      maxRemoteBlobs: options.maxRemoteBlobs ?? DEFAULT_MAX_REMOTE_BLOBS,
      maxRemotePieces: options.maxRemotePieces ?? DEFAULT_MAX_REMOTE_PIECES,
    }
    if (b4a.byteLength(this.opts.product) > MAX_PRODUCT_BYTES) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `product ${JSON.stringify(this.opts.product.slice(0, 80))} is longer than ${MAX_PRODUCT_BYTES} bytes`)
    }
    this.bucket = options.uploadBucket ?? new TokenBucket(options.maxUploadRate ?? 0)
    this.maxBacklogSeconds = (options.maxUploadBacklogMs ?? DEFAULT_MAX_UPLOAD_BACKLOG_MS) / 1000
    this.uploadRank = options.uploadRank
    this.openedPromise = new Promise((resolve) => { this.resolveOpened = resolve })

    const mux = Protomux.from(stream)
    const channel = mux.createChannel<Uint8Array>({
      protocol: PROTOCOL,
      handshake: { preencode: c.raw.preencode, encode: c.raw.encode, decode: rawDecode },
      onopen: (hs) => this.guard('handshake', () => this.onHandshake(hs)),
      onclose: () => this.onClose(),
      ondrain: () => this.onDrain(),
    })
    if (channel === null) {
      throw new UpswarmError('UPSWARM_E_PEER', `cannot open ${PROTOCOL} to peer ${this.peer}: the connection is closed or already has a piece session`)
    }
    this.channel = channel
    // Registration order is the wire's message type number (MessageType in piece-codec.ts).
    this.send = {
      have: this.addMessage('have', encoders.have, (b) => this.onHave(decoders.have(b))),
      havePiece: this.addMessage('have-piece', encoders.havePiece, (b) => this.onHavePiece(decoders.havePiece(b))),
      request: this.addMessage('request', encoders.request, (b) => this.onRequest(decoders.request(b))),
      data: this.addMessage('data', encoders.data, (b) => this.onData(decoders.data(b))),
      reject: this.addMessage('reject', encoders.reject, (b) => this.onReject(decoders.reject(b))),
      cancel: this.addMessage('cancel', encoders.cancel, (b) => this.onCancel(decoders.cancel(b).id)),
      choke: this.addMessage('choke', encoders.choke, (b) => { decoders.choke(b); this.onChoke() }),
      unchoke: this.addMessage('unchoke', encoders.unchoke, (b) => { decoders.unchoke(b); this.onUnchoke() }),
      haveRange: this.addMessage('have-range', encoders.haveRange, (b) => this.onHaveRange(decoders.haveRange(b))),
    }
    channel.open(toBytes(encoders.handshake, { version: PROTOCOL_VERSION, maxOutstanding: this.opts.maxOutstanding, maxRequestLength: MAX_REQUEST_LENGTH }))
  }

  // ---------------------------------------------------------------- public API

  /** Resolves true once the peer opened its side with a compatible handshake, false if the channel closed first. */
  opened(): Promise<boolean> {
    return this.openedPromise
  }

  get closed(): boolean {
    return this.closedFlag
  }

  /** What the peer announced: its product and revision, and the blobs (hex SHA-256) it holds whole. */
  get remote(): { readonly product: string | null; readonly rev: number | null; readonly blobs: ReadonlySet<string> } {
    return this.remoteState
  }

  /** True when the peer is choking us (our requests would be rejected). */
  get choked(): boolean {
    return this.remoteChoked
  }

  /** Requests sent and not answered yet, plus those waiting for the peer's request window. */
  get pendingRequests(): number {
    return this.inflight.size + this.waiting.length
  }

  /**
   * Tells the peer which blobs this node holds whole. `reset` (default) replaces everything
   * announced before, including `announcePiece`s; otherwise the hashes are added.
   */
  announceHave(hashes: Iterable<Sha256>, opts: { reset?: boolean; product?: string; rev?: number } = {}): void {
    if (this.closedFlag) return
    const list = [...hashes].map((h) => toHashBytes(h))
    const product = opts.product ?? this.opts.product
    const rev = opts.rev ?? this.opts.rev
    this.opts.product = product
    this.opts.rev = rev
    let reset = opts.reset ?? true
    this.channel.cork()
    try {
      for (let i = 0; i === 0 || i < list.length; i += MAX_HAVE_PER_MESSAGE) {
        const msg: HaveMessage = { product, rev, reset, hashes: list.slice(i, i + MAX_HAVE_PER_MESSAGE) }
        this.send.have.send(msg)
        reset = false
      }
    } finally {
      this.channel.uncork()
    }
  }

  /** Tells the peer this node holds (verified) piece `index` of a blob it does not hold whole yet (R-ACCEL-3). */
  announcePiece(sha256: Sha256, pieceSize: number, index: number): void {
    if (this.closedFlag) return
    this.send.havePiece.send({ sha256: toHashBytes(sha256), pieceSize, index })
  }

  /**
   * Tells the peer this node holds verified bytes `offset` … `offset + length` of a blob it does
   * not hold whole yet (a run of a format-2 file's chunks). Peers of earlier releases ignore it.
   */
  announceRange(sha256: Sha256, offset: number, length: number): void {
    if (this.closedFlag) return
    this.send.haveRange.send({ sha256: toHashBytes(sha256), offset, length })
  }

  /**
   * Whether the peer announced holding the whole blob, or ranges that together cover this one: a
   * client that cuts a file's runs shorter or longer than the peer did (runs of 256 KiB in a large
   * swarm, of 1 MiB in a small one) still reads the peer's announcements.
   */
  peerHasRange(sha256: Sha256, offset: number, length: number): boolean {
    const hex = toHex(sha256)
    if (this.remoteState.blobs.has(hex)) return true
    const ranges = this.remoteRanges.get(hex)
    if (!ranges) return false
    if (ranges.get(offset) === length) return true
    let spans = this.remoteSpans.get(hex)
    if (!spans) this.remoteSpans.set(hex, spans = mergeRanges(ranges))
    // The last merged span starting at or before `offset` must reach its end.
    const k = lastAtOrBefore(spans.starts, offset)
    return k >= 0 && spans.ends[k]! >= offset + length
  }

  /** Whether the peer announced holding the whole blob. */
  peerHas(sha256: Sha256): boolean {
    return this.remoteState.blobs.has(toHex(sha256))
  }

  /** Whether the peer announced holding the whole blob or piece `index` of it at `pieceSize`. */
  peerHasPiece(sha256: Sha256, pieceSize: number, index: number): boolean {
    const hex = toHex(sha256)
    if (this.remoteState.blobs.has(hex)) return true
    const p = this.remotePieces.get(hex)
    return p !== undefined && p.pieceSize === pieceSize && p.indexes.has(index)
  }

  /**
   * Fetches `length` bytes (1 … 1 MiB) of blob `sha256` from `offset`. The bytes are NOT
   * verified here: the caller checks them against the manifest's piece hash (R-VERIFY).
   * Rejects with an UpswarmError whose `details.reason` is a PieceFailure.
   */
  request(sha256: Sha256, offset: number, length: number, opts: RequestOptions = {}): Promise<Buffer> {
    let hash: Uint8Array
    try {
      hash = toHashBytes(sha256)
    } catch (err) {
      return Promise.reject(err)
    }
    const hex = b4a.toString(hash, 'hex')
    const limit = this.remoteMaxRequestLength > 0 ? Math.min(MAX_REQUEST_LENGTH, this.remoteMaxRequestLength) : MAX_REQUEST_LENGTH
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1 || length > limit) {
      return Promise.reject(new UpswarmError('UPSWARM_E_BAD_REQUEST',
        `piece request for blob ${hex} at offset ${offset} length ${length} is invalid: length must be 1…${limit} bytes, offset a non-negative integer`,
        { details: { reason: 'bad-request', peer: this.peer } }))
    }
    if (this.closedFlag) return Promise.reject(this.failure('closed', hex, offset, length))
    if (this.remoteChoked) return Promise.reject(this.failure('choked', hex, offset, length))
    if (opts.signal?.aborted) return Promise.reject(this.failure('aborted', hex, offset, length, opts.signal.reason))

    return new Promise<Buffer>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.opts.requestTimeoutMs
      const req: OutgoingRequest = {
        id: this.nextId++,
        sha256: hash,
        hex,
        offset,
        length,
        sent: false,
        resolve,
        reject,
        cleanup: () => {
          clearTimeout(timer)
          opts.signal?.removeEventListener('abort', onAbort)
        },
      }
      const onAbort = (): void => this.fail(req, this.failure('aborted', hex, offset, length, opts.signal?.reason))
      const timer = setTimeout(() => this.fail(req, this.failure('timeout', hex, offset, length)), timeoutMs)
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      this.waiting.push(req)
      this.pump()
    })
  }

  /** Stops serving the peer: queued requests are rejected 'choked', new ones too, until unchoke(). */
  choke(): void {
    if (this.closedFlag || this.localChoked) return
    this.localChoked = true
    this.send.choke.send(null)
    for (const r of this.queue.splice(0)) {
      this.unreserve(r)
      this.send.reject.send({ id: r.id, reason: 'choked' })
    }
  }

  unchoke(): void {
    if (this.closedFlag || !this.localChoked) return
    this.localChoked = false
    this.send.unchoke.send(null)
  }

  /** Closes the piece channel (the connection stays up). Pending requests fail 'closed'. */
  close(): void {
    this.channel.close()
  }

  // ---------------------------------------------------------------- plumbing

  private addMessage<T>(name: string, encoder: WireEncoder<T>, onBytes: (bytes: Uint8Array) => void): ProtomuxMessage<T> {
    return this.channel.addMessage<T>({
      // Sent values are typed and trusted; received bytes go raw to our own strict decoders.
      encoding: sentTypedReceivedRaw(encoder),
      onmessage: (bytes: unknown) => this.guard(`${name} message`, () => onBytes(bytes as Uint8Array)),
    })
  }

  /** Runs a handler for remote input; nothing escapes into Protomux (it would kill the connection or the process). */
  private guard(what: string, fn: () => void): void {
    if (this.closedFlag) return
    try {
      this.touch()
      fn()
    } catch (err) {
      const fromPeer = err instanceof PieceDecodeError || err instanceof ProtocolViolation
      const reason = fromPeer ? 'protocol' : 'internal'
      const e = new UpswarmError('UPSWARM_E_PEER',
        fromPeer
          ? `peer ${this.peer} broke the ${PROTOCOL} protocol (${what}): ${errorMessage(err)}; closed its piece channel`
          : `internal error handling ${what} from peer ${this.peer}: ${errorMessage(err)}; closed its piece channel`,
        { cause: err, details: { reason, peer: this.peer } })
      this.channel.close()
      this.emitSafely('protocol-error', e)
    }
  }

  private emitSafely<K extends keyof PieceSessionEvents>(event: K, ...args: PieceSessionEvents[K]): void {
    // A listener's bug must not be mistaken for the peer's, nor thrown into Protomux.
    const emit = this.emit as (event: K, ...args: PieceSessionEvents[K]) => boolean
    queueMicrotask(() => emit.call(this, event, ...args))
  }

  private onHandshake(bytes: Uint8Array): void {
    const hs = decodeHandshake(bytes)
    if (hs.version !== PROTOCOL_VERSION) throw new ProtocolViolation(`speaks version ${hs.version}, this node speaks ${PROTOCOL_VERSION}`)
    if (hs.maxOutstanding < 1 || hs.maxRequestLength < 1) throw new ProtocolViolation('handshake announces a zero request window')
    this.remoteMaxOutstanding = hs.maxOutstanding
    this.remoteMaxRequestLength = hs.maxRequestLength
    this.resolveOpened(true)
    this.emitSafely('open')
    this.pump()
  }

  private onClose(): void {
    if (this.closedFlag) return
    this.closedFlag = true
    this.resolveOpened(false)
    this.closeController.abort(new UpswarmError('UPSWARM_E_PEER', `piece channel to peer ${this.peer} closed`))
    for (const r of [...this.waiting, ...this.inflight.values()]) this.fail(r, this.failure('closed', r.hex, r.offset, r.length))
    for (const r of this.queue.splice(0)) this.unreserve(r)
    for (const r of this.active.values()) r.cancelled = true
    this.onDrain()
    this.stopStallTimer()
    this.emitSafely('close')
  }

  private touch(): void {
    this.stallTimer?.refresh()
  }

  // ---- requesting side

  private pump(): void {
    if (this.closedFlag || this.remoteMaxOutstanding === 0 || this.remoteChoked) return
    while (this.waiting.length > 0 && this.inflight.size < this.remoteMaxOutstanding) {
      const req = this.waiting.shift()!
      req.sent = true
      this.inflight.set(req.id, req)
      this.send.request.send({ id: req.id, sha256: req.sha256, offset: req.offset, length: req.length })
    }
    if (this.inflight.size > 0) this.startStallTimer()
  }

  private fail(req: OutgoingRequest, err: UpswarmError): void {
    const i = this.waiting.indexOf(req)
    if (i >= 0) this.waiting.splice(i, 1)
    else if (!this.inflight.delete(req.id)) return // already settled
    req.cleanup()
    const reason = (err.details as { reason?: PieceFailure } | undefined)?.reason
    if (req.sent && !this.closedFlag && (reason === 'timeout' || reason === 'aborted' || reason === 'stalled')) {
      this.send.cancel.send({ id: req.id })
    }
    req.reject(err)
    if (this.inflight.size === 0) this.stopStallTimer()
    this.pump()
  }

  private onData(msg: DataMessage): void {
    this.bytesDown += msg.bytes.byteLength
    const req = this.inflight.get(msg.id)
    if (!req) {
      // An answer to a request we gave up on is fine; one we never sent is not.
      if (msg.id >= this.nextId) throw new ProtocolViolation(`data for request ${msg.id}, which was never sent`)
      return
    }
    if (msg.bytes.byteLength > req.length) throw new ProtocolViolation(`data for request ${msg.id} is ${msg.bytes.byteLength} bytes, ${req.length} were asked`)
    this.inflight.delete(req.id)
    req.cleanup()
    if (this.inflight.size === 0) this.stopStallTimer()
    req.resolve(msg.bytes as Buffer)
    this.pump()
  }

  private onReject(msg: RejectMessage): void {
    const req = this.inflight.get(msg.id)
    if (!req) {
      if (msg.id >= this.nextId) throw new ProtocolViolation(`reject for request ${msg.id}, which was never sent`)
      return
    }
    this.fail(req, this.failure(msg.reason === 'unknown' ? 'rejected' : msg.reason, req.hex, req.offset, req.length))
  }

  private onChoke(): void {
    this.remoteChoked = true
    for (const r of [...this.waiting, ...this.inflight.values()]) this.fail(r, this.failure('choked', r.hex, r.offset, r.length))
    this.emitSafely('choke')
  }

  private onUnchoke(): void {
    this.remoteChoked = false
    this.emitSafely('unchoke')
    this.pump()
  }

  private startStallTimer(): void {
    if (this.stallTimer) return
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null
      const stuck = [...this.inflight.values(), ...this.waiting]
      for (const r of stuck) this.fail(r, this.failure('stalled', r.hex, r.offset, r.length))
      this.emitSafely('stalled', stuck.length)
    }, this.opts.stallTimeoutMs)
  }

  private stopStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer)
    this.stallTimer = null
  }

  private failure(reason: PieceFailure, hex: string, offset: number, length: number, cause?: unknown): UpswarmError {
    const code: ErrorCode = reason === 'timeout' || reason === 'stalled' ? 'UPSWARM_E_TIMEOUT' : reason === 'not-found' ? 'UPSWARM_E_NOT_FOUND' : 'UPSWARM_E_PEER'
    const what = {
      'not-found': 'does not hold it',
      'bad-request': 'called the request invalid',
      busy: 'is busy (too many outstanding requests)',
      choked: 'is choking this node',
      error: 'failed to read it',
      rejected: 'rejected it',
      timeout: 'did not answer in time',
      stalled: `sent nothing for ${this.opts.stallTimeoutMs} ms`,
      aborted: 'was not waited for: the request was aborted',
      closed: 'is no longer connected (piece channel closed)',
    }[reason]
    return new UpswarmError(code, `piece ${hex}@${offset}+${length} from peer ${this.peer}: the peer ${what}; try another source`,
      { cause, details: { reason, peer: this.peer, sha256: hex, offset, length } })
  }

  // ---- serving side

  private onRequest(msg: RequestMessage): void {
    if (this.active.has(msg.id) || this.queue.some((r) => r.id === msg.id)) throw new ProtocolViolation(`request id ${msg.id} reused while outstanding`)
    if (this.localChoked) return void this.send.reject.send({ id: msg.id, reason: 'choked' })
    // Cancelled requests still being read do not count: the peer already reused their slot.
    let outstanding = this.queue.length
    for (const r of this.active.values()) if (!r.cancelled) outstanding++
    if (outstanding >= this.opts.maxOutstanding) {
      // Over the window while not reading our replies: every reject would pile up in memory.
      if (!this.channel.drained) throw new ProtocolViolation('floods requests beyond its window without reading the replies')
      return void this.send.reject.send({ id: msg.id, reason: 'busy' })
    }
    if (msg.length < 1 || msg.length > MAX_REQUEST_LENGTH) return void this.send.reject.send({ id: msg.id, reason: 'bad-request' })
    if (!this.opts.serve) return void this.send.reject.send({ id: msg.id, reason: 'not-found' })
    // Upload capacity: what every session sharing the limiter has already promised; beyond the
    // backlog limit the requester is better served by another holder than by a queue here.
    if (this.bucket.rate > 0 && this.bucket.backlogSeconds() > this.maxBacklogSeconds) {
      return void this.send.reject.send({ id: msg.id, reason: 'busy' })
    }
    const reserved = this.bucket.rate > 0 ? msg.length : 0
    this.bucket.reserve(reserved)
    this.queue.push({ id: msg.id, hex: b4a.toString(msg.sha256, 'hex'), offset: msg.offset, length: msg.length, cancelled: false, reserved, at: performance.now() })
    this.drainQueue()
  }

  private onCancel(id: number): void {
    const i = this.queue.findIndex((r) => r.id === id)
    if (i >= 0) this.unreserve(this.queue.splice(i, 1)[0]!)
    const a = this.active.get(id)
    if (a) {
      a.cancelled = true
      a.turn?.abort()
    }
  }

  private drainQueue(): void {
    while (!this.closedFlag && this.active.size < this.opts.serveConcurrency && this.queue.length > 0) {
      const r = this.queue.shift()!
      this.active.set(r.id, r)
      void this.serveOne(r).finally(() => {
        this.active.delete(r.id)
        this.drainQueue()
      })
    }
  }

  private unreserve(r: IncomingRequest): void {
    this.bucket.release(r.reserved)
    r.reserved = 0
  }

  private async serveOne(r: IncomingRequest): Promise<void> {
    try {
      await this.serveReserved(r)
    } finally {
      this.unreserve(r)
    }
  }

  private async serveReserved(r: IncomingRequest): Promise<void> {
    let bytes: Uint8Array | null
    try {
      bytes = await this.opts.serve!(r.hex, r.offset, r.length)
    } catch (err) {
      if (!r.cancelled && !this.closedFlag) this.send.reject.send({ id: r.id, reason: 'error' })
      this.emitSafely('serve-error', err, r.hex)
      return
    }
    if (r.cancelled || this.closedFlag) return
    if (bytes === null) return void this.send.reject.send({ id: r.id, reason: 'not-found' })
    const payload = bytes.byteLength > r.length ? bytes.subarray(0, r.length) : bytes
    this.unreserve(r)
    try {
      const rank = this.uploadRank
      if (rank) {
        r.turn = new AbortController()
        await this.bucket.takeInTurn(payload.byteLength, AbortSignal.any([this.closeController.signal, r.turn.signal]), () => agedRank(performance.now() - r.at, rank(r.hex, r.offset, r.length)))
      } else {
        await this.bucket.take(payload.byteLength, this.closeController.signal)
      }
      await this.drained()
    } catch {
      return // channel closed, or the request cancelled, while waiting
    }
    if (r.cancelled || this.closedFlag) return
    this.send.data.send({ id: r.id, bytes: payload })
    this.bytesUp += payload.byteLength
    this.emitSafely('upload', r.hex, payload.byteLength)
  }

  /** Waits for the connection's write buffer to drain, so a slow reader cannot make us buffer without bound. */
  private drained(): Promise<void> {
    if (this.channel.drained || this.closedFlag) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  private onDrain(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  // ---- announcements

  private onHave(msg: HaveMessage): void {
    if (msg.reset) {
      this.remoteState.blobs.clear()
      this.remotePieces.clear()
      this.remoteRanges.clear()
      this.remoteSpans.clear()
      this.remotePieceCount = 0
    }
    if (this.remoteState.blobs.size + msg.hashes.length > this.opts.maxRemoteBlobs) {
      throw new ProtocolViolation(`announced more than ${this.opts.maxRemoteBlobs} blobs`)
    }
    const hashes = msg.hashes.map((h) => b4a.toString(h, 'hex'))
    for (const h of hashes) this.remoteState.blobs.add(h)
    this.remoteState.product = msg.product
    this.remoteState.rev = msg.rev
    this.emitSafely('have', { product: msg.product, rev: msg.rev, reset: msg.reset, hashes })
  }

  private onHavePiece(msg: HavePieceMessage): void {
    const hex = b4a.toString(msg.sha256, 'hex')
    if (this.remoteState.blobs.has(hex)) return
    let entry = this.remotePieces.get(hex)
    if (!entry || entry.pieceSize !== msg.pieceSize) {
      if (entry) this.remotePieceCount -= entry.indexes.size
      entry = { pieceSize: msg.pieceSize, indexes: new Set() }
      this.remotePieces.set(hex, entry)
    }
    if (entry.indexes.has(msg.index)) return
    if (this.remotePieceCount + 1 > this.opts.maxRemotePieces) throw new ProtocolViolation(`announced more than ${this.opts.maxRemotePieces} pieces`)
    entry.indexes.add(msg.index)
    this.remotePieceCount++
    this.emitSafely('have-piece', { sha256: hex, pieceSize: msg.pieceSize, index: msg.index })
  }

  private onHaveRange(msg: { sha256: Uint8Array; offset: number; length: number }): void {
    const hex = b4a.toString(msg.sha256, 'hex')
    if (this.remoteState.blobs.has(hex)) return
    let ranges = this.remoteRanges.get(hex)
    if (!ranges) this.remoteRanges.set(hex, ranges = new Map())
    if (ranges.get(msg.offset) === msg.length) return
    if (!ranges.has(msg.offset)) {
      if (this.remotePieceCount + 1 > this.opts.maxRemotePieces) throw new ProtocolViolation(`announced more than ${this.opts.maxRemotePieces} pieces`)
      this.remotePieceCount++
    }
    ranges.set(msg.offset, msg.length)
    this.remoteSpans.delete(hex)
    this.emitSafely('have-range', { sha256: hex, offset: msg.offset, length: msg.length })
  }
}


/** The peer sent well-formed bytes that break the protocol's rules. */
class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation'
}


function toHashBytes(h: Sha256): Uint8Array {
  if (typeof h === 'string') {
    if (!HEX64.test(h)) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `not a SHA-256 hex digest: ${JSON.stringify(h.slice(0, 80))}`)
    return b4a.from(h, 'hex')
  }
  if (h.byteLength !== 32) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `a SHA-256 is 32 bytes, got ${h.byteLength}`)
  return h
}

function toHex(h: Sha256): string {
  return typeof h === 'string' ? h : b4a.toString(h, 'hex')
}

function clampInt(n: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.floor(n)))
}

/** The PieceFailure of an error from `PieceSession.request`, if it is one. */
export function pieceFailure(err: unknown): PieceFailure | undefined {
  if (!(err instanceof UpswarmError)) return undefined
  return (err.details as { reason?: PieceFailure } | undefined)?.reason
}
