import {
  HeartbeatForPool,
  heartbeatProblems
} from "./chunk-T5RVPTZM.js";
import {
  MAX_RANGE
} from "./chunk-WXI5373J.js";
import "./chunk-2C5K53AI.js";
import "./chunk-IAH3INNS.js";
import "./chunk-2A6R4MPD.js";
import "./chunk-OI7SFTYE.js";
import "./chunk-4DN6M2O5.js";
import {
  startSftpGateway
} from "./chunk-HJYKNNST.js";
import {
  PROXY_SERVICE,
  SERVER_HEARTBEATS,
  proxySubject,
  repoSubject
} from "./chunk-ZEBQZC7Y.js";
import {
  SignedReleaseSchema,
  UUID_RE
} from "./chunk-27MN4SFY.js";
import "./chunk-6PH2J2O4.js";
import "./chunk-4I46HHR5.js";
import {
  endpoint,
  request,
  startService
} from "./chunk-LL5LKXZC.js";
import {
  UpswarmError,
  isUpswarmError
} from "./chunk-RP33VEIV.js";

// actors/proxy/index.ts
import { randomUUID } from "node:crypto";
import { z } from "zod";

// infra/http/gateway.ts
import { createServer } from "node:http";
var FILES_RE = /^\/v1\/products\/([^/]+)\/revs\/([^/]+)\/files\/(.+)$/;
var DAV_RE = /^\/dav\/([^/]+)\/([^/]+)(\/.*)?$/;
var HttpError = class extends Error {
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
  status;
  headers;
};
async function startGateway(opts) {
  const server = createServer((req, res) => {
    handle(opts.backend, req, res).catch((err) => {
      const status = err instanceof HttpError ? err.status : isUpswarmError(err) && /NOT_FOUND|UNKNOWN_REVISION/.test(err.code) ? 404 : isUpswarmError(err) && err.code === "UPSWARM_E_NO_SERVER" ? 503 : 500;
      if (status === 500) opts.log?.(`gateway error on ${req.method} ${req.url}: ${err.message}`);
      if (res.headersSent) {
        res.destroy(err);
        return;
      }
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...err instanceof HttpError ? err.headers : {} });
      res.end(`${err.message}
`);
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  return {
    url: `http://${opts.host}:${addr.port}`,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    })
  };
}
async function handle(backend, req, res) {
  const url = new URL(req.url ?? "/", "http://gateway");
  const path = url.pathname;
  const files = FILES_RE.exec(path);
  const dav = DAV_RE.exec(path);
  if (req.method === "OPTIONS") {
    res.writeHead(200, { DAV: "1", Allow: "OPTIONS, GET, HEAD, PROPFIND", "content-length": "0" });
    res.end();
    return;
  }
  if (!files && !dav) throw new HttpError(404, `no such resource: ${path} (try /v1/products/UUID/revs/REV/files/PATH or /dav/UUID/REV/)`);
  const [, rawProduct, rawRev, rawPath] = files ?? dav;
  const product = decodeURIComponent(rawProduct).toLowerCase();
  if (!UUID_RE.test(product)) throw new HttpError(404, `not a product UUID: ${rawProduct}`);
  const rev = rawRev === "latest" ? "latest" : Number(rawRev);
  if (rev !== "latest" && (!Number.isInteger(rev) || rev < 1)) throw new HttpError(404, `not a revision: ${rawRev}`);
  const release = await backend.release(product, rev);
  const relPath = decodeURIComponent((rawPath ?? "").replace(/^\/+/, "").replace(/\/+$/, ""));
  if (req.method === "PROPFIND") {
    if (!dav) throw new HttpError(405, "PROPFIND is served under /dav/UUID/REV/", { Allow: "GET, HEAD, OPTIONS" });
    return propfind(release, relPath, `/dav/${product}/${rawRev}`, String(req.headers.depth ?? "1"), res);
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    throw new HttpError(405, `${req.method} is not allowed: this view is read-only`, { Allow: "OPTIONS, GET, HEAD, PROPFIND" });
  }
  const entry = release.manifest.entries.find((e) => e.path === relPath);
  if (!entry) throw new HttpError(404, `${relPath || "/"} is not in revision ${release.manifest.rev} of ${product}`);
  if (entry.kind !== "file") throw new HttpError(404, `${relPath} is a ${entry.kind} in revision ${release.manifest.rev}, not a file`);
  await sendFile(backend, release, entry, req, res);
}
async function sendFile(backend, release, entry, req, res) {
  const etag = `"${entry.sha256}"`;
  const common = {
    "accept-ranges": "bytes",
    etag,
    "content-type": "application/octet-stream",
    "last-modified": new Date(release.manifest.createdAt).toUTCString()
  };
  if (req.headers["if-none-match"] === etag) {
    res.writeHead(304, common);
    res.end();
    return;
  }
  let start = 0;
  let end = entry.size - 1;
  let status = 200;
  const range = req.headers.range;
  const ifRange = req.headers["if-range"];
  if (range && (!ifRange || ifRange === etag)) {
    const parsed = parseRange(range, entry.size);
    if (parsed === "unsatisfiable") {
      throw new HttpError(416, `range ${range} is outside ${entry.path} (${entry.size} bytes)`, { "content-range": `bytes */${entry.size}` });
    }
    if (parsed) {
      ;
      [start, end] = parsed;
      status = 206;
    }
  }
  const length = entry.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, {
    ...common,
    "content-length": String(length),
    ...status === 206 ? { "content-range": `bytes ${start}-${end}/${entry.size}` } : {}
  });
  if (req.method === "HEAD" || length === 0) {
    res.end();
    return;
  }
  for await (const chunk of backend.read(release.manifest.product, release.manifest.rev, entry.sha256, start, end)) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
    if (res.destroyed) return;
  }
  res.end();
}
function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || m[1] === "" && m[2] === "") return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || m[2] !== "" && Number(m[2]) < start) return "unsatisfiable";
  return [start, end];
}
function propfind(release, relPath, base, depth, res) {
  if (depth !== "0" && depth !== "1") {
    throw new HttpError(403, "PROPFIND with Depth: infinity is not supported; use Depth 0 or 1");
  }
  const entries = release.manifest.entries;
  const self = relPath === "" ? { path: "", kind: "dir", mode: 493 } : entries.find((e) => e.path === relPath) ?? missing(relPath);
  const children = depth === "1" && self.kind === "dir" ? entries.filter((e) => {
    if (relPath === "") return !e.path.includes("/");
    return e.path.startsWith(`${relPath}/`) && !e.path.slice(relPath.length + 1).includes("/");
  }) : [];
  const modified = new Date(release.manifest.createdAt).toUTCString();
  const responses = [self, ...children].map((e) => {
    const href = `${base}/${e.path.split("/").map(encodeURIComponent).join("/")}${e.kind === "dir" && e.path !== "" ? "/" : ""}`;
    const props = e.kind === "file" ? `<D:resourcetype/><D:getcontentlength>${e.size}</D:getcontentlength><D:getetag>"${e.sha256}"</D:getetag>` : e.kind === "dir" ? "<D:resourcetype><D:collection/></D:resourcetype>" : "<D:resourcetype/>";
    const name = e.path.split("/").pop() ?? "";
    return `<D:response><D:href>${xml(href.replace(/\/\/$/, "/"))}</D:href><D:propstat><D:prop><D:displayname>${xml(name)}</D:displayname>${props}<D:getlastmodified>${modified}</D:getlastmodified></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`;
  });
  const body = `<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:">${responses.join("")}</D:multistatus>
`;
  res.writeHead(207, { "content-type": "application/xml; charset=utf-8", "content-length": String(Buffer.byteLength(body)) });
  res.end(body);
}
function missing(path) {
  throw new HttpError(404, `${path} is not in this revision`);
}
function xml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

