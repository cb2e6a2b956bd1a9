// Wire format of the piece protocol (docs/protocol.md is the normative description). Every
// message is decoded here, from untrusted bytes, with hard caps: a decoder error is a plain
// PieceDecodeError, never a TypeError/RangeError (Protomux re-throws those out of the event
// loop), and no decoder allocates more than the message it was given.
import b4a from 'b4a'
import c from 'compact-encoding'
import { encodeToBytes, strictDecoding, type State, type WireEncoder } from './wire-kit.ts'

export const PROTOCOL = 'upswarm/pieces'
export const PROTOCOL_VERSION = 1

/** Largest `length` of one request, and so the largest `data` payload (bytes). */
export const MAX_REQUEST_LENGTH = 1 << 20
/** Hashes in one `have` message; longer announcements are split. */
export const MAX_HAVE_PER_MESSAGE = 8192
/** Bytes of the product field of `have` (a UUID is 36). */
export const MAX_PRODUCT_BYTES = 64
/** Largest encoded message of any type: a full `data` message plus its header. */
export const MAX_MESSAGE_BYTES = MAX_REQUEST_LENGTH + 32
/** Largest piece index in `have-piece` (2^24 pieces of the smallest 4 KiB piece is 64 GiB). */
export const MAX_PIECE_INDEX = (1 << 24) - 1
/** Largest `maxOutstanding` a peer may announce in its handshake. */
export const MAX_OUTSTANDING_LIMIT = 1024
/** Piece sizes a manifest may use (ARCHITECTURE §3, ManifestSchema.pieceSize). */
export const MIN_PIECE_SIZE = 4096
export const MAX_PIECE_SIZE = 64 * 1024 * 1024

/** Protomux message type numbers, in registration order. */
export const MessageType = {
  have: 0,
  havePiece: 1,
  request: 2,
  data: 3,
  reject: 4,
  cancel: 5,
  choke: 6,
  unchoke: 7,
  /** Issue 14 / formats §5 step 8: a verified byte range of a blob (a run of a format-2 file's chunks). Peers of earlier releases ignore it (types ≥ 8). */
  haveRange: 8,
} as const

/** `reject` reason codes. Unknown codes decode as 'unknown'. */
export const RejectReason = {
  'not-found': 1,
  'bad-request': 2,
  busy: 3,
  choked: 4,
  error: 5,
} as const
export type RejectReasonName = keyof typeof RejectReason | 'unknown'

export interface Handshake { version: number; maxOutstanding: number; maxRequestLength: number }
export interface HaveMessage { product: string; rev: number; reset: boolean; hashes: Uint8Array[] }
export interface HavePieceMessage { sha256: Uint8Array; pieceSize: number; index: number }
export interface RequestMessage { id: number; sha256: Uint8Array; offset: number; length: number }
export interface HaveRangeMessage { sha256: Uint8Array; offset: number; length: number }
export interface DataMessage { id: number; bytes: Uint8Array }
export interface RejectMessage { id: number; reason: RejectReasonName }
export interface CancelMessage { id: number }

/** Bytes from a peer that are not a valid message. */
export class PieceDecodeError extends Error {
  override readonly name = 'PieceDecodeError'
}

/** A local value that cannot be put on the wire (a bug in the caller). */
export class PieceEncodeError extends Error {
  override readonly name = 'PieceEncodeError'
}

export type { State, WireEncoder } from './wire-kit.ts'

const HAVE_FLAG_RESET = 1
const HASH_BYTES = 32


const handshake: WireEncoder<Handshake> = {
  preencode(s, h) { c.uint.preencode(s, h.version); c.uint.preencode(s, h.maxOutstanding); c.uint.preencode(s, h.maxRequestLength) },
  encode(s, h) { c.uint.encode(s, h.version); c.uint.encode(s, h.maxOutstanding); c.uint.encode(s, h.maxRequestLength) },
}

