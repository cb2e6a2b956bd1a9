// Issue 14 item 2: the bulk port's tickets and certificate (infra/http/bulk-wire.ts, infra/auth/tls.ts).
import { randomBytes, X509Certificate } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createCa, positiveSerial, selfSignedCert } from '../../infra/auth/tls.ts'
import { BulkOffer, TICKET_TTL_MS, fingerprintOf, issueTicket, ticketValid } from '../../infra/http/bulk-wire.ts'

describe('bulk port tickets', () => {
  const key = randomBytes(32)

  it('a ticket is good for its own server until it expires, and for no other server or key', () => {
    const now = Date.now()
    const t = issueTicket(key, 'rs1', now)
    expect(ticketValid(key, 'rs1', t, now)).toBe(true)
    expect(ticketValid(key, 'rs1', t, now + TICKET_TTL_MS - 1_000)).toBe(true)
    expect(ticketValid(key, 'rs1', t, now + TICKET_TTL_MS + 1_000)).toBe(false)
    expect(ticketValid(key, 'rs2', t, now)).toBe(false)
    expect(ticketValid(randomBytes(32), 'rs1', t, now)).toBe(false)
  })

  it('a ticket whose expiry was moved, or that is malformed, is refused', () => {
    const now = Date.now()
    const [expires, mac] = issueTicket(key, 'rs1', now).split('.')
    expect(ticketValid(key, 'rs1', `${Number(expires) + 3600}.${mac}`, now)).toBe(false)
    for (const bad of [undefined, '', 'abc', `${expires}.`, `${expires}.${mac}x`, `-1.${mac}`]) expect(ticketValid(key, 'rs1', bad, now)).toBe(false)
  })
})

describe('the bulk port certificate', () => {
  it('is a self-signed ECDSA P-256 certificate that verifies under its own key and fits an offer', () => {
    const pair = selfSignedCert('upswarm repository server rs1')
    const cert = new X509Certificate(pair.cert)
    expect(cert.subject).toBe('CN=upswarm repository server rs1')
    expect(cert.issuer).toBe(cert.subject)
    expect(cert.verify(cert.publicKey)).toBe(true)
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
    expect(new Date(cert.validTo).getTime()).toBeGreaterThan(Date.now() + 365 * 24 * 3600 * 1000)
    expect(fingerprintOf(pair.cert)).toBe(cert.fingerprint256)
    expect(fingerprintOf(selfSignedCert('x').cert)).not.toBe(cert.fingerprint256)
    expect(BulkOffer.safeParse({ url: 'https://127.0.0.1:4443', cert: pair.cert, ticket: issueTicket(randomBytes(32), 'rs1') }).success).toBe(true)
  })

  it('every serial is a positive DER integer with no padding, so no certificate is refused by chance (bounded run)', () => {
    // A serial whose first byte was 0x00 before a byte under 0x80 made 1 in 512 certificates unloadable
    // ("illegal padding"): a repository server then failed to start its bulk port.
    for (let i = 0; i < 5000; i++) {
      const first = positiveSerial()[0]!
      expect(first >= 0x40 && first < 0x80).toBe(true)
    }
    for (let i = 0; i < 1500; i++) expect(() => new X509Certificate(selfSignedCert(`rs${i}`).cert)).not.toThrow()
    const ca = new X509Certificate(createCa('upswarm test').cert)
    expect(ca.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/)
  })
})
