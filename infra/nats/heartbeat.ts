// The repository server's heartbeat (R-SERVER, R-PROXY-1): one wire format, one schema, shared by
// the roles that read it (so none of them imports the repository server's module). The
// server publishes a `Heartbeat` on serverHeartbeat(id) every HEARTBEAT_MS; each reader parses
// only the part it acts on, so a field it does not use can never keep a server out.
//   proxy            HeartbeatForPool    id, weight, synced, load counters, formats
//   publisher feed   HeartbeatForFeed    id and swarm address (which feeds it seeds)
//   sharing daemon   HeartbeatForClient  synced revisions and the server's swarm key
import { z } from 'zod'
import { UUID_RE } from '../release/manifest.ts'

/** How often a repository server sends its heartbeat; readers listen about this long to hear every server. */
export const HEARTBEAT_MS = 1000

/** The largest weight a server may have: one server can outweigh another a thousandfold, no more. */
export const MAX_WEIGHT = 1000

const Counter = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const Hex32 = z.string().regex(/^[0-9a-f]{64}$/)
const Synced = z.record(z.string().regex(UUID_RE), z.number().int().min(0))

/** What a server tells clients about its swarm side (R-SERVER: servers are seeds). */
export const SwarmInfoSchema = z.object({
  /** Noise public key (hex): bytes from this peer are server bytes. */
  publicKey: Hex32,
  /** TCP address to dial directly. */
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  /** Publisher keys (hex) whose release feed this server seeds. */
  feeds: z.array(Hex32),
  /** Open swarm connections. */
  peers: Counter,
  /** Bytes uploaded on the swarm. */
  bytesUp: Counter,
})
export type SwarmInfo = z.infer<typeof SwarmInfoSchema>

/** A heartbeat names at most this many parked releases (the newest). */
export const MAX_PARKED_SHOWN = 16
const Parked = z.array(z.object({
  product: z.string().max(64), rev: z.number().int().min(0), seq: z.number().int().min(1), reason: z.string().max(300), at: z.string().max(64),
})).max(MAX_PARKED_SHOWN)

/** The release a server is waiting to sync until its disk has room (issue 11 item 8), with why and since when. */
const Stalled = z.object({
  product: z.string().max(64), rev: z.number().int().min(0), seq: z.number().int().min(1), reason: z.string().max(300), since: z.string().max(64), needed: Counter,
})

export const HeartbeatSchema = z.object({
  id: z.string().min(1).max(128),
  weight: z.number().int().min(0).max(MAX_WEIGHT),
  /** Highest verified revision per product UUID. */
  synced: Synced,
  inflight: Counter,
  requests: Counter,
  bytesServed: Counter,
  /** Issue 14 item 2: of bytesServed, those sent over the bulk port (absent before). */
  bytesServedBulk: Counter.optional(),
  /** Issue 14: range requests their clients withdrew before this server sent them (absent before). */
  rangesWithdrawn: Counter.optional(),
  /** Issue 14: range requests answered `busy` because the queue was longer than their client waits (absent before). */
  rangesBusy: Counter.optional(),
  startedAt: z.string(),
  swarm: SwarmInfoSchema,
  /** Releases this server failed to sync after every try (issue 11 item 6), newest last. */
  parked: Parked.optional(),
  /** Set while the server's disk is too full for the next release. */
  stalled: Stalled.optional(),
  /** Issue 11 item 8: per product, the newest revision an operator pruned (its file contents are gone). */
  pruned: Synced.optional(),
  /**
   * Release formats the server syncs and serves (docs/formats.md §2.2): absent on a format-1
   * server, which gets no format-2 request. `synced2`: its newest verified format-2 revision per product.
   */
  formats: z.array(z.number().int().min(1).max(64)).max(16).optional(),
  synced2: Synced.optional(),
})
export type Heartbeat = z.infer<typeof HeartbeatSchema>

/** The proxy's part: who, how heavy, what it holds, how loaded. Counters default to 0. */
export const HeartbeatForPool = z.object({
  id: HeartbeatSchema.shape.id,
  weight: HeartbeatSchema.shape.weight,
  synced: Synced.default({}),
  requests: Counter.default(0),
  bytesServed: Counter.default(0),
  inflight: Counter.default(0),
  parked: Parked.default([]),
  stalled: Stalled.optional(),
  pruned: Synced.default({}),
  formats: z.array(z.number().int().min(1).max(64)).max(16).default([1]),
  synced2: Synced.default({}),
})

/** The publisher's part: where to dial the server that seeds a feed. */
export const HeartbeatForFeed = z.object({
  id: HeartbeatSchema.shape.id,
  swarm: SwarmInfoSchema.pick({ publicKey: true, host: true, port: true, feeds: true }),
})

/** The sharing daemon's part: which revisions servers hold, and which swarm key is a server. */
export const HeartbeatForClient = z.object({
  synced: Synced.default({}),
  synced2: Synced.default({}),
  swarm: SwarmInfoSchema.pick({ publicKey: true }).optional(),
})

/** "field: problem; …" of a failed parse, for the log line that says why a heartbeat was ignored. */
export function heartbeatProblems(err: unknown): string {
  return err instanceof z.ZodError ? err.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') : 'not JSON'
}
