import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import {
  MAX_HAVE_PER_MESSAGE, MAX_REQUEST_LENGTH, PROTOCOL_VERSION, PieceDecodeError,
  decodeHandshake, decoders, encoders, toBytes,
} from '../../infra/swarm/piece-codec.ts'

const sha = (s: string): Buffer => createHash('sha256').update(s).digest()

/** One valid message of every type, for round trips and as fuzz seeds. */
const samples = {
  have: toBytes(encoders.have, { product: '1b4e28ba-2fa1-11d2-883f-0016d3cca427', rev: 7, reset: true, hashes: [sha('a'), sha('b')] }),
  havePiece: toBytes(encoders.havePiece, { sha256: sha('a'), pieceSize: 1 << 20, index: 3 }),
  request: toBytes(encoders.request, { id: 9, sha256: sha('a'), offset: 5 << 20, length: 1 << 20 }),
  data: toBytes(encoders.data, { id: 9, bytes: Buffer.from('piece bytes') }),
  reject: toBytes(encoders.reject, { id: 9, reason: 'not-found' }),
  cancel: toBytes(encoders.cancel, { id: 9 }),
  choke: toBytes(encoders.choke, null),
  unchoke: toBytes(encoders.unchoke, null),
  haveRange: toBytes(encoders.haveRange, { sha256: sha('a'), offset: 3_000_123, length: 917_504 }),
} as const

type Name = keyof typeof samples
const names = Object.keys(samples) as Name[]

/** A decoder may return a value or throw PieceDecodeError — nothing else, ever. */
function decodeOrDecodeError(name: Name, bytes: Uint8Array): void {
  try {
    decoders[name](bytes)
  } catch (err) {
    if (!(err instanceof PieceDecodeError)) throw new Error(`${name} decoder threw ${String(err)} (not a PieceDecodeError)`)
  }
}

describe('swarm piece codec', () => {
  it('swarm — every message type round-trips', () => {
    expect(decoders.have(samples.have)).toMatchObject({ product: '1b4e28ba-2fa1-11d2-883f-0016d3cca427', rev: 7, reset: true })
    expect(decoders.have(samples.have).hashes.map((h) => Buffer.from(h).toString('hex'))).toEqual([sha('a').toString('hex'), sha('b').toString('hex')])
    expect(decoders.havePiece(samples.havePiece)).toMatchObject({ pieceSize: 1 << 20, index: 3 })
    expect(decoders.request(samples.request)).toMatchObject({ id: 9, offset: 5 << 20, length: 1 << 20 })
    expect(Buffer.from(decoders.data(samples.data).bytes).toString()).toBe('piece bytes')
    expect(decoders.reject(samples.reject)).toEqual({ id: 9, reason: 'not-found' })
    expect(decoders.cancel(samples.cancel)).toEqual({ id: 9 })
    expect(() => decoders.choke(samples.choke)).not.toThrow()
    expect(decoders.haveRange(samples.haveRange)).toMatchObject({ offset: 3_000_123, length: 917_504 })
    expect(Buffer.from(decoders.haveRange(samples.haveRange).sha256).toString('hex')).toBe(sha('a').toString('hex'))
    const hs = decodeHandshake(toBytes(encoders.handshake, { version: PROTOCOL_VERSION, maxOutstanding: 32, maxRequestLength: MAX_REQUEST_LENGTH }))
    expect(hs).toEqual({ version: 1, maxOutstanding: 32, maxRequestLength: MAX_REQUEST_LENGTH })
  })

  it('swarm — the decoders refuse trailing bytes, truncation and oversize fields', () => {
    for (const name of names) {
      expect(() => decoders[name](Buffer.concat([samples[name], Buffer.from([0])])), name).toThrow(PieceDecodeError)
    }
    for (const name of ['have', 'havePiece', 'request', 'data', 'reject', 'cancel', 'haveRange'] as const) {
      expect(() => decoders[name](samples[name].subarray(0, samples[name].length - 1)), name).toThrow(PieceDecodeError)
    }
    // A range that is empty, or longer than any piece, is refused.
    expect(() => decoders.haveRange(toBytes(encoders.haveRange, { sha256: sha('a'), offset: 0, length: 0 }))).toThrow(/empty range/)
    expect(() => decoders.haveRange(toBytes(encoders.haveRange, { sha256: sha('a'), offset: 0, length: 64 * 1024 * 1024 + 1 }))).toThrow(PieceDecodeError)
    const big = toBytes(encoders.data, { id: 1, bytes: Buffer.alloc(MAX_REQUEST_LENGTH + 1) })
    expect(() => decoders.data(big)).toThrow(/exceeds|out of range/)
    // A have header claiming more hashes than allowed is refused before anything is allocated.
    const header = Buffer.from([0, 1, 0, 0xfd, 0xff, 0xff])
    expect(() => decoders.have(header)).toThrow(PieceDecodeError)
    expect(() => toBytes(encoders.have, { product: '', rev: 0, reset: false, hashes: Array(MAX_HAVE_PER_MESSAGE + 1).fill(sha('x')) })).toThrow()
  })

  it('swarm — the decoders survive a bounded fuzz run (random and mutated messages)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.uint8Array({ maxLength: 600 }), (name, bytes) => {
        decodeOrDecodeError(name, bytes)
      }),
      { numRuns: 4000, seed: 0x5eed },
    )
    // Valid messages with bytes flipped, cut or spliced: close to the format, so deeper paths run.
    const mutation = fc.record({
      name: fc.constantFrom(...names),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      cut: fc.nat(),
      tail: fc.uint8Array({ maxLength: 40 }),
    })
    fc.assert(
      fc.property(mutation, ({ name, flips, cut, tail }) => {
        const b = Buffer.from(samples[name])
        for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v
        const cutAt = b.length === 0 ? 0 : cut % (b.length + 1)
        decodeOrDecodeError(name, Buffer.concat([b.subarray(0, cutAt), tail]))
        decodeOrDecodeError(name, b)
      }),
      { numRuns: 4000, seed: 0xbad },
    )
  })
})
