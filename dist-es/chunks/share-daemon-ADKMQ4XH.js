import {
  jetStreamAlertSink
} from "./chunk-X4YIDBLL.js";
import {
  PeerSet,
  ServerSlots,
  swarmSource
} from "./chunk-YAVUDVTB.js";
import {
  StatCache,
  listBlobs,
  update
} from "./chunk-SXUI2W7S.js";
import {
  WorkingCopy,
  treePath
} from "./chunk-JUR675O3.js";
import {
  HeartbeatForClient
} from "./chunk-T5RVPTZM.js";
import {
  SwarmTransport,
  loadOrCreateKeyPair,
  openFeed,
  topicFor
} from "./chunk-2C5K53AI.js";
import {
  PieceSession,
  TokenBucket
} from "./chunk-IAH3INNS.js";
import "./chunk-OI7SFTYE.js";
import "./chunk-4DN6M2O5.js";
import {
  parseBootstrap
} from "./chunk-KR3YWSO7.js";
import {
  followReleases
} from "./chunk-DOGSJQR3.js";
import {
  SERVER_HEARTBEATS,
  actorEventSubject,
  trackerSubject
} from "./chunk-ZEBQZC7Y.js";
import {
  decodeRelease,
  fileEntries,
  manifestSha256
} from "./chunk-27MN4SFY.js";
import "./chunk-6PH2J2O4.js";
import "./chunk-4I46HHR5.js";
import {
  requestJson
} from "./chunk-LL5LKXZC.js";
import {
  UpswarmError,
  errorMessage,
  isUpswarmError
} from "./chunk-RP33VEIV.js";

// actors/share-daemon/index.ts
import { createHash as createHash2 } from "node:crypto";
import { EventEmitter } from "node:events";
import { join } from "node:path";

// actors/tracker/client.ts
import { createActor, fromPromise as fromPromise2, waitFor } from "xstate";

// infra/tracker-client/http-door.ts
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

// infra/tracker/bencode.ts
import b4a from "b4a";
var BencodeError = class extends Error {
  name = "BencodeError";
};
function bdecode(input, limits = {}) {
  const maxDepth = limits.maxDepth ?? 32;
  let items = limits.maxItems ?? 1e5;
  let pos = 0;
  const fail = (what) => {
    throw new BencodeError(`bencode: ${what} at byte ${pos}`);
  };
  const readInt = (end) => {
    const text = b4a.toString(input, "latin1", pos, end);
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) fail(`bad integer "${text.slice(0, 24)}"`);
    const n = Number(text);
    if (!Number.isSafeInteger(n)) fail("integer out of range");
    pos = end + 1;
    return n;
  };
  const indexOf = (byte) => {
    const i = input.indexOf(byte, pos);
    if (i < 0) fail("unterminated value");
    return i;
  };
  const readValue = (depth) => {
    if (depth > maxDepth) fail("nesting too deep");
    if (--items < 0) fail("too many items");
    const c = input[pos];
    if (c === void 0) return fail("unexpected end");
    if (c === 105) {
      pos++;
      return readInt(indexOf(
        101
        /* e */
      ));
    }
    if (c === 108) {
      pos++;
      const list = [];
      while (input[pos] !== 101) list.push(readValue(depth + 1));
      pos++;
      return list;
    }
    if (c === 100) {
      pos++;
      const dict = /* @__PURE__ */ new Map();
      while (input[pos] !== 101) {
        const key = readValue(depth + 1);
        if (!(key instanceof Uint8Array)) fail("dictionary key is not a string");
        dict.set(b4a.toString(key, "latin1"), readValue(depth + 1));
      }
      pos++;
      return dict;
    }
    if (c >= 48 && c <= 57) {
      const colon = indexOf(
        58
        /* : */
      );
      const text = b4a.toString(input, "latin1", pos, colon);
      if (!/^(0|[1-9][0-9]*)$/.test(text)) fail(`bad string length "${text.slice(0, 24)}"`);
      const len = Number(text);
      const start = colon + 1;
      if (len > input.byteLength - start) fail("string longer than input");
      pos = start + len;
      return input.subarray(start, pos);
    }
    return fail(`unexpected byte 0x${c.toString(16)}`);
  };
  const value = readValue(0);
  if (pos !== input.byteLength) fail("trailing bytes");
  return value;
}

// infra/tracker/info-hash.ts
import { createHash } from "node:crypto";
var UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
function isProductId(value) {
  return value.length === 36 && UUID_RE.test(value.toLowerCase());
}
function isRevision(value) {
  return Number.isSafeInteger(value) && value >= 0;
}
function infoHash(product2, rev2) {
  return createHash("sha1").update(`upswarm:${product2.toLowerCase()}:${rev2}`, "utf8").digest();
}

