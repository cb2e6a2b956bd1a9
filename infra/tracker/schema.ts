// Wire schemas of the tracker's JSON messages (NATS service, /v1 HTTP API, KV values).
// Validated at every boundary; inside, the parsed types are trusted.
import { isIP } from 'node:net'
import { z } from 'zod'
import { SITE_LABEL } from '../swarm/site-label.ts'
import { isProductId } from './info-hash.ts'

export const MAX_NUMWANT = 200

const product = z
  .string()
  .refine(isProductId, { message: 'product must be a UUID (e.g. 1b4e28ba-2fa1-11d2-883f-0016d3cca427)' })
  .transform((s) => s.toLowerCase())
const rev = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const hex = (bytes: number) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), { message: `must be ${bytes} bytes in hex` })
    .transform((s) => s.toLowerCase())
const ip = z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IPv4 or IPv6 address' })
const port = z.number().int().min(1).max(65_535)
/** Issue 14 item 4: a locality label (infra/swarm/site-label.ts SITE_LABEL). */
const site = z.string().regex(SITE_LABEL, { message: 'site must be 1 to 64 letters, digits and . _ : / -' })

export const peerIdHex = hex(20)
export const infoHashHex = hex(20)
export const publicKeyHex = hex(32)

export const announceRequestSchema = z.object({
  product,
  rev,
  peerId: peerIdHex,
  /** Over NATS the tracker cannot see the peer's address; the client sends the one the NATS server saw. */
  ip,
  port,
  publicKey: publicKeyHex.optional(),
  /** Issue 14 item 4: the announcer's site; peers of the same site come first in the answer. */
  site: site.optional(),
  event: z.enum(['started', 'stopped', 'completed', 'update']).default('update'),
  left: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  numwant: z.number().int().min(0).max(1_000_000).default(50),
})
export type AnnounceRequest = z.input<typeof announceRequestSchema>

export const peerViewSchema = z.object({
  peerId: peerIdHex,
  ip,
  port,
  product: product.optional(),
  rev: rev.optional(),
  publicKey: publicKeyHex.optional(),
  site: site.optional(),
  left: z.number().int().min(0),
  expires: z.number(),
})

export const announceResponseSchema = z.object({
  infoHash: infoHashHex,
  intervalMs: z.number().int().positive(),
  ttlMs: z.number().int().positive(),
  seeders: z.number().int().min(0),
  leechers: z.number().int().min(0),
  /** Issue 14 item 4: peers of the announcer's site in the swarm, when it named its site. */
  sitePeers: z.number().int().min(0).optional(),
  peers: z.array(peerViewSchema),
})
export type AnnounceResponse = z.infer<typeof announceResponseSchema>

export const peersQuerySchema = z.object({
  product,
  rev: rev.optional(),
  limit: z.number().int().min(1).max(10_000).default(MAX_NUMWANT),
})
export type PeersQuery = z.input<typeof peersQuerySchema>

export const peersResponseSchema = z.object({
  product,
  rev: rev.optional(),
  peers: z.array(peerViewSchema),
})
export type PeersResponse = z.infer<typeof peersResponseSchema>

/** A peer as stored in the KV bucket. */
export const storedPeerSchema = z.object({
  peerId: peerIdHex,
  ip,
  port,
  infoHash: infoHashHex,
  product: product.optional(),
  rev: rev.optional(),
  publicKey: publicKeyHex.optional(),
  site: site.optional(),
  left: z.number().int().min(0),
  completed: z.boolean(),
  at: z.number(),
  expires: z.number(),
  owner: z.string().max(100).optional(),
})

export const storedMappingSchema = z.object({ product, rev })
