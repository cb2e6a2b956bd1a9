// What the swarm's compact-encoding codecs share (piece-codec.ts, statements-codec.ts): the
// encoder shape, encoding to bytes, and strict decoding of untrusted bytes — a size cap, every
// failure turned into the codec's own decode error, no trailing byte, bounded integers.
import b4a from 'b4a'
import c from 'compact-encoding'

export interface State { start: number; end: number; buffer: Uint8Array | null }

/** How a message type is written: compact-encoding's preencode/encode pair over a typed value. */
export interface WireEncoder<T> {
  preencode(state: State, message: T): void
  encode(state: State, message: T): void
}

const HASH_BYTES = 32

/** Protomux's decode step: received bytes go raw to the codec's own strict decoders. */
export const rawDecode = c.raw.decode as (state: unknown) => Uint8Array

/** A Protomux message encoding: typed, trusted values out; raw bytes in. */
export function sentTypedReceivedRaw<T>(encoder: WireEncoder<T>): { preencode: WireEncoder<T>['preencode']; encode: WireEncoder<T>['encode']; decode: (state: unknown) => T } {
  return { preencode: encoder.preencode, encode: encoder.encode, decode: rawDecode as (state: unknown) => T }
}

/** Encodes one message to bytes. */
export function encodeToBytes<T>(encoder: WireEncoder<T>, message: T): Buffer {
  const state: State = { start: 0, end: 0, buffer: null }
  encoder.preencode(state, message)
  state.buffer = b4a.allocUnsafe(state.end)
  encoder.encode(state, message)
  return state.buffer as Buffer
}

/** Strict decoding helpers that throw `DecodeError` for anything wrong in remote bytes. */
export function strictDecoding(DecodeError: new (message: string) => Error, maxMessageBytes: number) {
  return {
    /** Runs `body` over `bytes`; any failure, short read or trailing byte is a DecodeError. */
    decodeWith<T>(what: string, bytes: Uint8Array, body: (s: State) => T): T {
      if (!(bytes instanceof Uint8Array)) throw new DecodeError(`${what}: not bytes`)
      if (bytes.byteLength > maxMessageBytes) throw new DecodeError(`${what}: ${bytes.byteLength} bytes exceeds the ${maxMessageBytes}-byte cap`)
      const state: State = { start: 0, end: bytes.byteLength, buffer: bytes }
      let out: T
      try {
        out = body(state)
      } catch (err) {
        if (err instanceof DecodeError) throw err
        throw new DecodeError(`${what}: ${err instanceof Error ? err.message : String(err)}`)
      }
      if (state.start !== state.end) throw new DecodeError(`${what}: ${state.end - state.start} trailing bytes`)
      return out
    },
    uintAtMost(s: State, max: number, field: string): number {
      const n = c.uint.decode(s)
      if (!Number.isSafeInteger(n) || n > max) throw new DecodeError(`${field} ${n} is out of range (max ${max})`)
      return n
    },
    hash(s: State): Uint8Array {
      if (s.end - s.start < HASH_BYTES) throw new DecodeError('truncated SHA-256')
      return c.fixed32.decode(s)
    },
  }
}
