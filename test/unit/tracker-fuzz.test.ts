// Bounded-time fuzzing of the parsers that face the network: random and mutated inputs must be
// answered or refused with the parser's own error type, never with a crash or a hang.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { bdecode, BencodeError } from '../../infra/tracker/bencode.ts'
import { parseAnnounceQuery, parseScrapeQuery, TrackerRequestError } from '../../infra/tracker/http-protocol.ts'
import { encodeBytes } from '../../infra/tracker/query.ts'
import { MAX_PACKET, parseUdpRequest, PROTOCOL_ID } from '../../infra/tracker/udp-protocol.ts'

const BUDGET_MS = 1_000
const RUNS = 10_000
const settings = { numRuns: RUNS, interruptAfterTimeLimit: BUDGET_MS, markInterruptAsFailure: false, seed: 0x7ac4e7 }

function validUdpPackets(): Buffer[] {
  const connect = Buffer.alloc(16)
  connect.writeBigUInt64BE(PROTOCOL_ID, 0)
  const url = Buffer.from('/announce?product=1b4e28ba-2fa1-11d2-883f-0016d3cca427&rev=7&pk=' + 'ab'.repeat(32))
  const announce = Buffer.concat([Buffer.alloc(98, 7), Buffer.from([1, 2, url.byteLength]), url, Buffer.from([0])])
  announce.writeUInt32BE(1, 8)
  announce.writeUInt32BE(2, 80)
  const scrape = Buffer.alloc(16 + 40, 3)
  scrape.writeUInt32BE(2, 8)
  return [connect, announce, scrape]
}

/** A valid packet with bytes overwritten, then truncated or extended. */
const mutatedPacket = fc
  .tuple(
    fc.constantFrom(...validUdpPackets()),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    fc.integer({ min: -120, max: 300 }),
  )
  .map(([base, flips, resize]) => {
    const b = Buffer.from(base)
    for (const [at, v] of flips) b[at % b.byteLength] = v
    return resize < 0 ? b.subarray(0, Math.max(0, b.byteLength + resize)) : Buffer.concat([b, Buffer.alloc(resize, resize & 0xff)])
  })

const validQuery = `info_hash=${encodeBytes(Buffer.alloc(20, 1))}&peer_id=${encodeBytes(Buffer.alloc(20, 2))}&port=6881&uploaded=0&downloaded=0&left=0&event=started&numwant=9&product=1b4e28ba-2fa1-11d2-883f-0016d3cca427&rev=3`
const queryChars = fc.constantFrom(...'abcdefinfo_hashpeer_idportleftevent=&%+0123456789AFaz-.~\u00e9\u0000'.split(''))
const mutatedQuery = fc
  .tuple(fc.array(fc.tuple(fc.nat(), queryChars), { maxLength: 10 }), fc.integer({ min: 0, max: validQuery.length }))
  .map(([edits, cut]) => {
    const chars = validQuery.slice(0, cut || validQuery.length).split('')
    for (const [at, c] of edits) chars.splice(at % (chars.length + 1), at % 3 === 0 ? 1 : 0, c)
    return chars.join('')
  })

describe('tracker parser fuzzing', () => {
  it('tracker — the UDP parser answers or refuses any packet (random and mutated)', () => {
    const check = (packet: Uint8Array) => {
      const r = parseUdpRequest(Buffer.from(packet))
      if (!r.ok) expect(typeof r.error).toBe('string')
      else expect(packet.byteLength).toBeLessThanOrEqual(MAX_PACKET)
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2_000 }), check), settings)
    fc.assert(fc.property(mutatedPacket, check), settings)
  })

  it('tracker — the HTTP announce and scrape parsers refuse bad queries only with TrackerRequestError', () => {
    const check = (q: string) => {
      for (const parse of [() => parseAnnounceQuery(q, '127.0.0.1'), () => parseScrapeQuery(q)]) {
        try {
          parse()
        } catch (err) {
          expect(err).toBeInstanceOf(TrackerRequestError)
        }
      }
    }
    fc.assert(fc.property(fc.string({ maxLength: 600 }), check), settings)
    fc.assert(fc.property(mutatedQuery, check), settings)
  })

  it('tracker — bdecode refuses any malformed body only with BencodeError', () => {
    const alphabet = fc.constantFrom(...'ilde0123456789:-ab'.split('').map((c) => c.charCodeAt(0)))
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 300 }), (bytes) => {
        try {
          bdecode(Buffer.from(bytes))
        } catch (err) {
          expect(err).toBeInstanceOf(BencodeError)
        }
      }),
      settings,
    )
  })
})