// actors/proxy/pool.ts
import { createActor } from "xstate";

// machines/pool-member.machine.ts
import { assign, setup } from "xstate";
var HEARTBEAT_INTERVAL_MS = 1e3;
var poolMemberMachine = setup({
  types: {
    context: {},
    events: {},
    input: {}
  },
  delays: {
    // Two missed heartbeats make a member suspect; five make it down.
    suspectAfter: 2.5 * HEARTBEAT_INTERVAL_MS,
    downAfter: 2.5 * HEARTBEAT_INTERVAL_MS
  },
  actions: {
    record: assign(({ event }) => event.type === "heartbeat" ? { status: event.status, lastSeen: event.at, missed: 0 } : {}),
    countMiss: assign({ missed: ({ context }) => context.missed + 1 })
  }
}).createMachine({
  id: "poolMember",
  context: ({ input }) => ({ id: input.id, status: input.status, lastSeen: input.at, missed: 0 }),
  initial: "joining",
  states: {
    joining: {
      // The first heartbeat created the member; it is healthy once the next one confirms it.
      on: { heartbeat: { target: "healthy", actions: "record" } },
      after: { suspectAfter: { target: "down", actions: "countMiss" } }
    },
    healthy: {
      on: {
        heartbeat: { target: "healthy", reenter: true, actions: "record" },
        "request.failed": "suspect"
      },
      after: { suspectAfter: { target: "suspect", actions: "countMiss" } }
    },
    suspect: {
      on: { heartbeat: { target: "healthy", actions: "record" } },
      after: { downAfter: { target: "down", actions: "countMiss" } }
    },
    down: {
      on: { heartbeat: { target: "joining", actions: "record" } }
    }
  }
});

