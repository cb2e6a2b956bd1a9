import { describe, expect, it } from 'vitest'
import { DIAL_BACKOFF_MS, DialBook, DROPPED_FOR_MS, MAX_DIAL_FAILURES } from '../../actors/share-daemon/dial-book.ts'

/** A tracker round every `everyMs` for `forMs`, each dialling `key` if the book lets it and failing. */
function rounds(book: DialBook, clock: { now: number }, key: string, everyMs: number, forMs: number): number {
  let dials = 0
  for (const end = clock.now + forMs; clock.now < end; clock.now += everyMs) {
    if (!book.begin(key)) continue
    dials++
    book.end(key, false)
  }
  return dials
}

describe('daemon dial book', () => {
  it('daemon — an address that never completes a handshake is dialled a few times with backoff, then dropped until much later', () => {
    const clock = { now: 1_000_000 }
    const book = new DialBook({ now: () => clock.now })
    const dead = DialBook.key('10.0.0.9', 4000, 'ab'.repeat(32))
    expect(book.begin(dead)).toBe(true)
    expect(book.begin(dead)).toBe(false) // in flight
    expect(book.end(dead, false)).toBe(DIAL_BACKOFF_MS)
    clock.now += DIAL_BACKOFF_MS - 1
    expect(book.begin(dead)).toBe(false)
    clock.now += 1
    expect(book.begin(dead)).toBe(true)
    expect(book.end(dead, false)).toBe(2 * DIAL_BACKOFF_MS)
    // The tracker lists it every second for twenty minutes: one more try, then nothing.
    expect(rounds(book, clock, dead, 1_000, 20 * 60_000)).toBe(MAX_DIAL_FAILURES - 2)
    // Much later the tracker still reports it: a fresh start, bounded again.
    clock.now += DROPPED_FOR_MS
    expect(rounds(book, clock, dead, 1_000, 20 * 60_000)).toBe(MAX_DIAL_FAILURES)
  })

  it('daemon — a connection forgets the failures; another key at the same address is a record of its own', () => {
    const clock = { now: 0 }
    const book = new DialBook({ now: () => clock.now })
    const peer = DialBook.key('10.0.0.1', 4000, 'cd'.repeat(32))
    for (let i = 0; i < MAX_DIAL_FAILURES - 1; i++) {
      clock.now += DROPPED_FOR_MS
      expect(book.begin(peer)).toBe(true)
      book.end(peer, false)
    }
    clock.now += DROPPED_FOR_MS
    expect(book.begin(peer)).toBe(true)
    expect(book.end(peer, true)).toBe(0)
    expect(book.begin(peer)).toBe(true)
    expect(book.end(peer, false)).toBe(DIAL_BACKOFF_MS) // a first failure again, not the last
    // A forged entry naming the same address with another key does not age the real one out.
    const forged = DialBook.key('10.0.0.1', 4000, 'ee'.repeat(32))
    expect(rounds(book, clock, forged, 1_000, 10 * 60_000)).toBe(MAX_DIAL_FAILURES)
    clock.now += DIAL_BACKOFF_MS
    expect(book.begin(peer)).toBe(true)
  })

  it('daemon — the book remembers a bounded number of addresses', () => {
    const clock = { now: 0 }
    const book = new DialBook({ now: () => clock.now, maxRecords: 2 })
    const keys = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((ip) => DialBook.key(ip, 1))
    for (const k of keys) {
      book.begin(k)
      book.end(k, false)
    }
    // The oldest record was forgotten, so it may be dialled; the others still back off.
    expect([...keys].reverse().map((k) => book.begin(k))).toEqual([false, false, true])
  })
})