// infra/tracker/query.ts
function encodeBytes(bytes) {
  let out = "";
  for (const b of bytes) {
    const unreserved = b >= 48 && b <= 57 || b >= 65 && b <= 90 || b >= 97 && b <= 122 || b === 45 || b === 46 || b === 95 || b === 126;
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, "0").toUpperCase()}`;
  }
  return out;
}

// infra/tracker/schema.ts
import { isIP } from "node:net";
import { z } from "zod";
var MAX_NUMWANT = 200;
var product = z.string().refine(isProductId, { message: "product must be a UUID (e.g. 1b4e28ba-2fa1-11d2-883f-0016d3cca427)" }).transform((s) => s.toLowerCase());
var rev = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
var hex = (bytes) => z.string().regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), { message: `must be ${bytes} bytes in hex` }).transform((s) => s.toLowerCase());
var ip = z.string().refine((s) => isIP(s) !== 0, { message: "must be an IPv4 or IPv6 address" });
var port = z.number().int().min(1).max(65535);
var peerIdHex = hex(20);
var infoHashHex = hex(20);
var publicKeyHex = hex(32);
var announceRequestSchema = z.object({
  product,
  rev,
  peerId: peerIdHex,
  /** Over NATS the tracker cannot see the peer's address; the client sends the one the NATS server saw. */
  ip,
  port,
  publicKey: publicKeyHex.optional(),
  event: z.enum(["started", "stopped", "completed", "update"]).default("update"),
  left: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  numwant: z.number().int().min(0).max(1e6).default(50)
});
var peerViewSchema = z.object({
  peerId: peerIdHex,
  ip,
  port,
  product: product.optional(),
  rev: rev.optional(),
  publicKey: publicKeyHex.optional(),
  left: z.number().int().min(0),
  expires: z.number()
});
var announceResponseSchema = z.object({
  infoHash: infoHashHex,
  intervalMs: z.number().int().positive(),
  ttlMs: z.number().int().positive(),
  seeders: z.number().int().min(0),
  leechers: z.number().int().min(0),
  peers: z.array(peerViewSchema)
});
var peersQuerySchema = z.object({
  product,
  rev: rev.optional(),
  limit: z.number().int().min(1).max(1e4).default(MAX_NUMWANT)
});
var peersResponseSchema = z.object({
  product,
  rev: rev.optional(),
  peers: z.array(peerViewSchema)
});
var storedPeerSchema = z.object({
  peerId: peerIdHex,
  ip,
  port,
  infoHash: infoHashHex,
  product: product.optional(),
  rev: rev.optional(),
  publicKey: publicKeyHex.optional(),
  left: z.number().int().min(0),
  completed: z.boolean(),
  at: z.number(),
  expires: z.number()
});
var storedMappingSchema = z.object({ product, rev });

// infra/tracker-client/http-door.ts
var MAX_BODY = 1024 * 1024;
function httpDoor(baseUrl, opts) {
  const base = baseUrl.replace(/\/(announce)?$/, "");
  return {
    name: "http",
    async announce(params, signal) {
      const body = await httpGet(`${base}/announce?${announceQuery(params)}`, opts, signal);
      return parseAnnounceBody(body, params.rev);
    },
    close() {
    }
  };
}
async function queryPeersHttp(baseUrl, product2, rev2, opts) {
  const base = baseUrl.replace(/\/(announce)?$/, "");
  const url = `${base}/v1/products/${encodeURIComponent(product2)}/peers${rev2 === void 0 ? "" : `?rev=${rev2}`}`;
  const body = await httpGet(url, opts, AbortSignal.timeout(opts.timeoutMs), true);
  let json;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_TRACKER", `tracker ${url} answered with bad JSON`, { cause: err });
  }
  const parsed = peersResponseSchema.safeParse(json);
  if (!parsed.success) {
    const message = json?.error?.message ?? parsed.error.message;
    throw new UpswarmError("UPSWARM_E_TRACKER", `tracker ${url} refused the query: ${message}`);
  }
  return parsed.data.peers;
}
function announceQuery(p) {
  const parts = [
    `info_hash=${encodeBytes(infoHash(p.product, p.rev))}`,
    `peer_id=${encodeBytes(Buffer.from(p.peerId, "hex"))}`,
    `port=${p.port}`,
    "uploaded=0",
    "downloaded=0",
    "left=0",
    "compact=0",
    `numwant=${p.numwant ?? 50}`,
    `product=${p.product}`,
    `rev=${p.rev}`
  ];
  if (p.event !== "update") parts.push(`event=${p.event}`);
  if (p.publicKey) parts.push(`pk=${p.publicKey}`);
  return parts.join("&");
}
function parseAnnounceBody(body, rev2) {
  let dict;
  try {
    dict = bdecode(body);
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_TRACKER", `tracker answered the announce with bad bencode: ${err.message}`, { cause: err });
  }
  if (!(dict instanceof Map)) throw new UpswarmError("UPSWARM_E_TRACKER", "tracker answered the announce with a non-dictionary");
  const failure = dict.get("failure reason");
  if (failure instanceof Uint8Array) throw new UpswarmError("UPSWARM_E_TRACKER", `tracker refused the announce: ${Buffer.from(failure).toString("utf8")}`);
  const interval = dict.get("interval");
  const peers = [];
  const list = dict.get("peers");
  if (list instanceof Uint8Array) {
    for (let off = 0; off + 6 <= list.byteLength; off += 6) {
      peers.push({ ip: `${list[off]}.${list[off + 1]}.${list[off + 2]}.${list[off + 3]}`, port: list[off + 4] << 8 | list[off + 5], rev: rev2 });
    }
  } else if (Array.isArray(list)) {
    for (const item of list) {
      if (!(item instanceof Map)) continue;
      const ip2 = item.get("ip");
      const port2 = item.get("port");
      if (!(ip2 instanceof Uint8Array) || typeof port2 !== "number") continue;
      const peer = { ip: Buffer.from(ip2).toString("latin1"), port: port2, rev: rev2 };
      const id = item.get("peer id");
      if (id instanceof Uint8Array && id.byteLength === 20) peer.peerId = Buffer.from(id).toString("hex");
      const pk = item.get("public key");
      if (pk instanceof Uint8Array) peer.publicKey = Buffer.from(pk).toString("latin1");
      peers.push(peer);
    }
  }
  return typeof interval === "number" && interval > 0 ? { peers, intervalMs: interval * 1e3 } : { peers };
}
function httpGet(url, opts, signal, anyStatus = false) {
  return new Promise((resolve, reject) => {
    const fail = (err) => reject(err instanceof UpswarmError ? err : new UpswarmError("UPSWARM_E_TRACKER", `tracker at ${url.split("?")[0]} did not answer: ${err.message}`, { cause: err }));
    const timer = AbortSignal.any([signal, AbortSignal.timeout(opts.timeoutMs)]);
    const onResponse = (res) => {
      if (!anyStatus && res.statusCode !== 200) {
        res.resume();
        return fail(new UpswarmError("UPSWARM_E_TRACKER", `tracker at ${url.split("?")[0]} answered HTTP ${res.statusCode}`));
      }
      const chunks = [];
      let size = 0;
      res.on("data", (c) => {
        size += c.byteLength;
        if (size > MAX_BODY) return req.destroy(new Error(`response larger than ${MAX_BODY} bytes`));
        chunks.push(c);
      });
      res.on("end", () => resolve(Buffer.concat(chunks)));
      res.on("error", fail);
    };
    const options = { signal: timer, ca: opts.ca };
    const req = url.startsWith("https:") ? httpsRequest(url, options, onResponse) : httpRequest(url, options, onResponse);
    req.on("error", fail);
    req.end();
  });
}

// infra/tracker-client/nats-door.ts
function natsDoor(nc, opts) {
  return {
    name: "nats",
    async announce(params, signal) {
      signal.throwIfAborted();
      const ip2 = opts.ip ?? nc.info?.client_ip;
      if (!ip2) throw new UpswarmError("UPSWARM_E_TRACKER", "tracker over NATS: the NATS server did not tell our address (client_ip); pass ip explicitly");
      const req = { ...params, ip: ip2, numwant: params.numwant ?? 50 };
      const res = checked(announceResponseSchema, await requestJson(nc, trackerSubject("announce"), req, opts.timeoutMs), "announce");
      return { peers: res.peers, intervalMs: res.intervalMs };
    },
    close() {
    }
  };
}
async function queryPeersNats(nc, query, timeoutMs) {
  return checked(peersResponseSchema, await requestJson(nc, trackerSubject("peers"), query, timeoutMs), "peers").peers;
}
function checked(schema, body, what) {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new UpswarmError("UPSWARM_E_TRACKER", `tracker over NATS answered ${what} with an unexpected shape: ${parsed.error.message}`);
  return parsed.data;
}

// infra/tracker-client/udp-door.ts
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";

// infra/tracker/udp-protocol.ts
var PROTOCOL_ID = 0x41727101980n;
var ACTION_CONNECT = 0;
var ACTION_ANNOUNCE = 1;
var ACTION_ERROR = 3;

// infra/tracker-client/udp-door.ts
var EVENT_CODES = { update: 0, completed: 1, started: 2, stopped: 3 };
var CONNECTION_ID_LIFETIME_MS = 5e4;
var SENDS_PER_REQUEST = 3;
function udpDoor(url, opts) {
  const target = parseUdpUrl(url);
  let socket;
  const waiting = /* @__PURE__ */ new Map();
  let connection;
  const open2 = () => {
    if (socket) return socket;
    const s = createSocket("udp4");
    s.on("message", (packet) => {
      if (packet.byteLength < 8) return;
      waiting.get(packet.readUInt32BE(4))?.(packet);
    });
    s.on("error", () => {
    });
    s.unref();
    socket = s;
    return s;
  };
  const exchange = (body, signal) => new Promise((resolve, reject) => {
    const tx = randomBytes(4).readUInt32BE(0);
    body.writeUInt32BE(tx, 12);
    const s = open2();
    const send = () => s.send(body, target.port, target.host);
    const resend = setInterval(send, Math.max(1, Math.floor(opts.timeoutMs / SENDS_PER_REQUEST)));
    const timeout = setTimeout(() => done(new UpswarmError("UPSWARM_E_TRACKER", `tracker at ${url} did not answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const onAbort = () => done(new UpswarmError("UPSWARM_E_TRACKER", `announce to ${url} aborted`, { cause: signal.reason }));
    const done = (err, packet) => {
      clearInterval(resend);
      clearTimeout(timeout);
      signal.removeEventListener("abort", onAbort);
      waiting.delete(tx);
      if (err) reject(err);
      else resolve(packet);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort);
    waiting.set(tx, (packet) => {
      if (packet.readUInt32BE(0) === ACTION_ERROR) {
        done(new UpswarmError("UPSWARM_E_TRACKER", `tracker at ${url} refused: ${packet.toString("utf8", 8)}`));
      } else {
        done(null, packet);
      }
    });
    send();
  });
  const connectionId = async (signal) => {
    if (connection && connection.until > Date.now()) return connection.id;
    const req = Buffer.alloc(16);
    req.writeBigUInt64BE(PROTOCOL_ID, 0);
    req.writeUInt32BE(ACTION_CONNECT, 8);
    const res = await exchange(req, signal);
    if (res.byteLength < 16 || res.readUInt32BE(0) !== ACTION_CONNECT) throw new UpswarmError("UPSWARM_E_TRACKER", `tracker at ${url} sent a bad connect response`);
    connection = { id: Buffer.from(res.subarray(8, 16)), until: Date.now() + CONNECTION_ID_LIFETIME_MS };
    return connection.id;
  };
  return {
    name: "udp",
    async announce(params, signal) {
      const id = await connectionId(signal);
      try {
        return parseAnnounce(await exchange(announcePacket(id, params), signal), params.rev, url);
      } catch (err) {
        connection = void 0;
        throw err;
      }
    },
    close() {
      socket?.close();
      socket = void 0;
    }
  };
}
function announcePacket(connectionId, p) {
  const head = Buffer.alloc(98);
  connectionId.copy(head, 0);
  head.writeUInt32BE(ACTION_ANNOUNCE, 8);
  infoHash(p.product, p.rev).copy(head, 16);
  Buffer.from(p.peerId, "hex").copy(head, 36);
  head.writeUInt32BE(EVENT_CODES[p.event], 80);
  head.writeUInt32BE(randomBytes(4).readUInt32BE(0), 88);
  head.writeInt32BE(p.numwant ?? 50, 92);
  head.writeUInt16BE(p.port, 96);
  let url = `/announce?product=${p.product}&rev=${p.rev}`;
  if (p.publicKey) url += `&pk=${p.publicKey}`;
  const options = [];
  for (let i = 0; i < url.length; i += 255) {
    const chunk = Buffer.from(url.slice(i, i + 255), "latin1");
    options.push(Buffer.from([2, chunk.byteLength]), chunk);
  }
  options.push(Buffer.from([0]));
  return Buffer.concat([head, ...options]);
}
function parseAnnounce(packet, rev2, url) {
  if (packet.byteLength < 20 || packet.readUInt32BE(0) !== ACTION_ANNOUNCE) throw new UpswarmError("UPSWARM_E_TRACKER", `tracker at ${url} sent a bad announce response`);
  const peers = [];
  for (let off = 20; off + 6 <= packet.byteLength; off += 6) {
    peers.push({ ip: `${packet[off]}.${packet[off + 1]}.${packet[off + 2]}.${packet[off + 3]}`, port: packet.readUInt16BE(off + 4), rev: rev2 });
  }
  return { peers, intervalMs: packet.readUInt32BE(8) * 1e3 };
}
function parseUdpUrl(url) {
  const m = /^udp:\/\/([^/:]+|\[[^\]]+\]):(\d{1,5})(\/.*)?$/.exec(url);
  const port2 = Number(m?.[2]);
  if (!m || port2 < 1 || port2 > 65535) throw new UpswarmError("UPSWARM_E_CONFIG", `bad tracker UDP URL "${url}": expected udp://host:port`);
  return { host: m[1].replace(/^\[|\]$/g, ""), port: port2 };
}

