import {
  pieceFailure
} from "./chunk-PEHDTYHQ.js";
import {
  proxySubject
} from "./chunk-M4ACGP5U.js";
import {
  encodeRelease
} from "./chunk-W5VBZNBS.js";
import {
  PIECE_SIZE,
  sha256Hex
} from "./chunk-TI5YD5TO.js";
import {
  request,
  requestJson
} from "./chunk-UNO7TY7C.js";
import {
  UpswarmError,
  errorMessage,
  isUpswarmError
} from "./chunk-5DMJPWEV.js";

// infra/repo-client.ts
import { open, rm } from "node:fs/promises";
var MAX_SERVER_SWITCHES = 5;
var RepoClient = class {
  constructor(nc, timeoutMs = 1e4) {
    this.nc = nc;
    this.timeoutMs = timeoutMs;
  }
  nc;
  timeoutMs;
  /** R-WATCH: every revision of the product with its manifest hash, from one pool server. */
  async revisions(product) {
    return requestJson(this.nc, proxySubject("revs"), { product }, this.timeoutMs);
  }
  async release(product, rev) {
    return request(this.nc, proxySubject("manifest"), { product, rev }, this.timeoutMs);
  }
  async sha1s(product, rev) {
    return requestJson(this.nc, proxySubject("sha1s"), { product, rev }, this.timeoutMs);
  }
  /** A range reader bound to one assigned server, switching server when one fails. */
  rangeReader(product) {
    return new RangeReader(this.nc, product, this.timeoutMs);
  }
  /**
   * Downloads one blob into `into` with `threads` concurrent range requests to the assigned
   * server (R-ACCEL-1); each piece is checked against the manifest's piece hash on arrival.
   */
  async fetchBlob(product, entry, into, opts) {
    if (await into.has(entry.sha256)) return { bytesFromServers: 0, servers: [] };
    const pieceSize = opts.pieceSize ?? PIECE_SIZE;
    const count = Math.max(1, Math.ceil(entry.size / pieceSize));
    const reader = this.rangeReader(product);
    const tmp = await into.stagingPath();
    const fh = await open(tmp, "w");
    let received = 0;
    try {
      const queue = Array.from({ length: count }, (_, i) => i);
      const worker = async () => {
        for (let i = queue.shift(); i !== void 0; i = queue.shift()) {
          opts.signal?.throwIfAborted();
          const offset = i * pieceSize;
          const length = Math.min(pieceSize, entry.size - offset);
          if (length === 0) continue;
          const data = await reader.readPiece(entry.sha256, offset, length, pieceHashOf(entry, i));
          received += data.length;
          await fh.write(data, 0, data.length, offset);
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.threads, count)) }, worker));
      await fh.close();
      await into.commitFile(entry.sha256, tmp, `server ${reader.servers.join(", ")}`, entry.size, entry.sha1);
    } catch (err) {
      await fh.close().catch(() => {
      });
      await rm(tmp, { force: true });
      throw err;
    }
    return { bytesFromServers: received, servers: reader.servers };
  }
};
function pieceHashOf(entry, i) {
  return entry.pieces ? entry.pieces[i] : entry.sha256;
}
var RangeReader = class {
  constructor(nc, product, timeoutMs) {
    this.nc = nc;
    this.product = product;
    this.timeoutMs = timeoutMs;
  }
  nc;
  product;
  timeoutMs;
  assignment;
  excluded = [];
  servers = [];
  /** Pieces a server sent that did not verify. */
  badPieces = 0;
  current() {
    this.assignment ??= requestJson(this.nc, proxySubject("assign"), { product: this.product, exclude: this.excluded }, this.timeoutMs).then((a) => {
      this.servers.push(a.server);
      return a;
    });
    const pending = this.assignment;
    pending.catch(() => {
      if (this.assignment === pending) this.assignment = void 0;
    });
    return pending;
  }
  async readPiece(sha256, offset, length, expected) {
    let lastErr;
    for (let attempt = 0; attempt <= MAX_SERVER_SWITCHES; attempt++) {
      const pending = this.current();
      const a = await pending;
      try {
        const data = Buffer.from(await request(this.nc, a.rangeSubject, { sha256, offset, length }, this.timeoutMs));
        if (data.length === length && sha256Hex(data) === expected) return data;
        this.badPieces++;
        lastErr = new UpswarmError("UPSWARM_E_HASH_MISMATCH", `server ${a.server} sent a bad piece at ${offset} of blob ${sha256}`);
      } catch (err) {
        if (isUpswarmError(err) && err.code === "UPSWARM_E_BAD_REQUEST") throw err;
        lastErr = err;
      }
      if (this.assignment === pending) {
        this.excluded.push(a.server);
        this.assignment = void 0;
      }
    }
    throw lastErr;
  }
};