// actors/proxy/smooth-wrr.ts
var SmoothWeightedRoundRobin = class {
  current = /* @__PURE__ */ new Map();
  /** Picks one of `members` (id → weight > 0); undefined when none is eligible. */
  pick(members) {
    let total = 0;
    let best;
    let bestWeight = -Infinity;
    for (const m of members) {
      if (m.weight <= 0) continue;
      const cw = (this.current.get(m.id) ?? 0) + m.weight;
      this.current.set(m.id, cw);
      total += m.weight;
      if (cw > bestWeight) {
        bestWeight = cw;
        best = m.id;
      }
    }
    if (best !== void 0) this.current.set(best, bestWeight - total);
    return best;
  }
  forget(id) {
    this.current.delete(id);
  }
};

// actors/proxy/pool.ts
var Pool = class {
  members = /* @__PURE__ */ new Map();
  assigned = /* @__PURE__ */ new Map();
  wrr = new SmoothWeightedRoundRobin();
  heartbeat(id, status) {
    const at = Date.now();
    const member = this.members.get(id);
    if (member) {
      member.send({ type: "heartbeat", status, at });
      return;
    }
    const actor = createActor(poolMemberMachine, { input: { id, status, at } });
    actor.start();
    actor.send({ type: "heartbeat", status, at });
    this.members.set(id, actor);
  }
  member(id) {
    return this.members.get(id);
  }
  failed(id, reason) {
    this.members.get(id)?.send({ type: "request.failed", reason });
  }
  /** Ring order: members sorted by server id. */
  ring() {
    return [...this.members.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([, m]) => m);
  }
  /** The newest revision of `product` that a healthy member holds. */
  newest(product) {
    let best = 0;
    for (const m of this.ring()) {
      const snap = m.getSnapshot();
      if (snap.matches("healthy")) best = Math.max(best, snap.context.status.synced[product] ?? 0);
    }
    return best;
  }
  /** Every product a healthy member holds, with the newest revision held. */
  products() {
    const out = {};
    for (const m of this.ring()) {
      const snap = m.getSnapshot();
      if (!snap.matches("healthy")) continue;
      for (const [product, rev] of Object.entries(snap.context.status.synced)) out[product] = Math.max(out[product] ?? 0, rev);
    }
    return out;
  }
  /**
   * Assigns one healthy member holding revision `rev` of `product` (or, without rev, one that
   * is not behind the newest), by smooth weighted round-robin. Excluded ids are skipped.
   */
  assign(product, rev, exclude = /* @__PURE__ */ new Set()) {
    const need = product === void 0 ? 0 : rev ?? this.newest(product);
    const eligible = this.ring().map((m) => m.getSnapshot()).filter((s) => s.matches("healthy") && !exclude.has(s.context.id)).filter((s) => product === void 0 || (s.context.status.synced[product] ?? 0) >= need).map((s) => ({ id: s.context.id, weight: s.context.status.weight }));
    const id = this.wrr.pick(eligible);
    if (id !== void 0) this.assigned.set(id, (this.assigned.get(id) ?? 0) + 1);
    return id;
  }
  view() {
    return this.ring().map((m) => {
      const { value, context } = m.getSnapshot();
      return {
        id: context.id,
        state: String(value),
        healthy: value === "healthy",
        weight: context.status.weight,
        synced: context.status.synced,
        requests: context.status.requests,
        bytesServed: context.status.bytesServed,
        inflight: context.status.inflight,
        lastSeen: new Date(context.lastSeen).toISOString(),
        assigned: this.assigned.get(context.id) ?? 0
      };
    });
  }
  stop() {
    for (const m of this.members.values()) m.stop();
  }
};