const have: WireEncoder<HaveMessage> = {
  preencode(s, m) {
    if (m.hashes.length > MAX_HAVE_PER_MESSAGE) throw new PieceEncodeError(`have carries at most ${MAX_HAVE_PER_MESSAGE} hashes`)
    if (b4a.byteLength(m.product) > MAX_PRODUCT_BYTES) throw new PieceEncodeError(`product is at most ${MAX_PRODUCT_BYTES} bytes`)
    c.string.preencode(s, m.product); c.uint.preencode(s, m.rev); c.uint.preencode(s, haveFlags(m)); c.uint.preencode(s, m.hashes.length)
    s.end += m.hashes.length * HASH_BYTES
  },
  encode(s, m) {
    c.string.encode(s, m.product); c.uint.encode(s, m.rev); c.uint.encode(s, haveFlags(m)); c.uint.encode(s, m.hashes.length)
    for (const h of m.hashes) c.fixed32.encode(s, h)
  },
}

const havePiece: WireEncoder<HavePieceMessage> = {
  preencode(s, m) { c.fixed32.preencode(s, m.sha256); c.uint.preencode(s, m.pieceSize); c.uint.preencode(s, m.index) },
  encode(s, m) { c.fixed32.encode(s, m.sha256); c.uint.encode(s, m.pieceSize); c.uint.encode(s, m.index) },
}

const request: WireEncoder<RequestMessage> = {
  preencode(s, m) { c.uint.preencode(s, m.id); c.fixed32.preencode(s, m.sha256); c.uint.preencode(s, m.offset); c.uint.preencode(s, m.length) },
  encode(s, m) { c.uint.encode(s, m.id); c.fixed32.encode(s, m.sha256); c.uint.encode(s, m.offset); c.uint.encode(s, m.length) },
}

const haveRange: WireEncoder<HaveRangeMessage> = {
  preencode(s, m) { c.fixed32.preencode(s, m.sha256); c.uint.preencode(s, m.offset); c.uint.preencode(s, m.length) },
  encode(s, m) { c.fixed32.encode(s, m.sha256); c.uint.encode(s, m.offset); c.uint.encode(s, m.length) },
}

const data: WireEncoder<DataMessage> = {
  preencode(s, m) { c.uint.preencode(s, m.id); c.buffer.preencode(s, m.bytes) },
  encode(s, m) { c.uint.encode(s, m.id); c.buffer.encode(s, m.bytes) },
}

const reject: WireEncoder<RejectMessage> = {
  preencode(s, m) { c.uint.preencode(s, m.id); c.uint.preencode(s, rejectCode(m.reason)) },
  encode(s, m) { c.uint.encode(s, m.id); c.uint.encode(s, rejectCode(m.reason)) },
}

const cancel: WireEncoder<CancelMessage> = {
  preencode(s, m) { c.uint.preencode(s, m.id) },
  encode(s, m) { c.uint.encode(s, m.id) },
}

const empty: WireEncoder<null> = { preencode() {}, encode() {} }

/** The encoder of each message type (and of the channel handshake). */
export const encoders = { handshake, have, havePiece, request, data, reject, cancel, choke: empty, unchoke: empty, haveRange } as const

function haveFlags(m: HaveMessage): number {
  return m.reset ? HAVE_FLAG_RESET : 0
}

function rejectCode(reason: RejectReasonName): number {
  return reason === 'unknown' ? 0 : RejectReason[reason]
}

/** Encodes one message to bytes (tests, fuzzing, and anyone writing the format by hand). */
export const toBytes = encodeToBytes

// ---- decoders (remote bytes, untrusted) ----

const { decodeWith, uintAtMost, hash } = strictDecoding(PieceDecodeError, MAX_MESSAGE_BYTES)

export function decodeHandshake(bytes: Uint8Array): Handshake {
  return decodeWith('handshake', bytes, (s) => {
    const version = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'version')
    const maxOutstanding = uintAtMost(s, MAX_OUTSTANDING_LIMIT, 'maxOutstanding')
    const maxRequestLength = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'maxRequestLength')
    return { version, maxOutstanding, maxRequestLength }
  })
}