// actors/share-daemon/multi-source.ts
import { open as open2, rm as rm2 } from "node:fs/promises";

// actors/share-daemon/peers.ts
import { EventEmitter } from "node:events";
function movingAverage(avg, sample) {
  return avg === 0 ? sample : 0.8 * avg + 0.2 * sample;
}
var PeerSet = class extends EventEmitter {
  constructor() {
    super();
    this.setMaxListeners(0);
  }
  /** EWMA of how long a peer takes to deliver a piece (ms): what "late" means in the end-game. */
  pieceMsAvg = 0;
  /** Records one peer piece's time from request to data. */
  pieceServed(ms) {
    this.pieceMsAvg = movingAverage(this.pieceMsAvg, ms);
  }
  /**
   * A piece request to a peer older than this is late: the end-game may ask a second peer for
   * the same piece. Three typical piece times, at least 300 ms (and 1 s before any is known).
   */
  lateAfterMs() {
    return this.pieceMsAvg === 0 ? 1e3 : Math.max(300, 3 * this.pieceMsAvg);
  }
  peers = /* @__PURE__ */ new Map();
  banned = /* @__PURE__ */ new Map();
  serverKeys = /* @__PURE__ */ new Set();
  add(key, session) {
    const announced = new Promise((resolve) => {
      session.once("have", () => resolve());
      session.once("close", () => resolve());
    });
    const entry = { key, session, server: this.serverKeys.has(key), inflight: 0, bytesDown: 0, busyUntil: 0, announced, lastPieceAt: 0 };
    session.on("have-piece", () => {
      entry.lastPieceAt = Date.now();
    });
    session.on("have", (have) => {
      if (have.product === "") entry.server = true;
    });
    this.peers.set(key, entry);
    const changed = () => {
      this.emit("changed");
    };
    session.on("have", changed);
    session.on("have-piece", changed);
    session.on("unchoke", changed);
    session.once("close", () => {
      if (this.peers.get(key) === entry) this.peers.delete(key);
      changed();
    });
    changed();
  }
  /** Marks keys of repository servers (from their heartbeats). */
  markServers(keys) {
    for (const k of keys) {
      this.serverKeys.add(k);
      const p = this.peers.get(k);
      if (p) p.server = true;
    }
  }
  /** A request slot on `peer` is taken / given back; a freed slot may let a waiting download go on. */
  take(peer) {
    peer.inflight++;
  }
  release(peer) {
    peer.inflight--;
    this.emit("changed");
  }
  /** The peer answered 'busy': leave it alone for `ms`, then tell the waiting downloads. */
  backOff(peer, ms) {
    peer.busyUntil = Date.now() + ms;
    setTimeout(() => this.emit("changed"), ms).unref();
  }
  ban(key, reason) {
    this.banned.set(key, reason);
    this.peers.get(key)?.session.close();
    this.peers.delete(key);
    this.emit("changed");
  }
  isBanned(key) {
    return this.banned.has(key);
  }
  bannedPeers() {
    return [...this.banned.entries()].map(([key, reason]) => ({ key, reason }));
  }
  /** Open, unchoked, unbanned peers holding the blob (or this piece of it). */
  holders(sha256, pieceSize, index) {
    const out = [];
    for (const p of this.peers.values()) {
      const s = p.session;
      if (s.closed || s.choked) continue;
      if (s.peerHas(sha256) || s.peerHasPiece(sha256, pieceSize, index)) out.push(p);
    }
    return out;
  }
  all() {
    return [...this.peers.values()];
  }
  get size() {
    return this.peers.size;
  }
  /** Resolves once every connected peer has told what it holds, or after `ms`. */
  async announced(ms) {
    let timer;
    await Promise.race([
      Promise.all(this.all().map((p) => p.announced)),
      new Promise((resolve) => {
        timer = setTimeout(resolve, ms);
      })
    ]);
    clearTimeout(timer);
  }
  /** Resolves `true` as soon as `predicate` holds (checked now and at every change), `false` after `ms`. */
  waitFor(predicate, ms) {
    if (predicate(this.all())) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (ok) => {
        clearTimeout(timer);
        this.off("changed", check);
        resolve(ok);
      };
      const check = () => {
        if (predicate(this.all())) finish(true);
      };
      const timer = setTimeout(() => finish(false), ms);
      this.on("changed", check);
    });
  }
  /** Resolves at the next change (a peer joined, left, announced, unchoked) or after `ms`. */
  nextChange(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off("changed", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.on("changed", done);
    });
  }
};