// actors/proxy/gateway-backend.ts
var CHUNK = 1024 * 1024;
var PIPELINE = 4;
var CACHE_LIMIT = 256;
function natsGatewayBackend(nc, pool, forward) {
  const cache = /* @__PURE__ */ new Map();
  return {
    products: () => pool.products(),
    async release(product, rev) {
      const wanted = rev === "latest" ? pool.newest(product) : rev;
      if (wanted === 0) throw new UpswarmError("UPSWARM_E_NOT_FOUND", `no healthy repository server holds product ${product}`);
      const key = `${product}/${wanted}`;
      const hit = cache.get(key);
      if (hit) return hit;
      const bytes = await forward("manifest", product, wanted, { product, rev: wanted });
      const release = SignedReleaseSchema.parse(JSON.parse(Buffer.from(bytes).toString("utf8")));
      if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value);
      cache.set(key, release);
      return release;
    },
    async *read(product, rev, sha256, start, end) {
      const chunks = [];
      for (let off = start; off <= end; off += CHUNK) chunks.push({ offset: off, length: Math.min(CHUNK, end - off + 1) });
      const failed = /* @__PURE__ */ new Set();
      const fetchChunk = async (c) => {
        for (; ; ) {
          const server = pool.assign(product, rev, failed);
          if (!server) throw new UpswarmError("UPSWARM_E_NO_SERVER", `no healthy repository server can send blob ${sha256}`);
          try {
            return await request(nc, repoSubject(server, "range"), { sha256, offset: c.offset, length: c.length }, 1e4);
          } catch (err) {
            if (isUpswarmError(err) && err.code === "UPSWARM_E_BAD_REQUEST") throw err;
            failed.add(server);
            pool.failed(server, err.message);
          }
        }
      };
      const inflight = [];
      let next = 0;
      while (next < chunks.length && inflight.length < PIPELINE) inflight.push(fetchChunk(chunks[next++]));
      while (inflight.length > 0) {
        const data = await inflight.shift();
        if (next < chunks.length) inflight.push(fetchChunk(chunks[next++]));
        yield data;
      }
    }
  };
}