// infra/tracker-client/index.ts
function trackerDoors(endpoints) {
  const timeoutMs = endpoints.timeoutMs ?? 2e3;
  const doors = [];
  if (endpoints.nc) doors.push(natsDoor(endpoints.nc, { timeoutMs }));
  if (endpoints.httpUrl) doors.push(httpDoor(endpoints.httpUrl, { timeoutMs, ...endpoints.ca ? { ca: endpoints.ca } : {} }));
  if (endpoints.udpUrl) doors.push(udpDoor(endpoints.udpUrl, { timeoutMs }));
  if (doors.length === 0) throw new UpswarmError("UPSWARM_E_CONFIG", "tracker client: no door configured; give a NATS connection, an HTTP URL or a UDP URL");
  return doors;
}
async function queryPeers(endpoints, product2, rev2) {
  const timeoutMs = endpoints.timeoutMs ?? 2e3;
  const errors = [];
  if (endpoints.nc) {
    try {
      return await queryPeersNats(endpoints.nc, rev2 === void 0 ? { product: product2 } : { product: product2, rev: rev2 }, timeoutMs);
    } catch (err) {
      if (err instanceof UpswarmError && err.code === "UPSWARM_E_BAD_REQUEST") throw err;
      errors.push(err.message);
    }
  }
  if (endpoints.httpUrl) {
    try {
      return await queryPeersHttp(endpoints.httpUrl, product2, rev2, { timeoutMs, ...endpoints.ca ? { ca: endpoints.ca } : {} });
    } catch (err) {
      errors.push(err.message);
    }
  }
  throw new UpswarmError("UPSWARM_E_TRACKER", `tracker unavailable: no door answered the peer query (${errors.join("; ") || "no NATS connection or HTTP URL given"}); look peers up on the DHT instead`);
}

