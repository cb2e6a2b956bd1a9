import {
  UUID_RE
} from "./chunk-27MN4SFY.js";

// actors/repo-server/heartbeat.ts
import { z } from "zod";
var Counter = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
var Hex32 = z.string().regex(/^[0-9a-f]{64}$/);
var Synced = z.record(z.string().regex(UUID_RE), z.number().int().min(0));
var SwarmInfoSchema = z.object({
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
  bytesUp: Counter
});
var HeartbeatSchema = z.object({
  id: z.string().min(1).max(128),
  weight: z.number().int().min(0).max(1e6),
  /** Highest verified revision per product UUID. */
  synced: Synced,
  inflight: Counter,
  requests: Counter,
  bytesServed: Counter,
  startedAt: z.string(),
  swarm: SwarmInfoSchema
});
var HeartbeatForPool = z.object({
  id: HeartbeatSchema.shape.id,
  weight: HeartbeatSchema.shape.weight,
  synced: Synced.default({}),
  requests: Counter.default(0),
  bytesServed: Counter.default(0),
  inflight: Counter.default(0)
});
var HeartbeatForFeed = z.object({
  id: HeartbeatSchema.shape.id,
  swarm: SwarmInfoSchema.pick({ publicKey: true, host: true, port: true, feeds: true })
});
var HeartbeatForClient = z.object({
  synced: Synced.default({}),
  swarm: SwarmInfoSchema.pick({ publicKey: true }).optional()
});
function heartbeatProblems(err) {
  return err instanceof z.ZodError ? err.issues.slice(0, 3).map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ") : "not JSON";
}

export {
  HeartbeatForPool,
  HeartbeatForFeed,
  HeartbeatForClient,
  heartbeatProblems
};
