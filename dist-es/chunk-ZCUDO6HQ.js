import {
  decodeRelease,
  manifestSha256
} from "./chunk-W5VBZNBS.js";
import {
  sodiumKeyPair
} from "./chunk-4NZCUDRR.js";
import {
  UpswarmError,
  errorMessage,
  isUpswarmError
} from "./chunk-5DMJPWEV.js";

// infra/swarm/release-feed.ts
import { EventEmitter } from "node:events";
import b4a from "b4a";
import Hypercore from "hypercore";
var MAX_RELEASE_BLOCK_BYTES = 15 * 1024 * 1024;
var HEX64 = /^[0-9a-f]{64}$/;
var ReleaseFeed = class _ReleaseFeed extends EventEmitter {
  publisherPublicKey;
  /** Hypercore key (Hypercore.key of the publisher key) and discovery key. */
  key;
  discoveryKey;
  core;
  entries = [];
  refused = /* @__PURE__ */ new Map();
  lastRev = /* @__PURE__ */ new Map();
  scanned = 0;
  scanning = Promise.resolve();
  closed = false;
  conflicted = false;
  constructor(core, publisherPublicKey) {
    super();
    this.core = core;
    this.publisherPublicKey = publisherPublicKey;
    this.key = core.key;
    this.discoveryKey = core.discoveryKey;
  }
  static async open(opts) {
    if (!HEX64.test(opts.publisherPublicKey)) {
      throw new UpswarmError("UPSWARM_E_CONFIG", `publisher public key must be 64 hex characters (got ${JSON.stringify(opts.publisherPublicKey.slice(0, 80))})`);
    }
    if (opts.writerKey && opts.writerKey.publicKey !== opts.publisherPublicKey) {
      throw new UpswarmError(
        "UPSWARM_E_CONFIG",
        `the writer key (public key ${opts.writerKey.publicKey}) is not the pinned publisher key ${opts.publisherPublicKey}; use the publisher's key file`
      );
    }
    const key = Hypercore.key(b4a.from(opts.publisherPublicKey, "hex"));
    const core = opts.writerKey ? new Hypercore(opts.storageDir, { keyPair: sodiumKeyPair(opts.writerKey), allowFork: false }) : new Hypercore(opts.storageDir, key, { allowFork: false });
    try {
      await core.ready();
    } catch (err) {
      await core.close().catch(() => {
      });
      throw new UpswarmError("UPSWARM_E_IO", `cannot open the release feed in ${opts.storageDir}: ${errorMessage(err)}`, { cause: err });
    }
    if (!core.key || !b4a.equals(core.key, key)) {
      await core.close();
      throw new UpswarmError("UPSWARM_E_CONFIG", `${opts.storageDir} holds another feed than publisher ${opts.publisherPublicKey}'s; give each publisher key its own feed directory`);
    }
    const feed = new _ReleaseFeed(core, opts.publisherPublicKey);
    core.on("append", () => feed.scheduleScan());
    core.on("download", () => feed.scheduleScan());
    core.on("truncate", () => feed.onConflict("the feed was truncated"));
    core.on("conflict", (length) => feed.onConflict(`two different signed histories exist for length ${length}`));
    core.on("verification-error", (err, req, _res, from) => {
      const peer = from?.remotePublicKey ? b4a.toString(from.remotePublicKey, "hex") : "unknown";
      feed.emit("rejected", new UpswarmError(
        "UPSWARM_E_SIGNATURE",
        `peer ${peer} sent release feed data that does not verify against publisher key ${opts.publisherPublicKey}; ignored it and stopped asking that peer`,
        { cause: err, details: { peer } }
      ), req?.block?.index ?? -1);
    });
    core.download({ start: 0, end: -1 });
    await feed.waitScanned();
    return feed;
  }
  /** Blocks in the feed (verified or not yet). */
  get length() {
    return this.core.length;
  }
  get writable() {
    return this.core.writable;
  }
  /** The verified releases, in feed order. */
  releases(product) {
    return product === void 0 ? [...this.entries] : this.entries.filter((e) => e.product === product);
  }
  /** The highest verified revision of a product. */
  latest(product) {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i].product === product) return this.entries[i];
    return void 0;
  }
  /** The full signed release of block `index`; throws the block's refusal if it was refused. */
  async get(index, opts = {}) {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.core.length) {
      throw new UpswarmError("UPSWARM_E_NOT_FOUND", `release feed has no block ${index} (length ${this.core.length})`);
    }
    if (index >= this.scanned) {
      await this.withTimeout(this.core.download({ start: this.scanned, end: index + 1 }).done(), opts.timeoutMs, `block ${index} of the release feed`);
      await this.waitScanned();
    }
    const refusal = this.refused.get(index);
    if (refusal) throw refusal;
    const block = await this.core.get(index, { wait: false });
    if (!block) throw new UpswarmError("UPSWARM_E_NOT_FOUND", `block ${index} of the release feed is not stored locally`);
    return decodeRelease(block, this.publisherPublicKey, `release feed block ${index}`);
  }
  /**
   * Appends a signed release (publisher only). Idempotent: a release already in the feed is
   * not appended twice. Refuses a release that does not verify against the pinned key or does
   * not raise its product's revision, and refuses to write while a connected peer holds a
   * longer feed (catch up with update() first, or the feed would fork; that refusal has
   * `details.reason` 'behind').
   */
  async append(releaseBytes) {
    if (!this.core.writable) {
      throw new UpswarmError("UPSWARM_E_PUBLISH", "this release feed was opened without the publisher key; it cannot be appended to");
    }
    if (releaseBytes.byteLength > MAX_RELEASE_BLOCK_BYTES) {
      throw new UpswarmError("UPSWARM_E_MANIFEST", `release manifest is ${releaseBytes.byteLength} bytes; the feed takes at most ${MAX_RELEASE_BLOCK_BYTES}`);
    }
    const release = decodeRelease(releaseBytes, this.publisherPublicKey, "release feed append");
    await this.waitScanned();
    const ahead = this.core.peers.find((p) => p.remoteFork === this.core.fork && p.remoteLength > this.core.length);
    if (ahead) {
      throw new UpswarmError(
        "UPSWARM_E_PUBLISH",
        `a peer holds ${ahead.remoteLength} feed blocks, this copy only ${this.core.length}; catch up with update() before appending, or the feed would fork`,
        { details: { reason: "behind", remoteLength: ahead.remoteLength, length: this.core.length } }
      );
    }
    const { product, rev } = release.manifest;
    const sha = manifestSha256(release.manifest);
    const same = this.entries.find((e) => e.product === product && e.rev === rev);
    if (same) {
      if (same.manifestSha256 === sha) return { index: same.index, length: this.core.length, appended: false };
      throw new UpswarmError(
        "UPSWARM_E_CONFLICT",
        `the release feed already holds a different release for product ${product} rev ${rev} (block ${same.index}); publish a new revision instead`
      );
    }
    const last = this.lastRev.get(product) ?? 0;
    if (rev <= last) {
      throw new UpswarmError("UPSWARM_E_PUBLISH", `the release feed already has product ${product} at rev ${last}; rev ${rev} would move it backwards`);
    }
    const { length } = await this.core.append(b4a.from(releaseBytes));
    await this.waitScanned();
    return { index: length - 1, length, appended: true };
  }
  /**
   * Catches up with the connected peers: fetches their newest length and every block, then
   * verifies them. Resolves true when the feed grew. The publisher calls it before append().
   * Peers found offering a forked feed are reported ('forked-peer') and not followed.
   * With no feed peer connected it returns at once: a publisher passes `minPeers` (the servers
   * it connected to) so that it waits for their feed channels to open first.
   */
  async update(opts = {}) {
    const before = this.core.length;
    const minPeers = opts.minPeers ?? 0;
    await this.withTimeout((async () => {
      if (this.core.peers.length < minPeers) {
        await new Promise((resolve) => {
          const onPeer = () => {
            if (this.core.peers.length < minPeers) return;
            this.core.off("peer-add", onPeer);
            resolve();
          };
          this.core.on("peer-add", onPeer);
        });
      }
      await this.core.update({ wait: true, force: this.core.writable });
      if (this.core.length > 0) await this.core.download({ start: 0, end: this.core.length }).done();
      await this.waitScanned();
    })(), opts.timeoutMs, "release feed update");
    for (const p of this.core.peers) {
      if (p.remoteFork === this.core.fork) continue;
      const peer = b4a.toString(p.remotePublicKey, "hex");
      this.emit("forked-peer", new UpswarmError(
        "UPSWARM_E_CONFLICT",
        `peer ${peer} offers the release feed at fork ${p.remoteFork} (length ${p.remoteLength}); this node is at fork ${this.core.fork} (length ${this.core.length}) and does not follow a rewritten feed`,
        { details: { peer } }
      ), peer);
    }
    return this.core.length > before;
  }
  /**
   * Resolves once some connected peer holds the first `length` blocks (publish returns only
   * after a server has the block); with `all`, once every connected peer on this fork does.
   */
  async waitForRemote(length, opts = {}) {
    const has = () => {
      const holding = this.remotesHolding(length);
      return holding > 0 && (!opts.all || holding === this.sameForkPeers().length);
    };
    if (has()) return;
    const events = ["remote-contiguous-length", "peer-add", "upload"];
    let check;
    const done = new Promise((resolve, reject) => {
      check = () => {
        if (has()) resolve();
      };
      opts.signal?.addEventListener("abort", () => reject(opts.signal.reason), { once: true });
    });
    for (const e of events) this.core.on(e, check);
    const poll = setInterval(() => check(), 500);
    try {
      await this.withTimeout(done, opts.timeoutMs, `a peer to hold ${length} release feed blocks`);
    } finally {
      clearInterval(poll);
      for (const e of events) this.core.off(e, check);
    }
  }
  /** Connected peers on this feed's fork that hold its first `length` blocks. */
  remotesHolding(length) {
    return this.sameForkPeers().filter((p) => p.remoteContiguousLength >= length).length;
  }
  sameForkPeers() {
    return this.core.peers.filter((p) => p.remoteFork === this.core.fork);
  }
  /** Replicates the feed over a connection, beside its piece channel (call it in the connection handler). */
  replicate(stream) {
    if (this.closed || this.conflicted) return;
    this.core.replicate(stream);
  }
  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.core.close();
  }
  // ---------------------------------------------------------------- verification
  scheduleScan() {
    this.scanning = this.scanning.then(() => this.scan());
  }
  /** Verifies every block stored locally that was not verified yet. */
  async waitScanned() {
    this.scheduleScan();
    await this.scanning;
  }
  /** Verifies stored blocks in order, up to the first one not downloaded yet. Never throws. */
  async scan() {
    while (!this.closed && !this.conflicted && this.scanned < this.core.length) {
      const index = this.scanned;
      let block;
      try {
        block = await this.core.get(index, { wait: false });
      } catch {
        return;
      }
      if (!block) return;
      this.scanned = index + 1;
      this.verifyBlock(index, block);
    }
  }
  verifyBlock(index, block) {
    let release;
    try {
      if (block.byteLength > MAX_RELEASE_BLOCK_BYTES) {
        throw new UpswarmError("UPSWARM_E_MANIFEST", `release feed block ${index} is ${block.byteLength} bytes, over the ${MAX_RELEASE_BLOCK_BYTES}-byte limit`);
      }
      release = decodeRelease(block, this.publisherPublicKey, `release feed block ${index}`);
      const { product: product2, rev: rev2 } = release.manifest;
      const last = this.lastRev.get(product2) ?? 0;
      if (rev2 <= last) {
        throw new UpswarmError(
          "UPSWARM_E_MANIFEST",
          `release feed block ${index} carries product ${product2} rev ${rev2}, but the feed already reached rev ${last}; a feed never moves backwards, refusing it`
        );
      }
    } catch (err) {
      const e = isUpswarmError(err) ? err : new UpswarmError("UPSWARM_E_MANIFEST", `release feed block ${index}: ${errorMessage(err)}`, { cause: err });
      this.refused.set(index, e);
      this.emit("rejected", e, index);
      return;
    }
    const { product, rev, label } = release.manifest;
    this.lastRev.set(product, rev);
    const entry = { index, product, rev, ...label !== void 0 ? { label } : {}, manifestSha256: manifestSha256(release.manifest) };
    this.entries.push(entry);
    this.emit("release", entry, release);
  }
  onConflict(what) {
    if (this.conflicted) return;
    this.conflicted = true;
    this.emit("conflict", new UpswarmError(
      "UPSWARM_E_CONFLICT",
      `release feed of publisher ${this.publisherPublicKey}: ${what}. The publisher key signed two histories (a publish that did not catch up first, or a stolen key). This node keeps the ${this.entries.length} releases it verified and stops following the feed; alert the administrators`
    ));
  }
  async withTimeout(p, timeoutMs, what) {
    if (!timeoutMs) return p;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new UpswarmError("UPSWARM_E_TIMEOUT", `timed out after ${timeoutMs} ms waiting for ${what}; no peer with the feed answered`)), timeoutMs);
    });
    try {
      return await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
};
function openFeed(opts) {
  return ReleaseFeed.open(opts);
}