// actors/proxy/index.ts
var Product = z.string().regex(UUID_RE);
var Rev = z.number().int().min(1);
var FORWARD_ATTEMPTS = 3;
async function startProxy(opts) {
  const { nc } = opts;
  const id = opts.id ?? `proxy-${randomUUID().slice(0, 8)}`;
  const log = opts.log ?? (() => {
  });
  const pool = new Pool();
  const sub = nc.subscribe(SERVER_HEARTBEATS, {
    callback: (err, msg) => {
      if (err) return;
      let hb;
      try {
        hb = HeartbeatForPool.parse(msg.json());
      } catch (e) {
        log(`ignored a malformed heartbeat on ${msg.subject}: ${heartbeatProblems(e)}`);
        return;
      }
      pool.heartbeat(hb.id, { weight: hb.weight, synced: hb.synced, requests: hb.requests, bytesServed: hb.bytesServed, inflight: hb.inflight });
    }
  });
  async function forward(op, product, rev, payload) {
    const tried = /* @__PURE__ */ new Set();
    let lastErr;
    for (let attempt = 0; attempt < FORWARD_ATTEMPTS; attempt++) {
      const server = pool.assign(product, rev, tried);
      if (!server) break;
      tried.add(server);
      try {
        return await request(nc, repoSubject(server, op), payload, 5e3);
      } catch (err) {
        lastErr = err;
        if (isUpswarmError(err) && !["UPSWARM_E_NO_SERVER", "UPSWARM_E_TIMEOUT"].includes(err.code)) throw err;
        pool.failed(server, err.message);
      }
    }
    if (lastErr) throw lastErr;
    const newest = pool.newest(product);
    if (newest > 0 && rev !== void 0 && rev > newest) {
      throw new UpswarmError("UPSWARM_E_UNKNOWN_REVISION", `revision ${rev} of ${product} does not exist (the newest is ${newest})`);
    }
    throw new UpswarmError(
      "UPSWARM_E_NO_SERVER",
      rev === void 0 ? `no healthy repository server holds ${product}; check \`upswarm stats\`` : `no healthy repository server holds revision ${rev} of ${product}; check \`upswarm stats\``
    );
  }
  const service = await startService(nc, {
    name: PROXY_SERVICE,
    version: "1.0.0",
    description: "upswarm server proxy (weighted round-robin director)",
    metadata: { id },
    queue: PROXY_SERVICE,
    endpoints: {
      revs: endpoint(
        proxySubject("revs"),
        z.object({ product: Product }),
        ({ product }) => forward("revs", product, void 0, { product })
      ),
      manifest: endpoint(
        proxySubject("manifest"),
        z.object({ product: Product, rev: Rev }),
        ({ product, rev }) => forward("manifest", product, rev, { product, rev })
      ),
      sha1s: endpoint(
        proxySubject("sha1s"),
        z.object({ product: Product, rev: Rev }),
        ({ product, rev }) => forward("sha1s", product, rev, { product, rev })
      ),
      assign: endpoint(
        proxySubject("assign"),
        z.object({ product: Product, rev: Rev.optional(), exclude: z.array(z.string().max(64)).max(64).optional() }),
        async ({ product, rev, exclude }) => {
          const server = pool.assign(product, rev, new Set(exclude ?? []));
          if (!server) throw new UpswarmError("UPSWARM_E_NO_SERVER", `no healthy repository server holds ${rev ? `revision ${rev} of ` : ""}${product}`);
          return { server, rangeSubject: repoSubject(server, "range"), maxRange: MAX_RANGE };
        }
      ),
      stats: endpoint(proxySubject("stats"), z.object({}).passthrough(), async () => ({ proxy: id, servers: pool.view() }))
    }
  });
  const backend = natsGatewayBackend(nc, pool, forward);
  let gateway;
  let sftp;
  const close = async () => {
    await gateway?.close();
    await sftp?.close();
    sub.unsubscribe();
    await service.stop().catch(() => {
    });
    pool.stop();
  };
  try {
    if (opts.httpPort !== void 0) {
      gateway = await startGateway({ port: opts.httpPort, host: opts.httpHost ?? "127.0.0.1", backend, log });
    }
    if (opts.sshPort !== void 0) {
      if (!opts.sshHostKey) throw new UpswarmError("UPSWARM_E_CONFIG", "the SSH door needs a host key (--ssh-host-key FILE; created when missing)");
      sftp = await startSftpGateway({
        port: opts.sshPort,
        host: opts.httpHost ?? "127.0.0.1",
        backend,
        hostKey: opts.sshHostKey,
        log,
        ...opts.sshAuthorizedKeys !== void 0 ? { authorizedKeys: opts.sshAuthorizedKeys } : {}
      });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { id, pool, httpUrl: gateway?.url, sshUrl: sftp?.url, close };
}
export {
  startProxy
};