// machines/tracker-session.machine.ts
import { assign, emit, enqueueActions, fromPromise, setup } from "xstate";
var trackerSessionMachine = setup({
  types: {
    input: {},
    context: {},
    events: {},
    emitted: {}
  },
  actors: {
    // Provided by actors/tracker/client.ts: one announce on one door.
    announce: fromPromise(async () => {
      throw new Error("tracker-session: the announce actor is not provided");
    })
  },
  guards: {
    onFirstDoor: ({ context }) => context.door === 0,
    hasNextDoor: ({ context }) => context.door + 1 < context.doors,
    unreachable: ({ context }) => !context.announced || context.failedRounds + 1 >= context.maxFailedRounds,
    announced: ({ context }) => context.announced
  },
  actions: {
    firstDoor: assign({ door: 0 }),
    nextDoor: assign({ door: ({ context }) => context.door + 1 }),
    recordSuccess: assign(({ context }, output) => ({
      failedRounds: 0,
      announced: true,
      event: "update",
      lastDoor: context.door,
      trackerIntervalMs: output.intervalMs ?? context.trackerIntervalMs
    })),
    recordFailure: assign({ failedRounds: ({ context }) => context.failedRounds + 1 }),
    emitPeers: emit(({ context }, output) => ({ type: "peers", peers: output.peers, door: context.door, rev: context.rev })),
    setRev: assign(({ event }) => event.type === "rev.changed" ? { rev: event.rev, event: "completed" } : {}),
    report: enqueueActions(({ context, enqueue }, params) => {
      if (context.status === params.status) return;
      enqueue.assign({ status: params.status });
      enqueue.emit({ type: "status", status: params.status });
    })
  },
  delays: {
    // After a success: the announce interval. After failures: retryMs, 2×, 4× … up to it.
    nextRound: ({ context }) => {
      const interval = Math.min(context.intervalMs, context.trackerIntervalMs ?? Number.POSITIVE_INFINITY);
      if (context.failedRounds === 0) return interval;
      return Math.min(interval, context.retryMs * 2 ** (context.failedRounds - 1));
    }
  }
}).createMachine({
  id: "trackerSession",
  context: ({ input }) => ({
    doors: Math.max(1, input.doors),
    door: 0,
    rev: input.rev,
    event: "started",
    intervalMs: input.intervalMs,
    trackerIntervalMs: void 0,
    retryMs: input.retryMs ?? Math.min(input.intervalMs, 1e3),
    maxFailedRounds: input.maxFailedRounds ?? 2,
    failedRounds: 0,
    announced: false,
    status: "announcing",
    lastDoor: 0
  }),
  initial: "active",
  states: {
    active: {
      initial: "announcing",
      on: {
        "rev.changed": { target: ".announcing", actions: ["setRev", "firstDoor"] },
        "announce.now": { target: ".announcing", actions: "firstDoor" },
        stop: [{ guard: "announced", target: "stopping" }, { target: "stopped" }]
      },
      states: {
        announcing: {
          invoke: {
            src: "announce",
            input: ({ context }) => ({ door: context.door, rev: context.rev, event: context.event }),
            onDone: [
              {
                guard: "onFirstDoor",
                target: "ok",
                actions: [
                  { type: "emitPeers", params: ({ event }) => event.output },
                  { type: "recordSuccess", params: ({ event }) => event.output }
                ]
              },
              {
                target: "degraded",
                actions: [
                  { type: "emitPeers", params: ({ event }) => event.output },
                  { type: "recordSuccess", params: ({ event }) => event.output }
                ]
              }
            ],
            onError: [
              { guard: "hasNextDoor", target: "announcing", reenter: true, actions: "nextDoor" },
              { guard: "unreachable", target: "down", actions: "recordFailure" },
              { target: "degraded", actions: "recordFailure" }
            ]
          }
        },
        ok: {
          entry: { type: "report", params: { status: "ok" } },
          after: { nextRound: { target: "announcing", actions: "firstDoor" } }
        },
        degraded: {
          entry: { type: "report", params: { status: "degraded" } },
          after: { nextRound: { target: "announcing", actions: "firstDoor" } }
        },
        down: {
          entry: { type: "report", params: { status: "down" } },
          after: { nextRound: { target: "announcing", actions: "firstDoor" } }
        }
      }
    },
    // Withdraw the peer where it last answered; on failure its entry simply expires there.
    stopping: {
      entry: assign({ door: ({ context }) => context.lastDoor, event: "stopped" }),
      invoke: {
        src: "announce",
        input: ({ context }) => ({ door: context.door, rev: context.rev, event: "stopped" }),
        onDone: "stopped",
        onError: "stopped"
      }
    },
    stopped: { type: "final" }
  }
});

