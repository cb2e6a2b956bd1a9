// The `upswarm/statements` wire format (docs/formats.md §1.8): round trips, exact consumption,
// caps, and no decoder throws anything but StatementDecodeError on random bytes.
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  MAX_DOC_BYTES, MAX_OFFER_ENTRIES, StatementDecodeError, StatementKind, statementBytes, statementDecoders, statementEncoders,
} from '../../infra/swarm/statements-codec.ts'

const P = '11111111-2222-4333-8444-555555555555'

describe('swarm — statements codec', () => {
  it('round-trips every message type and refuses a trailing byte', () => {
    const offer = { entries: [{ kind: StatementKind.root, product: '', number: 3, hash: randomBytes(32) }, { kind: StatementKind.fresh, product: P, number: 1_760_000_000, hash: randomBytes(32) }] }
    const want = { hashes: [randomBytes(32), randomBytes(32)] }
    const doc = { kind: StatementKind.fresh, bytes: Buffer.from('{"signed":{}}') }
    const cases = [
      ['offer', statementEncoders.offer, offer, statementDecoders.offer],
      ['want', statementEncoders.want, want, statementDecoders.want],
      ['doc', statementEncoders.doc, doc, statementDecoders.doc],
      ['wantRoots', statementEncoders.wantRoots, { from: 4 }, statementDecoders.wantRoots],
    ] as const
    for (const [, enc, msg, dec] of cases) {
      const bytes = statementBytes(enc as never, msg as never)
      expect((dec as (b: Uint8Array) => unknown)(bytes)).toEqual(msg)
      expect(() => (dec as (b: Uint8Array) => unknown)(Buffer.concat([bytes, Buffer.of(0)]))).toThrow(StatementDecodeError)
    }
  })

  it('enforces its caps on both sides', () => {
    expect(() => statementBytes(statementEncoders.doc, { kind: 0, bytes: Buffer.alloc(MAX_DOC_BYTES + 1) })).toThrow(/at most/)
    const many = { entries: Array.from({ length: MAX_OFFER_ENTRIES + 1 }, () => ({ kind: 2, product: P, number: 1, hash: Buffer.alloc(32) })) }
    expect(() => statementBytes(statementEncoders.offer, many)).toThrow(/at most/)
    expect(() => statementDecoders.wantRoots(statementBytes(statementEncoders.wantRoots, { from: 0 }))).toThrow(StatementDecodeError)
    // A doc length past the cap is refused before anything is read.
    expect(() => statementDecoders.doc(Buffer.from([0, 0xfe, 0xff, 0xff, 0xff, 0x7f]))).toThrow(StatementDecodeError)
  })

  it('throws only StatementDecodeError on random and truncated bytes (bounded run)', () => {
    const valid = statementBytes(statementEncoders.offer, { entries: [{ kind: 0, product: P, number: 9, hash: randomBytes(32) }] })
    for (let i = 0; i < 2000; i++) {
      const bytes = i % 2 ? randomBytes(i % 97) : valid.subarray(0, i % valid.byteLength)
      for (const dec of Object.values(statementDecoders)) {
        try {
          dec(bytes)
        } catch (err) {
          expect(err).toBeInstanceOf(StatementDecodeError)
        }
      }
    }
  })
})
