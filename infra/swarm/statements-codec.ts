// Wire format of the `upswarm/statements` channel (docs/formats.md §1.8): signed statements
// (roots, fresh statements) passed between peers. Every message is decoded here from untrusted
// bytes with hard caps, consumed exactly; a failure is a StatementDecodeError, never a
// TypeError/RangeError thrown into Protomux.
import b4a from 'b4a'
import c from 'compact-encoding'
import { encodeToBytes, strictDecoding, type State, type WireEncoder } from './wire-kit.ts'
import { ROOT_MAX_BYTES } from '../formats/root.ts'

export const STATEMENTS_PROTOCOL = 'upswarm/statements'
export const STATEMENTS_VERSION = 1

/** Kinds of an offer entry and of a doc (docs/formats.md §1.8). */
export const StatementKind = { root: 0, release: 1, fresh: 2, rollout: 3 } as const
export type StatementKindName = keyof typeof StatementKind

/** Protomux message type numbers, in registration order. */
export const StatementMessageType = { offer: 0, want: 1, doc: 2, wantRoots: 3 } as const

/** Largest document carried by one `doc` (a root's limit; the largest document kind). */
export const MAX_DOC_BYTES = ROOT_MAX_BYTES
export const MAX_OFFER_ENTRIES = 256
export const MAX_WANT_HASHES = 64
export const MAX_PRODUCT_BYTES = 64
const MAX_MESSAGE_BYTES = MAX_DOC_BYTES + 32
const HASH_BYTES = 32

export interface OfferEntry {
  /** A StatementKind value; kinds this node does not know are kept and ignored. */
  kind: number
  /** '' for a root. */
  product: string
  /** Root version, release rev, fresh `issued` in seconds, rollout seq. */
  number: number
  /** SHA-256 of the document's bytes. */
  hash: Uint8Array
}
export interface OfferMessage { entries: OfferEntry[] }
export interface WantMessage { hashes: Uint8Array[] }
export interface DocMessage { kind: number; bytes: Uint8Array }
export interface WantRootsMessage { from: number }

export class StatementDecodeError extends Error {
  override readonly name = 'StatementDecodeError'
}

export class StatementEncodeError extends Error {
  override readonly name = 'StatementEncodeError'
}

export type StatementEncoder<T> = WireEncoder<T>

const handshake: StatementEncoder<number> = {
  preencode(s, v) { c.uint.preencode(s, v) },
  encode(s, v) { c.uint.encode(s, v) },
}

const offer: StatementEncoder<OfferMessage> = {
  preencode(s, m) {
    if (m.entries.length > MAX_OFFER_ENTRIES) throw new StatementEncodeError(`an offer carries at most ${MAX_OFFER_ENTRIES} entries`)
    c.uint.preencode(s, m.entries.length)
    for (const e of m.entries) {
      if (b4a.byteLength(e.product) > MAX_PRODUCT_BYTES) throw new StatementEncodeError(`product is at most ${MAX_PRODUCT_BYTES} bytes`)
      if (e.hash.byteLength !== HASH_BYTES) throw new StatementEncodeError('an offer hash is 32 bytes')
      c.uint.preencode(s, e.kind); c.string.preencode(s, e.product); c.uint.preencode(s, e.number); s.end += HASH_BYTES
    }
  },
  encode(s, m) {
    c.uint.encode(s, m.entries.length)
    for (const e of m.entries) { c.uint.encode(s, e.kind); c.string.encode(s, e.product); c.uint.encode(s, e.number); c.fixed32.encode(s, e.hash) }
  },
}

const want: StatementEncoder<WantMessage> = {
  preencode(s, m) {
    if (m.hashes.length > MAX_WANT_HASHES) throw new StatementEncodeError(`a want carries at most ${MAX_WANT_HASHES} hashes`)
    c.uint.preencode(s, m.hashes.length)
    s.end += m.hashes.length * HASH_BYTES
  },
  encode(s, m) {
    c.uint.encode(s, m.hashes.length)
    for (const h of m.hashes) c.fixed32.encode(s, h)
  },
}

const doc: StatementEncoder<DocMessage> = {
  preencode(s, m) {
    if (m.bytes.byteLength > MAX_DOC_BYTES) throw new StatementEncodeError(`a doc is at most ${MAX_DOC_BYTES} bytes`)
    c.uint.preencode(s, m.kind); c.buffer.preencode(s, m.bytes)
  },
  encode(s, m) { c.uint.encode(s, m.kind); c.buffer.encode(s, m.bytes) },
}

const wantRoots: StatementEncoder<WantRootsMessage> = {
  preencode(s, m) { c.uint.preencode(s, m.from) },
  encode(s, m) { c.uint.encode(s, m.from) },
}

export const statementEncoders = { handshake, offer, want, doc, wantRoots } as const

/** Encodes one message to bytes (the session's handshake, tests writing frames by hand). */
export const statementBytes = encodeToBytes

// ---- decoders (remote bytes, untrusted)

const { decodeWith, uintAtMost, hash } = strictDecoding(StatementDecodeError, MAX_MESSAGE_BYTES)

function lengthPrefixed(s: State, max: number, field: string): Uint8Array {
  const n = uintAtMost(s, max, `${field} length`)
  if (s.end - s.start < n) throw new StatementDecodeError(`truncated ${field}`)
  const out = s.buffer!.subarray(s.start, s.start + n)
  s.start += n
  return out
}

export function decodeStatementHandshake(bytes: Uint8Array): number {
  return decodeWith('handshake', bytes, (s) => uintAtMost(s, Number.MAX_SAFE_INTEGER, 'version'))
}

export function decodeOffer(bytes: Uint8Array): OfferMessage {
  return decodeWith('offer', bytes, (s) => {
    const count = uintAtMost(s, MAX_OFFER_ENTRIES, 'entry count')
    const entries: OfferEntry[] = []
    for (let i = 0; i < count; i++) {
      const kind = uintAtMost(s, 0xff, 'kind')
      const product = b4a.toString(lengthPrefixed(s, MAX_PRODUCT_BYTES, 'product'), 'utf8')
      const number = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'number')
      entries.push({ kind, product, number, hash: hash(s) })
    }
    return { entries }
  })
}

export function decodeWant(bytes: Uint8Array): WantMessage {
  return decodeWith('want', bytes, (s) => {
    const count = uintAtMost(s, MAX_WANT_HASHES, 'hash count')
    if (s.end - s.start !== count * HASH_BYTES) throw new StatementDecodeError(`hash list is ${s.end - s.start} bytes, expected ${count * HASH_BYTES}`)
    const hashes: Uint8Array[] = []
    for (let i = 0; i < count; i++) hashes.push(hash(s))
    return { hashes }
  })
}

export function decodeDoc(bytes: Uint8Array): DocMessage {
  return decodeWith('doc', bytes, (s) => {
    const kind = uintAtMost(s, 0xff, 'kind')
    return { kind, bytes: lengthPrefixed(s, MAX_DOC_BYTES, 'document') }
  })
}

export function decodeWantRoots(bytes: Uint8Array): WantRootsMessage {
  return decodeWith('want-roots', bytes, (s) => {
    const from = uintAtMost(s, Number.MAX_SAFE_INTEGER, 'from')
    if (from < 1) throw new StatementDecodeError('want-roots from 0: root versions start at 1')
    return { from }
  })
}

export const statementDecoders = { offer: decodeOffer, want: decodeWant, doc: decodeDoc, wantRoots: decodeWantRoots } as const