// actors/tracker/client.ts
function createTrackerClient(opts) {
  validate(opts);
  const product2 = opts.product.toLowerCase();
  const doors = trackerDoors(opts);
  const announce = fromPromise2(
    ({ input, signal }) => doors[input.door].announce(
      {
        product: product2,
        rev: input.rev,
        peerId: opts.peerId.toLowerCase(),
        port: opts.port,
        event: input.event,
        ...opts.publicKey ? { publicKey: opts.publicKey.toLowerCase() } : {},
        ...opts.numwant !== void 0 ? { numwant: opts.numwant } : {}
      },
      signal
    )
  );
  const actor = createActor(trackerSessionMachine.provide({ actors: { announce } }), {
    input: {
      doors: doors.length,
      rev: opts.rev,
      intervalMs: opts.intervalMs,
      ...opts.retryMs !== void 0 ? { retryMs: opts.retryMs } : {},
      ...opts.maxFailedRounds !== void 0 ? { maxFailedRounds: opts.maxFailedRounds } : {}
    }
  });
  let peers = [];
  let stopping;
  actor.on("peers", (e) => {
    peers = e.peers;
  });
  actor.subscribe({ error: (err) => process.emitWarning(`tracker client: session failed: ${err.message}`) });
  actor.start();
  return {
    get status() {
      return actor.getSnapshot().context.status;
    },
    get peers() {
      return peers;
    },
    on(event, listener) {
      const sub = event === "peers" ? actor.on("peers", (e) => listener(e.peers, doors[e.door].name)) : actor.on("status", (e) => listener(e.status));
      return () => sub.unsubscribe();
    },
    setRev(rev2) {
      if (!isRevision(rev2)) throw new UpswarmError("UPSWARM_E_CONFIG", `tracker client: revision ${rev2} is not a non-negative integer`);
      actor.send({ type: "rev.changed", rev: rev2 });
    },
    announceNow() {
      actor.send({ type: "announce.now" });
    },
    queryPeers(p, rev2) {
      return queryPeers(opts, p, rev2);
    },
    stop() {
      stopping ??= (async () => {
        actor.send({ type: "stop" });
        await waitFor(actor, (s) => s.status === "done", { timeout: (opts.timeoutMs ?? 2e3) + 1e3 }).catch(() => {
        });
        actor.stop();
        for (const door of doors) door.close();
      })();
      return stopping;
    }
  };
}
function validate(opts) {
  const bad = (what) => {
    throw new UpswarmError("UPSWARM_E_CONFIG", `tracker client: ${what}`);
  };
  if (!isProductId(opts.product)) bad(`product "${opts.product}" is not a UUID`);
  if (!isRevision(opts.rev)) bad(`revision ${opts.rev} is not a non-negative integer`);
  if (!/^[0-9a-fA-F]{40}$/.test(opts.peerId)) bad("peerId must be 20 bytes in hex");
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) bad(`port ${opts.port} is not a TCP port`);
  if (opts.publicKey !== void 0 && !/^[0-9a-fA-F]{64}$/.test(opts.publicKey)) bad("publicKey must be 32 bytes in hex");
  if (!(opts.intervalMs > 0)) bad("intervalMs must be positive");
}

