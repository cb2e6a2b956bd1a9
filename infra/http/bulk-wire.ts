// Issue 14 item 2: a repository server's bulk port — blob ranges over HTTPS, straight from the
// server, with NATS kept for control. What both ends agree on lives here: the offer a server hands
// out over NATS (its URL, its self-signed certificate, a ticket), the ticket's form, and the path.
//
// Trust: the offer comes over the authenticated, TLS-protected NATS connection from the server's
// own subject (only that server may subscribe to it), so the certificate it names is pinned by the
// client (its SHA-256 fingerprint), and a ticket proves its bearer could ask the server over NATS.
// Every byte is still checked against the signed metadata on arrival (R-VERIFY).
import { createHmac, timingSafeEqual, X509Certificate } from 'node:crypto'
import { z } from 'zod'

/** GET BLOB_PATH + sha256 with `Range: bytes=a-b`: 206 and the bytes, or a JSON error. */
export const BLOB_PATH = '/v1/blobs/'
/**
 * POST UNITS_PATH with a JSON body `{"hashes": [...]}` (at most NODES_MAX_HASHES): 200 and the
 * same reply the NATS `units` request gives (infra/formats/meta-wire.ts), or a JSON error. Issue 13
 * item 4: a first install's small files by the batch, off the NATS routes like ranges.
 */
export const UNITS_PATH = '/v1/units'
/** A units request's body is at most this long (1 024 hashes of 64 hex digits, quoted, with commas). */
export const UNITS_BODY_MAX = 80 * 1024
/** How long the client waits for this answer (issue 14: a capped server answers busy rather than let it time out). */
export const WAIT_HEADER = 'x-upswarm-wait-ms'
/** A ticket is good this long; a client asks for a new one when the server refuses it. */
export const TICKET_TTL_MS = 10 * 60_000

export const BulkOffer = z.object({
  /** https://host:port, where the server's bulk port answers. */
  url: z.string().regex(/^https:\/\/[^/\s]+$/),
  /** The port's self-signed certificate (PEM). */
  cert: z.string().min(1).max(8192),
  ticket: z.string().regex(/^[0-9]{1,15}\.[A-Za-z0-9_-]{43}$/),
})
export type BulkOffer = z.infer<typeof BulkOffer>

/** The SHA-256 fingerprint of a PEM certificate, as node's TLS peer certificate spells it. */
export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256
}

const mac = (key: Buffer, server: string, expires: number): string =>
  createHmac('sha256', key).update(`upswarm-bulk-v1\0${server}\0${expires}`).digest('base64url')

/** A ticket for `server`'s bulk port, good until `now + TICKET_TTL_MS`. */
export function issueTicket(key: Buffer, server: string, now = Date.now()): string {
  const expires = Math.ceil((now + TICKET_TTL_MS) / 1000)
  return `${expires}.${mac(key, server, expires)}`
}

/** Whether `ticket` was issued with `key` for `server` and has not expired. */
export function ticketValid(key: Buffer, server: string, ticket: string | undefined, now = Date.now()): boolean {
  const m = ticket ? /^([0-9]{1,15})\.([A-Za-z0-9_-]{43})$/.exec(ticket) : null
  if (!m) return false
  const expires = Number(m[1])
  if (expires * 1000 < now) return false
  const want = Buffer.from(mac(key, server, expires))
  const got = Buffer.from(m[2]!)
  return want.length === got.length && timingSafeEqual(want, got)
}