// infra/swarm/transport.ts
import { EventEmitter as EventEmitter2 } from "node:events";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import { dirname } from "node:path";
import b4a2 from "b4a";
import NoiseSecretStream from "@hyperswarm/secret-stream";
import DHT from "hyperdht";
import Hyperswarm from "hyperswarm";
import { z } from "zod";
var TOPIC_PREFIX = "upswarm:topic:";
var DEFAULT_MAX_CONNECTIONS = 64;
var DEFAULT_HANDSHAKE_TIMEOUT_MS = 1e4;
var DEFAULT_KEEP_ALIVE_MS = 5e3;
var DEFAULT_IDLE_TIMEOUT_MS = 3e4;
var DEFAULT_FIRST_BYTES_TIMEOUT_MS = 5e3;
var NodeKeyFileSchema = z.object({
  type: z.literal("upswarm-node-key"),
  seed: z.string().regex(/^[0-9a-f]{64}$/),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/)
});
async function loadOrCreateKeyPair(file) {
  let raw;
  try {
    raw = await readFile(file, "utf8");
  } catch (err) {
    if (err.code !== "ENOENT") {
      throw new UpswarmError("UPSWARM_E_IO", `cannot read node key file ${file}: ${errorMessage(err)}`, { cause: err });
    }
  }
  if (raw === void 0) {
    const seed = randomBytes(32);
    const kp2 = NoiseSecretStream.keyPair(seed);
    const body = JSON.stringify({ type: "upswarm-node-key", seed: seed.toString("hex"), publicKey: b4a2.toString(kp2.publicKey, "hex") }, null, 2) + "\n";
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, body, { mode: 384, flag: "wx" });
      return kp2;
    } catch (err) {
      if (err.code !== "EEXIST") {
        throw new UpswarmError("UPSWARM_E_IO", `cannot write node key file ${file}: ${errorMessage(err)}`, { cause: err });
      }
      raw = await readFile(file, "utf8");
    }
  }
  let parsed;
  try {
    parsed = NodeKeyFileSchema.parse(JSON.parse(raw));
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_CONFIG", `${file} is not an upswarm node key file; delete it to make a new node identity`, { cause: err });
  }
  const kp = NoiseSecretStream.keyPair(b4a2.from(parsed.seed, "hex"));
  if (b4a2.toString(kp.publicKey, "hex") !== parsed.publicKey) {
    throw new UpswarmError("UPSWARM_E_CONFIG", `${file}: its public key does not match its seed; the file is damaged, delete it to make a new node identity`);
  }
  return kp;
}
function topicFor(product, rev) {
  if (product.length === 0) throw new UpswarmError("UPSWARM_E_BAD_REQUEST", "topicFor needs a product id");
  if (rev !== void 0 && (!Number.isSafeInteger(rev) || rev < 1)) {
    throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `topicFor: revision must be an integer >= 1, got ${rev}`);
  }
  return createHash("sha256").update(TOPIC_PREFIX + product + (rev === void 0 ? "" : `:${rev}`)).digest();
}
var SwarmTransport = class extends EventEmitter2 {
  keyPair;
  opts;
  conns = /* @__PURE__ */ new Map();
  /** A second connection the remote initiated while one exists; promoted if the first closes. */
  standby = /* @__PURE__ */ new Map();
  pending = /* @__PURE__ */ new Set();
  server = null;
  swarm = null;
  closing = false;
  constructor(options) {
    super();
    this.keyPair = options.keyPair;
    this.opts = {
      maxConnections: DEFAULT_MAX_CONNECTIONS,
      handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
      keepAliveMs: DEFAULT_KEEP_ALIVE_MS,
      idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
      firstBytesTimeoutMs: DEFAULT_FIRST_BYTES_TIMEOUT_MS,
      ...options
    };
  }
  get publicKey() {
    return this.keyPair.publicKey;
  }
  /** Open connections, one per remote key. */
  get connections() {
    return this.conns;
  }
  /** Starts the TCP listener (tracker peers dial it); resolves with the bound address. */
  async listen(host, port = 0) {
    if (this.server) throw new UpswarmError("UPSWARM_E_CONFIG", "this transport is already listening");
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      const stream = new NoiseSecretStream(false, socket, { keyPair: this.keyPair });
      void this.adopt(stream, "tcp", { host: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 }, []);
    });
    this.server = server;
    await new Promise((resolve, reject) => {
      server.once("error", (err) => reject(new UpswarmError("UPSWARM_E_CONFIG", `cannot listen for peers on ${host}:${port}: ${err.message}`, { cause: err })));
      server.listen(port, host, () => resolve());
    });
    server.on("error", (err) => this.emit("refused", null, `listener error: ${err.message}`));
    return this.tcpAddress;
  }
  get tcpAddress() {
    const a = this.server?.address();
    return a && typeof a === "object" ? { host: a.address, port: a.port } : null;
  }
  /**
   * Dials a peer at host:port (from the tracker), runs the Noise handshake and resolves with
   * the connection now open to that peer (an existing one when this was a duplicate). With
   * `remotePublicKey`, a peer answering with any other key is refused.
   */
  async dial(host, port, opts = {}) {
    if (this.closing) throw new UpswarmError("UPSWARM_E_PEER", `cannot dial ${host}:${port}: the transport is closed`);
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const stream = new NoiseSecretStream(true, socket, { keyPair: this.keyPair });
    const onAbort = () => stream.destroy(new Error("dial aborted"));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const entry = await this.adopt(stream, "tcp", { host, port }, [], opts.remotePublicKey);
      if (!entry) {
        throw new UpswarmError(
          "UPSWARM_E_PEER",
          `could not connect to peer ${host}:${port}: ${stream.destroyed ? "connection failed or refused" : "handshake failed"}; the tracker's entry may be stale`
        );
      }
      return entry.info;
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }
  /**
   * Joins a Hyperswarm topic (topicFor) on the DHT: announces this node and connects to the
   * peers found. Resolves once the first announce / lookup round is done.
   */
  async join(topic, opts = {}) {
    const discovery = this.hyperswarm().join(topic, { server: opts.server ?? true, client: opts.client ?? true });
    await discovery.flushed();
  }
  async leave(topic) {
    await this.swarm?.leave(topic);
  }
  /** Waits until the DHT connections being attempted have been made or have failed. */
  async flush() {
    await this.swarm?.flush();
  }
  /** Closes every connection, the listener and the DHT node. */
  async close() {
    if (this.closing) return;
    this.closing = true;
    const err = new Error("transport closed");
    for (const s of this.pending) s.destroy(err);
    for (const e of [...this.conns.values(), ...this.standby.values()]) e.stream.destroy(err);
    this.conns.clear();
    this.standby.clear();
    const server = this.server;
    if (server) await new Promise((resolve) => server.close(() => resolve()));
    await this.swarm?.destroy();
  }
  hyperswarm() {
    if (this.closing) throw new UpswarmError("UPSWARM_E_PEER", "cannot join a topic: the transport is closed");
    if (this.swarm) return this.swarm;
    if (!this.opts.bootstrap || this.opts.bootstrap.length === 0) {
      throw new UpswarmError("UPSWARM_E_CONFIG", "cannot join the DHT: no bootstrap node given (--bootstrap HOST:PORT or UPSWARM_BOOTSTRAP)");
    }
    const dht = new DHT({ bootstrap: this.opts.bootstrap, ...this.opts.dhtHost ? { host: this.opts.dhtHost } : {} });
    this.swarm = new Hyperswarm({ keyPair: this.keyPair, dht, maxPeers: this.opts.maxConnections });
    this.swarm.on("connection", (conn, peerInfo) => {
      void this.adopt(conn, "dht", null, [...peerInfo.topics]);
    });
    return this.swarm;
  }
  /** Waits for the handshake, applies dedupe and limits, then hands the stream to onConnection. */
  async adopt(stream, via, remoteAddress, topics, expectKey) {
    stream.on("error", () => {
    });
    if (this.closing) {
      stream.destroy();
      return null;
    }
    if (this.pending.size >= this.opts.maxConnections) return this.refuse(stream, null, `too many handshakes in progress (${this.pending.size})`);
    this.pending.add(stream);
    const timer = setTimeout(() => stream.destroy(new Error("handshake timeout")), this.opts.handshakeTimeoutMs);
    let opened;
    try {
      opened = await stream.opened;
    } finally {
      clearTimeout(timer);
      this.pending.delete(stream);
    }
    const remoteKey = stream.remotePublicKey;
    if (!opened || !remoteKey || this.closing || stream.destroying) {
      stream.destroy();
      this.emit("refused", remoteKey ? b4a2.toString(remoteKey, "hex") : null, "handshake failed");
      return null;
    }
    const peer = b4a2.toString(remoteKey, "hex");
    if (b4a2.equals(remoteKey, this.keyPair.publicKey)) return this.refuse(stream, peer, "connected to itself");
    if (expectKey && !b4a2.equals(remoteKey, expectKey)) return this.refuse(stream, peer, `expected peer ${b4a2.toString(expectKey, "hex")}`);
    const info = { remotePublicKey: remoteKey, peer, via, initiator: stream.isInitiator, remoteAddress, topics };
    return this.register({ stream, info });
  }
  refuse(stream, peer, reason) {
    stream.destroy(new Error(reason));
    this.emit("refused", peer, reason);
    return null;
  }
  /**
   * One connection per remote key. Of two, both sides keep the one dialled by the side with
   * the larger public key (the rule Hyperswarm uses); when one side dialled both, that side
   * drops the newer and the other keeps the newer on standby until the first closes.
   */
  register(entry) {
    const { stream, info } = entry;
    const existing = this.conns.get(info.peer);
    if (existing) {
      const newPreferred = this.preferred(stream);
      const oldPreferred = this.preferred(existing.stream);
      if (newPreferred === oldPreferred) {
        if (stream.isInitiator) {
          this.refuse(stream, info.peer, "duplicate connection");
          return existing;
        }
        const old = this.standby.get(info.peer);
        if (old) this.refuse(old.stream, info.peer, "duplicate connection");
        this.standby.set(info.peer, entry);
        stream.once("close", () => {
          if (this.standby.get(info.peer) === entry) this.standby.delete(info.peer);
        });
        return existing;
      }
      if (!newPreferred) {
        this.refuse(stream, info.peer, "duplicate connection");
        return existing;
      }
      this.conns.delete(info.peer);
      this.refuse(existing.stream, info.peer, "duplicate connection");
    }
    if (this.conns.size >= this.opts.maxConnections) {
      return this.refuse(stream, info.peer, `connection limit (${this.opts.maxConnections}) reached`);
    }
    this.conns.set(info.peer, entry);
    stream.once("close", () => this.onClosed(entry));
    stream.setKeepAlive(this.opts.keepAliveMs);
    stream.setTimeout(this.opts.idleTimeoutMs);
    this.expectFirstBytes(entry);
    try {
      this.opts.onConnection(stream, info);
    } catch (err) {
      this.refuse(stream, info.peer, `connection handler failed: ${errorMessage(err)}`);
      return null;
    }
    return entry;
  }
  /** Closes the connection if nothing at all arrives on it in firstBytesTimeoutMs (see the option). */
  expectFirstBytes(entry) {
    const { stream, info } = entry;
    const timer = setTimeout(() => {
      if (stream.rawBytesRead === 0 && !stream.destroying) {
        this.refuse(stream, info.peer, `half-open connection: nothing received in ${this.opts.firstBytesTimeoutMs} ms`);
      }
    }, this.opts.firstBytesTimeoutMs);
    timer.unref();
    stream.once("close", () => clearTimeout(timer));
  }
  onClosed(entry) {
    const peer = entry.info.peer;
    if (this.conns.get(peer) !== entry) return;
    this.conns.delete(peer);
    const next = this.standby.get(peer);
    if (next && !this.closing) {
      this.standby.delete(peer);
      if (!next.stream.destroying) this.register(next);
    }
  }
  preferred(stream) {
    const expectedInitiator = b4a2.compare(this.keyPair.publicKey, stream.remotePublicKey) > 0;
    return stream.isInitiator === expectedInitiator;
  }
};

export {
  MAX_RELEASE_BLOCK_BYTES,
  openFeed,
  loadOrCreateKeyPair,
  topicFor,
  SwarmTransport
};