// actors/share-daemon/serve.ts
import { lstat, open } from "node:fs/promises";
async function readAt(file, offset, length) {
  const fh = await open(file, "r").catch(() => null);
  if (!fh) return null;
  try {
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
function makeServe(src) {
  let cache;
  const statCache = async () => {
    if (!cache || Date.now() - cache.at > 5e3) cache = { at: Date.now(), cache: await StatCache.load(src.layout.statCache) };
    return cache.cache;
  };
  return async (sha256, offset, length) => {
    const partial = src.partials.get(sha256);
    if (partial) {
      const first = Math.floor(offset / partial.pieceSize);
      const last = Math.floor((Math.min(offset + length, partial.size) - 1) / partial.pieceSize);
      let ok = offset < partial.size;
      for (let i = first; ok && i <= last; i++) ok = partial.verified[i] === 1;
      if (ok) {
        const data = await readAt(partial.file, offset, Math.min(length, partial.size - offset));
        if (data) return data;
      }
    }
    for (const store of src.stores()) {
      const data = await store.readRangeIfPresent(sha256, offset, length);
      if (data) return data;
    }
    for (const path of src.pathsOf(sha256) ?? []) {
      const abs = treePath(src.layout, path);
      const st = await lstat(abs, { bigint: true }).catch(() => null);
      if (!st?.isFile()) continue;
      if ((await statCache()).lookup(path, st)?.sha256 !== sha256) continue;
      return readAt(abs, offset, length);
    }
    return null;
  };
}

// actors/share-daemon/index.ts
var DEFAULT_ANNOUNCE_MS = 5e3;
var DEFAULT_SWARM_THREADS = 16;
var SERVER_SLOTS = 2;
var DISCOVERY_WAIT_MS = 3e4;
var HAVE_WAIT_MS = 3e3;
async function startDaemon(opts) {
  const log = opts.log ?? (() => {
  });
  const events = new EventEmitter();
  let wc = await WorkingCopy.open(opts.dir);
  const { product: product2, publicKey: publisherKey } = wc.config;
  const keyPair = await loadOrCreateKeyPair(join(wc.layout.meta, "swarm-key.json"));
  const publicKey = keyPair.publicKey.toString("hex");
  const peerId = createHash2("sha1").update(keyPair.publicKey).digest("hex");
  const peers = new PeerSet();
  const partials = /* @__PURE__ */ new Map();
  const uploadBucket = opts.maxUploadRate ? new TokenBucket(opts.maxUploadRate) : void 0;
  let uploaded = 0;
  const connections = [];
  let running;
  let failures = 0;
  let retryTimer;
  let announced = 0;
  let serversNewest = 0;
  let resolveDiscovered;
  const discovered = new Promise((resolve) => {
    resolveDiscovered = resolve;
  });
  let pathsBySha = /* @__PURE__ */ new Map();
  let peersNewest = 0;
  const streamReleases = /* @__PURE__ */ new Map();
  let held = [];
  const refreshHeld = async () => {
    const current = wc.state.current;
    const next = /* @__PURE__ */ new Map();
    if (current > 0) {
      for (const e of fileEntries((await wc.release(current)).manifest)) next.set(e.sha256, [...next.get(e.sha256) ?? [], e.path]);
    }
    pathsBySha = next;
    held = [.../* @__PURE__ */ new Set([...await listBlobs(wc.history), ...next.keys()])];
  };
  await refreshHeld();
  const serve = makeServe({ partials, stores: () => [wc.history], layout: wc.layout, pathsOf: (sha) => pathsBySha.get(sha) });
  const feed = await openFeed({ storageDir: join(wc.layout.meta, "feed"), publisherPublicKey: publisherKey });
  const transport = new SwarmTransport({
    keyPair,
    bootstrap: parseBootstrap(opts.bootstrap),
    dhtHost: opts.host ?? "127.0.0.1",
    onConnection: (stream, info) => {
      feed.replicate(stream);
      const session = new PieceSession(stream, {
        serve,
        product: product2,
        rev: wc.state.current,
        uploadBucket,
        requestTimeoutMs: 8e3,
        stallTimeoutMs: 5e3
      });
      session.on("upload", (_sha, bytes) => {
        uploaded += bytes;
      });
      session.on("protocol-error", (err) => peers.ban(info.peer, err.message));
      session.on("have", (have) => {
        if (have.product === product2 && have.rev > peersNewest) {
          peersNewest = have.rev;
          maybeUpdate();
        }
      });
      peers.add(info.peer, session);
      void session.opened().then((ok) => {
        if (ok) session.announceHave(held, { reset: true, product: product2, rev: wc.state.current });
      });
      connections.push({ key: info.peer, via: info.via });
      events.emit("peer.connected", info.peer, info.via);
    }
  });
  const addr = await transport.listen(opts.host ?? "127.0.0.1", opts.port ?? 0);
  transport.on("refused", (peer, reason) => {
    if (reason !== "duplicate connection") log(`connection ${peer ? `with peer ${peer.slice(0, 12)}\u2026 ` : ""}dropped: ${reason}`);
  });
  const hbSub = opts.nc?.subscribe(SERVER_HEARTBEATS, {
    callback: (err, msg) => {
      if (err) return;
      try {
        const hb = HeartbeatForClient.parse(msg.json());
        if (hb.swarm) peers.markServers([hb.swarm.publicKey]);
        const synced = hb.synced[product2];
        if (synced !== void 0 && synced > serversNewest) {
          serversNewest = synced;
          maybeUpdate();
        }
      } catch {
      }
    }
  });
  const pendingDials = /* @__PURE__ */ new Set();
  const dial = (list) => {
    for (const p of list) {
      if (p.publicKey === publicKey || p.publicKey && transport.connections.has(p.publicKey)) continue;
      if (!p.port) continue;
      const pending = transport.dial(p.ip, p.port, p.publicKey ? { remotePublicKey: Buffer.from(p.publicKey, "hex") } : {}).catch((err) => log(`dial ${p.ip}:${p.port} failed: ${errorMessage(err)}`)).finally(() => pendingDials.delete(pending));
      pendingDials.add(pending);
    }
  };
  const hasDht = parseBootstrap(opts.bootstrap).length > 0;
  let dhtLookup = false;
  const joinDht = async (lookup) => {
    if (!hasDht) return;
    dhtLookup = dhtLookup || lookup;
    await transport.join(topicFor(product2), { server: true, client: dhtLookup });
    if (wc.state.current > 0) await transport.join(topicFor(product2, wc.state.current), { server: true, client: dhtLookup });
  };
  const lookUpOnDht = (why) => {
    if (!hasDht) return discoveryRoundDone();
    if (!dhtLookup) log(`${why}: looking peers up on the DHT`);
    void joinDht(true).then(() => transport.flush()).then(discoveryRoundDone, (err) => {
      log(`DHT lookup failed: ${errorMessage(err)}`);
      discoveryRoundDone();
    });
  };
  const discoveryRoundDone = () => {
    void initialQuery.then(() => Promise.allSettled([...pendingDials])).then(() => peers.announced(HAVE_WAIT_MS)).then(() => resolveDiscovered());
  };
  let initialQuery = Promise.resolve();
  let tracker;
  if (opts.nc || opts.trackerHttp || opts.trackerUdp) {
    tracker = createTrackerClient({
      ...opts.nc ? { nc: opts.nc } : {},
      ...opts.trackerHttp ? { httpUrl: opts.trackerHttp } : {},
      ...opts.trackerUdp ? { udpUrl: opts.trackerUdp } : {},
      product: product2,
      rev: wc.state.current,
      peerId,
      port: addr.port,
      publicKey,
      intervalMs: opts.announceIntervalMs ?? DEFAULT_ANNOUNCE_MS
    });
    tracker.on("peers", (list) => {
      dial(list);
      if (list.filter((p) => p.publicKey !== publicKey).length === 0) lookUpOnDht("the tracker knows no other peer");
      else discoveryRoundDone();
    });
    tracker.on("status", (s) => {
      events.emit("tracker.status", s);
      if (s !== "ok") lookUpOnDht(`tracker ${s}`);
    });
    initialQuery = tracker.queryPeers(product2).then(dial, () => {
    });
  }
  await joinDht(!tracker);
  const alerts = opts.nc ? jetStreamAlertSink(opts.nc) : {
    async publish(a) {
      log(`ALERT (no NATS to deliver it): ${a.path} changed by hand and out of date (r${a.rev} \u2192 r${a.targetRev})`);
    }
  };
  const feedReleases = {
    list: (p) => {
      const revs = new Map(feed.releases(p).map((e) => [e.rev, e.manifestSha256]));
      if (p === product2) for (const [rev2, r] of streamReleases) revs.set(rev2, manifestSha256(r.manifest));
      return [...revs].sort(([a], [b]) => a - b).map(([rev2, manifestSha2562]) => ({ rev: rev2, manifestSha256: manifestSha2562 }));
    },
    get: async (p, rev2) => {
      if (p === product2 && streamReleases.has(rev2)) return streamReleases.get(rev2);
      const entry = feed.releases(p).find((e) => e.rev === rev2);
      return entry ? feed.get(entry.index) : void 0;
    }
  };
  const serverSlots = new ServerSlots(SERVER_SLOTS);
  let again;
  const announcePiece = (sha, pieceSize, index) => {
    for (const p of peers.all()) if (!p.session.closed) p.session.announcePiece(sha, pieceSize, index);
  };
  async function runUpdate(rev2) {
    const started = Date.now();
    await discovered;
    const source = swarmSource({ nc: opts.nc, product: product2, deps: { peers, partials, announcePiece, serverSlots, selfKey: publicKey, log }, feed: feedReleases, files: opts.threads ?? DEFAULT_SWARM_THREADS, log });
    const from = wc.state.current;
    events.emit("update.started", from, rev2 ?? wc.state.newestVerified);
    const result = await update(opts.dir, { source, alerts, threads: opts.threads ?? DEFAULT_SWARM_THREADS, ...rev2 ? { rev: rev2 } : {}, log: { info: (_o, m) => log(m), warn: (o, m) => log(`${m} ${JSON.stringify(o)}`) } });
    const before = wc;
    wc = await WorkingCopy.open(opts.dir);
    before.history.closeHandles();
    await refreshHeld();
    for (const p of peers.all()) if (!p.session.closed) p.session.announceHave(held, { reset: true, product: product2, rev: wc.state.current });
    tracker?.setRev(wc.state.current);
    await joinDht(false).catch(() => {
    });
    const done = {
      ...result,
      bytesFromServers: source.stats.bytesFromServers,
      bytesFromPeers: source.stats.bytesFromPeers,
      sources: source.stats,
      ms: Date.now() - started,
      uploadedBytes: uploaded
    };
    events.emit("update.done", done);
    opts.nc?.publish(actorEventSubject("daemon", peerId), JSON.stringify({ type: "update.done", product: product2, ...done }));
    return done;
  }
  function updateNow(rev2) {
    if (running) {
      again = rev2 ?? 0;
      return running;
    }
    running = runUpdate(rev2);
    running.then(() => {
      failures = 0;
    }, () => {
      failures++;
    }).finally(() => {
      running = void 0;
      if (again !== void 0) {
        const next = again;
        again = void 0;
        void updateNow(next || void 0).catch(() => {
        });
      } else if (failures > 0) {
        retryTimer = setTimeout(maybeUpdate, Math.min(3e4, 500 * 2 ** Math.min(failures, 6)));
      } else {
        maybeUpdate();
      }
    });
    running.catch((err) => events.emit("update.failed", isUpswarmError(err) ? err : new UpswarmError("UPSWARM_E_IO", errorMessage(err), { cause: err })));
    return running;
  }
  function maybeUpdate() {
    if (!opts.auto || running || announced <= wc.state.current) return;
    const held2 = serversNewest >= announced || peersNewest >= announced || feed.releases(product2).some((e) => e.rev >= announced);
    if (opts.nc && !held2) return;
    void updateNow().catch((err) => log(`update failed: ${errorMessage(err)}`));
  }
  const onNewRelease = (rev2) => {
    if (rev2 <= Math.max(wc.state.current, announced)) return;
    announced = rev2;
    events.emit("release.available", rev2);
    maybeUpdate();
  };
  const discoveryTimer = setTimeout(resolveDiscovered, DISCOVERY_WAIT_MS);
  void discovered.then(() => clearTimeout(discoveryTimer));
  if (!tracker) void transport.flush().then(discoveryRoundDone, discoveryRoundDone);
  let follow;
  if (opts.nc) {
    follow = await followReleases(opts.nc, product2, (bytes, seq) => {
      try {
        const release = decodeRelease(bytes, publisherKey, `release stream seq ${seq}`);
        streamReleases.set(release.manifest.rev, release);
        onNewRelease(release.manifest.rev);
      } catch (err) {
        log(`ignored release stream message ${seq}: ${errorMessage(err)}`);
      }
    });
  }
  feed.on("release", (entry) => onNewRelease(entry.rev));
  const daemon = Object.assign(events, {
    port: addr.port,
    publicKey,
    peerId,
    peers,
    rev: () => wc.state.current,
    uploaded: () => uploaded,
    connections: () => [...connections],
    updateNow,
    async close() {
      clearTimeout(retryTimer);
      await follow?.stop();
      hbSub?.unsubscribe();
      await running?.catch(() => {
      });
      await tracker?.stop().catch(() => {
      });
      await transport.close();
      await feed.close();
      wc.history.closeHandles();
    }
  });
  return daemon;
}
export {
  startDaemon
};