// actors/share-daemon/multi-source.ts
var PEER_SLOTS = 4;
var PATIENCE_MS = 500;
var PEER_REQUEST_TIMEOUT_MS = 8e3;
var MAX_BACKUP_TURNS = 4;
var BUSY_BACKOFF_MS = 250;
var NO_SOURCE_TIMEOUT_MS = 6e4;
function emptyStats() {
  return {
    bytesFromServers: 0,
    bytesFromPeers: 0,
    piecesFromServers: 0,
    piecesFromPeers: 0,
    badPieces: 0,
    serverReasons: { "no-peer-had-piece": 0, "peer-failed": 0, "bad-piece-from-peer": 0 }
  };
}
function addStats(into, s) {
  into.bytesFromServers += s.bytesFromServers;
  into.bytesFromPeers += s.bytesFromPeers;
  into.piecesFromServers += s.piecesFromServers;
  into.piecesFromPeers += s.piecesFromPeers;
  into.badPieces += s.badPieces;
  for (const k of Object.keys(s.serverReasons)) into.serverReasons[k] += s.serverReasons[k];
}
var ServerSlots = class {
  constructor(limit) {
    this.limit = limit;
  }
  limit;
  inUse = 0;
  /** When a piece of this client's own stripe last wanted a server (started, or waited for a slot). */
  stripeWantedAt = 0;
  /** Moving average of how long a server piece takes to arrive, ms (0: none yet). */
  serverPieceMs = 0;
  /** A server piece arrived after `ms`. */
  served(ms) {
    this.serverPieceMs = movingAverage(this.serverPieceMs, ms);
  }
  /**
   * How long a piece outside this client's stripe waits for a peer, once the stripe wants no
   * server: at least PATIENCE_MS, and as long as a server piece takes now — while the servers
   * are slow, so are the other stripes' owners, and asking the servers too only duplicates.
   */
  patienceMs() {
    return Math.max(PATIENCE_MS, this.serverPieceMs);
  }
  get free() {
    return this.inUse < this.limit;
  }
};
function stripeScore(key, sha256, index) {
  return parseInt(sha256Hex(`${key}:${sha256}:${index}`).slice(0, 12), 16);
}
var outranks = (a, b) => a.score > b.score || a.score === b.score && a.key > b.key;
function stripeOwner(sha256, index, keys) {
  let best;
  for (const key of keys) {
    const c = { key, score: stripeScore(key, sha256, index) };
    if (!best || outranks(c, best)) best = c;
  }
  return best?.key;
}
function stripeRank(sha256, index, keys, self) {
  const mine = { key: self, score: stripeScore(self, sha256, index) };
  let rank = 0;
  for (const key of keys) if (key !== self && outranks({ key, score: stripeScore(key, sha256, index) }, mine)) rank++;
  return rank;
}
function swarmKeysOf(selfKey, peers) {
  return [selfKey, ...peers.all().filter((p) => !p.server).map((p) => p.key)].sort();
}
async function fetchBlobMultiSource(entry, into, deps, signal) {
  const stats = emptyStats();
  if (await into.has(entry.sha256)) return stats;
  const { pieceSize, peers } = deps;
  const count = Math.max(1, Math.ceil(entry.size / pieceSize));
  const verified = new Uint8Array(count);
  let remaining = count;
  const tmp = await into.stagingPath();
  const fh = await open2(tmp, "w+");
  const partial = { sha256: entry.sha256, pieceSize, size: entry.size, file: tmp, verified };
  deps.partials.set(entry.sha256, partial);
  const inflight = /* @__PURE__ */ new Set();
  const pendingServerReason = /* @__PURE__ */ new Map();
  const swarmKeys = swarmKeysOf(deps.selfKey, peers);
  const ranks = /* @__PURE__ */ new Map();
  const rankOf = (i) => {
    let r = ranks.get(i);
    if (r === void 0) ranks.set(i, r = stripeRank(entry.sha256, i, swarmKeys, deps.selfKey));
    return r;
  };
  const mine = (i) => rankOf(i) === 0;
  const owners = /* @__PURE__ */ new Map();
  const ownerOf = (i) => {
    if (!owners.has(i)) {
      const key = stripeOwner(entry.sha256, i, swarmKeys);
      owners.set(i, key === deps.selfKey ? void 0 : peers.all().find((p) => p.key === key));
    }
    return owners.get(i);
  };
  const ownerBusy = (i, now) => {
    const owner = ownerOf(i);
    return owner !== void 0 && !owner.session.closed && now - owner.lastPieceAt < slots.patienceMs();
  };
  const lengthOf = (i) => Math.min(pieceSize, entry.size - i * pieceSize);
  const order = Array.from({ length: count }, (_, i) => i).sort(() => Math.random() - 0.5);
  const slots = deps.serverSlots;
  const patienceEnds = (i) => Math.max(deps.startedAt, slots.stripeWantedAt) + slots.patienceMs() * (i === void 0 ? 1 : Math.min(MAX_BACKUP_TURNS, Math.max(1, rankOf(i))));
  const readyAt = (p, now) => p.inflight < PEER_SLOTS && p.busyUntil <= now;
  const shunned = /* @__PURE__ */ new Set();
  const usable = (i) => peers.holders(entry.sha256, pieceSize, i).filter((p) => !shunned.has(p.key));
  let waitingSince = Date.now();
  const accept = async (i, data, source) => {
    if (verified[i]) return true;
    if (data.length !== lengthOf(i) || sha256Hex(data) !== pieceHashOf(entry, i)) return false;
    await fh.write(data, 0, data.length, i * pieceSize);
    verified[i] = 1;
    remaining--;
    if (source === "server" || source.server) {
      stats.bytesFromServers += data.length;
      stats.piecesFromServers++;
      stats.serverReasons[pendingServerReason.get(i) ?? "no-peer-had-piece"]++;
    } else {
      stats.bytesFromPeers += data.length;
      stats.piecesFromPeers++;
      source.bytesDown += data.length;
    }
    deps.announcePiece(entry.sha256, pieceSize, i);
    for (const f of inflight) if (f.piece === i) f.controller.abort();
    return true;
  };
  const startPeer = (i, peer, asServer = false) => {
    const controller = new AbortController();
    peers.take(peer);
    if (asServer) slots.inUse++;
    const asked = Date.now();
    const f = {
      piece: i,
      source: peer,
      controller,
      asked,
      promise: peer.session.request(entry.sha256, i * pieceSize, lengthOf(i), { signal: controller.signal, timeoutMs: PEER_REQUEST_TIMEOUT_MS }).then(async (data) => {
        if (asServer) slots.served(Date.now() - asked);
        else peers.pieceServed(Date.now() - asked);
        if (!await accept(i, data, peer)) {
          stats.badPieces++;
          pendingServerReason.set(i, "bad-piece-from-peer");
          deps.log?.(`peer ${peer.key.slice(0, 12)} sent a bad piece ${i} of ${entry.path}: banned for this run`);
          peers.ban(peer.key, `bad piece ${i} of blob ${entry.sha256}`);
        }
      }, (err) => {
        const why = pieceFailure(err);
        if (why === "aborted") return;
        if (why === "busy") return peers.backOff(peer, BUSY_BACKOFF_MS);
        shunned.add(peer.key);
        if (!verified[i]) pendingServerReason.set(i, "peer-failed");
        if (why === "stalled" || why === "timeout") deps.log?.(`peer ${peer.key.slice(0, 12)} ${why} on ${entry.path}; trying elsewhere`);
      }).finally(() => {
        if (asServer) slots.inUse--;
        inflight.delete(f);
        peers.release(peer);
      })
    };
    inflight.add(f);
  };
  const startServer = (i) => {
    const controller = new AbortController();
    slots.inUse++;
    const asked = Date.now();
    const f = {
      piece: i,
      source: "server",
      controller,
      asked,
      promise: deps.server.readPiece(entry.sha256, i * pieceSize, lengthOf(i), pieceHashOf(entry, i)).then(async (data) => {
        slots.served(Date.now() - asked);
        await accept(i, data, "server");
      }, (err) => {
        deps.log?.(`servers could not send piece ${i} of ${entry.path}: ${err.message}`);
        serverFailed = err;
      }).finally(() => {
        slots.inUse--;
        inflight.delete(f);
        peers.emit("changed");
      })
    };
    inflight.add(f);
  };
  let serverFailed;
  try {
    while (remaining > 0) {
      signal?.throwIfAborted();
      const busy = new Set([...inflight].map((f) => f.piece));
      const candidates = order.filter((i) => !verified[i] && !busy.has(i)).map((i) => ({ i, holders: usable(i) })).sort((a, b) => (a.holders.length || Infinity) - (b.holders.length || Infinity));
      for (const { i, holders } of candidates) {
        const now = Date.now();
        const ready = (p) => readyAt(p, now);
        const clientHolders = holders.filter((p) => !p.server);
        const free = clientHolders.filter(ready).sort((a, b) => a.inflight - b.inflight);
        if (free.length > 0) {
          startPeer(i, free[0]);
          continue;
        }
        if (clientHolders.length > 0) continue;
        const own = mine(i);
        if (own) slots.stripeWantedAt = now;
        if (!slots.free || !(own || now > patienceEnds(i) && !ownerBusy(i, now))) continue;
        const seed = holders.filter(ready).sort((a, b) => a.inflight - b.inflight)[0];
        if (process.env.UPSWARM_DEBUG) deps.log?.(`server piece ${i} of ${entry.path}: ${peers.size} peers (${peers.all().map((p) => `${p.key.slice(0, 6)}${p.server ? "s" : ""}:${p.session.remote.blobs.size}`).join(" ")})`);
        if (deps.server && serverFailed === void 0) startServer(i);
        else if (seed) startPeer(i, seed, true);
      }
      const lateBefore = Date.now() - peers.lateAfterMs();
      if (candidates.length === 0 && inflight.size > 0) {
        for (const f of [...inflight]) {
          if (f.asked > lateBefore) continue;
          if ([...inflight].some((g) => g !== f && g.piece === f.piece)) continue;
          const dup = usable(f.piece).find((p) => !p.server && readyAt(p, Date.now()) && p !== f.source && ![...inflight].some((g) => g.piece === f.piece && g.source === p));
          if (dup) startPeer(f.piece, dup);
        }
      }
      if (remaining === 0) break;
      if (inflight.size > 0) {
        waitingSince = Date.now();
        const nextLate = Math.min(...[...inflight].map((f) => f.asked)) + peers.lateAfterMs() - Date.now();
        await Promise.race([...inflight].map((f) => f.promise).concat(peers.nextChange(Math.max(20, Math.min(1e3, nextLate + 5)))));
        continue;
      }
      if (Date.now() - waitingSince > NO_SOURCE_TIMEOUT_MS) {
        throw new UpswarmError(
          "UPSWARM_E_PEER",
          `no peer or server could send ${remaining} piece(s) of ${entry.path} (blob ${entry.sha256}) within ${NO_SOURCE_TIMEOUT_MS / 1e3} s` + (serverFailed ? `; servers: ${serverFailed.message}` : deps.server ? "" : "; no server connection"),
          { cause: serverFailed }
        );
      }
      await peers.nextChange(Math.max(50, Math.min(1e3, patienceEnds() - Date.now() + 10)));
    }
    await Promise.allSettled([...inflight].map((f) => f.promise));
    await fh.close();
    await into.commitFile(entry.sha256, tmp, "peers and servers", entry.size, entry.sha1);
    return stats;
  } catch (err) {
    for (const f of inflight) f.controller.abort();
    await fh.close().catch(() => {
    });
    await rm2(tmp, { force: true });
    throw isUpswarmError(err) ? err : new UpswarmError("UPSWARM_E_PEER", `download of ${entry.path} failed: ${err.message}`, { cause: err });
  } finally {
    deps.partials.delete(entry.sha256);
  }
}