export function decodeHave(bytes: Uint8Array): HaveMessage {
  return decodeWith('have', bytes, (s) => {
    const productLength = uintAtMost(s, MAX_PRODUCT_BYTES, 'product length')
    if (s.end - s.start < productLength) throw new PieceDecodeError('truncated product')
    const product = b4a.toString(s.buffer!.subarray(s.start, s.start + productLength), 'utf8')
    s.start += productLength
    const rev = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'rev')
    const flags = uintAtMost(s, 0xff, 'flags')
    if ((flags & ~HAVE_FLAG_RESET) !== 0) throw new PieceDecodeError(`unknown flags ${flags}`)
    const count = uintAtMost(s, MAX_HAVE_PER_MESSAGE, 'hash count')
    if (s.end - s.start !== count * HASH_BYTES) throw new PieceDecodeError(`hash list is ${s.end - s.start} bytes, expected ${count * HASH_BYTES}`)
    const hashes: Uint8Array[] = []
    for (let i = 0; i < count; i++) hashes.push(hash(s))
    return { product, rev, reset: (flags & HAVE_FLAG_RESET) !== 0, hashes }
  })
}

export function decodeHavePiece(bytes: Uint8Array): HavePieceMessage {
  return decodeWith('have-piece', bytes, (s) => {
    const sha256 = hash(s)
    const pieceSize = uintAtMost(s, MAX_PIECE_SIZE, 'pieceSize')
    if (pieceSize < MIN_PIECE_SIZE) throw new PieceDecodeError(`pieceSize ${pieceSize} is below ${MIN_PIECE_SIZE}`)
    const index = uintAtMost(s, MAX_PIECE_INDEX, 'piece index')
    return { sha256, pieceSize, index }
  })
}

export function decodeHaveRange(bytes: Uint8Array): HaveRangeMessage {
  return decodeWith('have-range', bytes, (s) => {
    const sha256 = hash(s)
    const offset = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'offset')
    const length = uintAtMost(s, MAX_PIECE_SIZE, 'length')
    if (length === 0) throw new PieceDecodeError('an empty range')
    return { sha256, offset, length }
  })
}

/** Decodes a request. Its length is range-checked by the session (a bad one is rejected, not fatal). */
export function decodeRequest(bytes: Uint8Array): RequestMessage {
  return decodeWith('request', bytes, (s) => {
    const id = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'id')
    const sha256 = hash(s)
    const offset = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'offset')
    const length = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'length')
    return { id, sha256, offset, length }
  })
}

export function decodeData(bytes: Uint8Array): DataMessage {
  return decodeWith('data', bytes, (s) => {
    const id = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'id')
    const length = uintAtMost(s, MAX_REQUEST_LENGTH, 'data length')
    if (s.end - s.start !== length) throw new PieceDecodeError(`data payload is ${s.end - s.start} bytes, header says ${length}`)
    const payload = s.buffer!.subarray(s.start, s.end)
    s.start = s.end
    return { id, bytes: payload }
  })
}

export function decodeReject(bytes: Uint8Array): RejectMessage {
  return decodeWith('reject', bytes, (s) => {
    const id = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'id')
    const code = uintAtMost(s, 0xff, 'reason')
    const name = (Object.keys(RejectReason) as (keyof typeof RejectReason)[]).find((k) => RejectReason[k] === code)
    return { id, reason: name ?? 'unknown' }
  })
}

export function decodeCancel(bytes: Uint8Array): CancelMessage {
  return decodeWith('cancel', bytes, (s) => ({ id: uintAtMost(s, Number.MAX_SAFE_INTEGER, 'id') }))
}

export function decodeEmpty(what: 'choke' | 'unchoke', bytes: Uint8Array): void {
  decodeWith(what, bytes, () => undefined)
}

/** The decoder of each message type, for the session's dispatch and for fuzzing. */
export const decoders = {
  have: decodeHave,
  havePiece: decodeHavePiece,
  request: decodeRequest,
  data: decodeData,
  reject: decodeReject,
  cancel: decodeCancel,
  choke: (b: Uint8Array) => decodeEmpty('choke', b),
  unchoke: (b: Uint8Array) => decodeEmpty('unchoke', b),
  haveRange: decodeHaveRange,
} as const