// actors/share-daemon/sources.ts
function serverSource(nc, product) {
  const client = new RepoClient(nc);
  const stats = emptyStats();
  return {
    stats,
    async revisions(p) {
      return (await client.revisions(p)).revs.map((r) => ({ rev: r.rev, manifestSha256: r.manifestSha256 }));
    },
    release: (p, rev) => client.release(p, rev),
    async fetchBlob(entry, into, opts) {
      const r = await client.fetchBlob(product, entry, into, opts);
      stats.bytesFromServers += r.bytesFromServers;
      return { bytesFromServers: r.bytesFromServers, bytesFromPeers: 0, verified: true };
    }
  };
}
function swarmSource(opts) {
  const client = opts.nc ? new RepoClient(opts.nc) : void 0;
  const stats = emptyStats();
  const startedAt = Date.now();
  const fromFeed = (why) => {
    const list = opts.feed?.list(opts.product) ?? [];
    if (list.length === 0) throw why instanceof Error ? why : new UpswarmError("UPSWARM_E_NO_SERVER", "no server and no release feed to ask for revisions");
    opts.log?.(`servers unavailable (${errorMessage(why)}); using the release feed from peers`);
    return list;
  };
  return {
    stats,
    async revisions(p) {
      if (!client) return fromFeed(new UpswarmError("UPSWARM_E_NO_SERVER", "no NATS connection"));
      try {
        return (await client.revisions(p)).revs.map((r) => ({ rev: r.rev, manifestSha256: r.manifestSha256 }));
      } catch (err) {
        return fromFeed(err);
      }
    },
    async release(p, rev) {
      let why = new UpswarmError("UPSWARM_E_NO_SERVER", "no NATS connection");
      if (client) {
        try {
          return await client.release(p, rev);
        } catch (err) {
          why = err;
        }
      }
      const r = await opts.feed?.get(p, rev);
      if (!r) throw why;
      return encodeRelease(r);
    },
    schedule: () => swarmSchedule(opts.deps.selfKey, opts.deps.peers, opts.files ?? 16),
    async fetchBlob(entry, into, o) {
      const s = await fetchBlobMultiSource(entry, into, {
        ...opts.deps,
        server: client?.rangeReader(opts.product),
        pieceSize: PIECE_SIZE,
        startedAt
      }, o.signal);
      addStats(stats, s);
      return { bytesFromServers: s.bytesFromServers, bytesFromPeers: s.bytesFromPeers, verified: true };
    }
  };
}
function swarmSchedule(selfKey, peers, files) {
  const keys = swarmKeysOf(selfKey, peers);
  return {
    concurrency: files,
    rank(entry) {
      const pieces = Math.max(1, Math.ceil(entry.size / PIECE_SIZE));
      let own = false;
      for (let i = 0; i < pieces && !own; i++) own = stripeOwner(entry.sha256, i, keys) === selfKey;
      const shuffle = parseInt(sha256Hex(`${selfKey}:${entry.sha256}`).slice(0, 8), 16) / 2 ** 32;
      return (own ? 0 : 1) + shuffle;
    }
  };
}

export {
  PeerSet,
  ServerSlots,
  serverSource,
  swarmSource,
  swarmSchedule
};
