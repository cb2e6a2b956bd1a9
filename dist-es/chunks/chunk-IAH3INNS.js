import {
  UpswarmError,
  errorMessage
} from "./chunk-RP33VEIV.js";

// infra/swarm/token-bucket.ts
var TokenBucket = class {
  /** Bytes per second; 0 means unlimited. */
  rate;
  /** Largest burst, in bytes. */
  burst;
  tokens;
  last;
  /** Bytes admitted for sending (by every session sharing the bucket) that have not called take() yet. */
  reservedBytes = 0;
  constructor(rate, burst = rate) {
    if (!Number.isFinite(rate) || rate < 0) {
      throw new UpswarmError("UPSWARM_E_CONFIG", `upload rate must be a number of bytes per second >= 0 (0 = unlimited), got ${rate}`);
    }
    this.rate = rate;
    this.burst = Math.max(1, burst);
    this.tokens = this.burst;
    this.last = performance.now();
  }
  /** Bytes admitted for sending and not yet taken, over every session sharing the bucket. */
  get reserved() {
    return this.reservedBytes;
  }
  /** Promises `bytes` of sending (admitted, not yet taken): later requests queue behind them. */
  reserve(bytes) {
    this.reservedBytes += bytes;
  }
  /** Withdraws a promise made with reserve() (sent, cancelled or failed). */
  release(bytes) {
    this.reservedBytes = Math.max(0, this.reservedBytes - bytes);
  }
  /**
   * Seconds of sending already promised (taken beyond what the bucket holds, plus `reserved`)
   * that a new request would wait behind (0 when unlimited).
   */
  backlogSeconds() {
    if (this.rate === 0) return 0;
    this.refill();
    return Math.max(0, this.reservedBytes - this.tokens) / this.rate;
  }
  /** Adds the tokens earned since the last call, up to the burst. */
  refill() {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / 1e3 * this.rate);
    this.last = now;
  }
  /** Resolves once `bytes` may be sent; rejects with the signal's reason when aborted first. */
  take(bytes, signal) {
    if (this.rate === 0 || bytes <= 0) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.refill();
    this.tokens -= bytes;
    if (this.tokens >= 0) return Promise.resolve();
    const waitMs = Math.ceil(-this.tokens / this.rate * 1e3);
    return new Promise((resolve, reject2) => {
      const onAbort = () => {
        clearTimeout(timer);
        this.tokens += bytes;
        reject2(signal.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, waitMs);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
};

// infra/swarm/piece-protocol.ts
import { EventEmitter } from "node:events";
import b4a2 from "b4a";
import c2 from "compact-encoding";
import Protomux from "protomux";

// infra/swarm/piece-codec.ts
import b4a from "b4a";
import c from "compact-encoding";
var PROTOCOL = "upswarm/pieces";
var PROTOCOL_VERSION = 1;
var MAX_REQUEST_LENGTH = 1 << 20;
var MAX_HAVE_PER_MESSAGE = 8192;
var MAX_PRODUCT_BYTES = 64;
var MAX_MESSAGE_BYTES = MAX_REQUEST_LENGTH + 32;
var MAX_PIECE_INDEX = (1 << 24) - 1;
var MAX_OUTSTANDING_LIMIT = 1024;
var MIN_PIECE_SIZE = 4096;
var MAX_PIECE_SIZE = 64 * 1024 * 1024;
var RejectReason = {
  "not-found": 1,
  "bad-request": 2,
  busy: 3,
  choked: 4,
  error: 5
};
var PieceDecodeError = class extends Error {
  name = "PieceDecodeError";
};
var PieceEncodeError = class extends Error {
  name = "PieceEncodeError";
};
var HAVE_FLAG_RESET = 1;
var HASH_BYTES = 32;
var handshake = {
  preencode(s, h) {
    c.uint.preencode(s, h.version);
    c.uint.preencode(s, h.maxOutstanding);
    c.uint.preencode(s, h.maxRequestLength);
  },
  encode(s, h) {
    c.uint.encode(s, h.version);
    c.uint.encode(s, h.maxOutstanding);
    c.uint.encode(s, h.maxRequestLength);
  }
};
var have = {
  preencode(s, m) {
    if (m.hashes.length > MAX_HAVE_PER_MESSAGE) throw new PieceEncodeError(`have carries at most ${MAX_HAVE_PER_MESSAGE} hashes`);
    if (b4a.byteLength(m.product) > MAX_PRODUCT_BYTES) throw new PieceEncodeError(`product is at most ${MAX_PRODUCT_BYTES} bytes`);
    c.string.preencode(s, m.product);
    c.uint.preencode(s, m.rev);
    c.uint.preencode(s, haveFlags(m));
    c.uint.preencode(s, m.hashes.length);
    s.end += m.hashes.length * HASH_BYTES;
  },
  encode(s, m) {
    c.string.encode(s, m.product);
    c.uint.encode(s, m.rev);
    c.uint.encode(s, haveFlags(m));
    c.uint.encode(s, m.hashes.length);
    for (const h of m.hashes) c.fixed32.encode(s, h);
  }
};
var havePiece = {
  preencode(s, m) {
    c.fixed32.preencode(s, m.sha256);
    c.uint.preencode(s, m.pieceSize);
    c.uint.preencode(s, m.index);
  },
  encode(s, m) {
    c.fixed32.encode(s, m.sha256);
    c.uint.encode(s, m.pieceSize);
    c.uint.encode(s, m.index);
  }
};
var request = {
  preencode(s, m) {
    c.uint.preencode(s, m.id);
    c.fixed32.preencode(s, m.sha256);
    c.uint.preencode(s, m.offset);
    c.uint.preencode(s, m.length);
  },
  encode(s, m) {
    c.uint.encode(s, m.id);
    c.fixed32.encode(s, m.sha256);
    c.uint.encode(s, m.offset);
    c.uint.encode(s, m.length);
  }
};
var data = {
  preencode(s, m) {
    c.uint.preencode(s, m.id);
    c.buffer.preencode(s, m.bytes);
  },
  encode(s, m) {
    c.uint.encode(s, m.id);
    c.buffer.encode(s, m.bytes);
  }
};
var reject = {
  preencode(s, m) {
    c.uint.preencode(s, m.id);
    c.uint.preencode(s, rejectCode(m.reason));
  },
  encode(s, m) {
    c.uint.encode(s, m.id);
    c.uint.encode(s, rejectCode(m.reason));
  }
};
var cancel = {
  preencode(s, m) {
    c.uint.preencode(s, m.id);
  },
  encode(s, m) {
    c.uint.encode(s, m.id);
  }
};
var empty = { preencode() {
}, encode() {
} };
var encoders = { handshake, have, havePiece, request, data, reject, cancel, choke: empty, unchoke: empty };
function haveFlags(m) {
  return m.reset ? HAVE_FLAG_RESET : 0;
}
function rejectCode(reason) {
  return reason === "unknown" ? 0 : RejectReason[reason];
}
function toBytes(encoder, message) {
  const state = { start: 0, end: 0, buffer: null };
  encoder.preencode(state, message);
  state.buffer = b4a.allocUnsafe(state.end);
  encoder.encode(state, message);
  return state.buffer;
}
function decodeWith(what, bytes, body) {
  if (!(bytes instanceof Uint8Array)) throw new PieceDecodeError(`${what}: not bytes`);
  if (bytes.byteLength > MAX_MESSAGE_BYTES) throw new PieceDecodeError(`${what}: ${bytes.byteLength} bytes exceeds the ${MAX_MESSAGE_BYTES}-byte cap`);
  const state = { start: 0, end: bytes.byteLength, buffer: bytes };
  let out;
  try {
    out = body(state);
  } catch (err) {
    if (err instanceof PieceDecodeError) throw err;
    throw new PieceDecodeError(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (state.start !== state.end) throw new PieceDecodeError(`${what}: ${state.end - state.start} trailing bytes`);
  return out;
}
function uintAtMost(s, max, field) {
  const n = c.uint.decode(s);
  if (!Number.isSafeInteger(n) || n > max) throw new PieceDecodeError(`${field} ${n} is out of range (max ${max})`);
  return n;
}
function hash(s) {
  if (s.end - s.start < HASH_BYTES) throw new PieceDecodeError("truncated SHA-256");
  return c.fixed32.decode(s);
}
function decodeHandshake(bytes) {
  return decodeWith("handshake", bytes, (s) => {
    const version = uintAtMost(s, Number.MAX_SAFE_INTEGER, "version");
    const maxOutstanding = uintAtMost(s, MAX_OUTSTANDING_LIMIT, "maxOutstanding");
    const maxRequestLength = uintAtMost(s, Number.MAX_SAFE_INTEGER, "maxRequestLength");
    return { version, maxOutstanding, maxRequestLength };
  });
}
function decodeHave(bytes) {
  return decodeWith("have", bytes, (s) => {
    const productLength = uintAtMost(s, MAX_PRODUCT_BYTES, "product length");
    if (s.end - s.start < productLength) throw new PieceDecodeError("truncated product");
    const product = b4a.toString(s.buffer.subarray(s.start, s.start + productLength), "utf8");
    s.start += productLength;
    const rev = uintAtMost(s, Number.MAX_SAFE_INTEGER, "rev");
    const flags = uintAtMost(s, 255, "flags");
    if ((flags & ~HAVE_FLAG_RESET) !== 0) throw new PieceDecodeError(`unknown flags ${flags}`);
    const count = uintAtMost(s, MAX_HAVE_PER_MESSAGE, "hash count");
    if (s.end - s.start !== count * HASH_BYTES) throw new PieceDecodeError(`hash list is ${s.end - s.start} bytes, expected ${count * HASH_BYTES}`);
    const hashes = [];
    for (let i = 0; i < count; i++) hashes.push(hash(s));
    return { product, rev, reset: (flags & HAVE_FLAG_RESET) !== 0, hashes };
  });
}
function decodeHavePiece(bytes) {
  return decodeWith("have-piece", bytes, (s) => {
    const sha256 = hash(s);
    const pieceSize = uintAtMost(s, MAX_PIECE_SIZE, "pieceSize");
    if (pieceSize < MIN_PIECE_SIZE) throw new PieceDecodeError(`pieceSize ${pieceSize} is below ${MIN_PIECE_SIZE}`);
    const index = uintAtMost(s, MAX_PIECE_INDEX, "piece index");
    return { sha256, pieceSize, index };
  });
}
function decodeRequest(bytes) {
  return decodeWith("request", bytes, (s) => {
    const id = uintAtMost(s, Number.MAX_SAFE_INTEGER, "id");
    const sha256 = hash(s);
    const offset = uintAtMost(s, Number.MAX_SAFE_INTEGER, "offset");
    const length = uintAtMost(s, Number.MAX_SAFE_INTEGER, "length");
    return { id, sha256, offset, length };
  });
}
function decodeData(bytes) {
  return decodeWith("data", bytes, (s) => {
    const id = uintAtMost(s, Number.MAX_SAFE_INTEGER, "id");
    const length = uintAtMost(s, MAX_REQUEST_LENGTH, "data length");
    if (s.end - s.start !== length) throw new PieceDecodeError(`data payload is ${s.end - s.start} bytes, header says ${length}`);
    const payload = s.buffer.subarray(s.start, s.end);
    s.start = s.end;
    return { id, bytes: payload };
  });
}
function decodeReject(bytes) {
  return decodeWith("reject", bytes, (s) => {
    const id = uintAtMost(s, Number.MAX_SAFE_INTEGER, "id");
    const code = uintAtMost(s, 255, "reason");
    const name = Object.keys(RejectReason).find((k) => RejectReason[k] === code);
    return { id, reason: name ?? "unknown" };
  });
}
function decodeCancel(bytes) {
  return decodeWith("cancel", bytes, (s) => ({ id: uintAtMost(s, Number.MAX_SAFE_INTEGER, "id") }));
}
function decodeEmpty(what, bytes) {
  decodeWith(what, bytes, () => void 0);
}
var decoders = {
  have: decodeHave,
  havePiece: decodeHavePiece,
  request: decodeRequest,
  data: decodeData,
  reject: decodeReject,
  cancel: decodeCancel,
  choke: (b) => decodeEmpty("choke", b),
  unchoke: (b) => decodeEmpty("unchoke", b)
};

// infra/swarm/piece-protocol.ts
var DEFAULT_MAX_OUTSTANDING = 32;
var DEFAULT_SERVE_CONCURRENCY = 4;
var DEFAULT_MAX_UPLOAD_BACKLOG_MS = 2e3;
var DEFAULT_REQUEST_TIMEOUT_MS = 3e4;
var DEFAULT_STALL_TIMEOUT_MS = 15e3;
var DEFAULT_MAX_REMOTE_BLOBS = 1 << 17;
var DEFAULT_MAX_REMOTE_PIECES = 1 << 16;
var HEX64 = /^[0-9a-f]{64}$/;
var PieceSession = class extends EventEmitter {
  stream;
  /** Hex Noise public key of the peer (for reports and bans). */
  peer;
  bytesUp = 0;
  bytesDown = 0;
  remoteState = { product: null, rev: null, blobs: /* @__PURE__ */ new Set() };
  remotePieces = /* @__PURE__ */ new Map();
  remotePieceCount = 0;
  channel;
  send;
  opts;
  maxBacklogSeconds;
  bucket;
  openedPromise;
  resolveOpened;
  remoteMaxOutstanding = 0;
  remoteMaxRequestLength = 0;
  closedFlag = false;
  closeController = new AbortController();
  // requesting side
  nextId = 1;
  waiting = [];
  inflight = /* @__PURE__ */ new Map();
  remoteChoked = false;
  stallTimer = null;
  // serving side
  queue = [];
  active = /* @__PURE__ */ new Map();
  localChoked = false;
  drainWaiters = [];
  /** Create it synchronously in the connection handler, before the stream is read. */
  constructor(stream, options = {}) {
    super();
    this.stream = stream;
    this.peer = stream.remotePublicKey ? b4a2.toString(stream.remotePublicKey, "hex") : "unknown";
    this.opts = {
      serve: options.serve,
      product: options.product ?? "",
      rev: options.rev ?? 0,
      maxOutstanding: clampInt(options.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING, 1, MAX_OUTSTANDING_LIMIT),
      serveConcurrency: clampInt(options.serveConcurrency ?? DEFAULT_SERVE_CONCURRENCY, 1, MAX_OUTSTANDING_LIMIT),
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      stallTimeoutMs: options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      maxRemoteBlobs: options.maxRemoteBlobs ?? DEFAULT_MAX_REMOTE_BLOBS,
      maxRemotePieces: options.maxRemotePieces ?? DEFAULT_MAX_REMOTE_PIECES
    };
    if (b4a2.byteLength(this.opts.product) > MAX_PRODUCT_BYTES) {
      throw new UpswarmError("UPSWARM_E_CONFIG", `product ${JSON.stringify(this.opts.product.slice(0, 80))} is longer than ${MAX_PRODUCT_BYTES} bytes`);
    }
    this.bucket = options.uploadBucket ?? new TokenBucket(options.maxUploadRate ?? 0);
    this.maxBacklogSeconds = (options.maxUploadBacklogMs ?? DEFAULT_MAX_UPLOAD_BACKLOG_MS) / 1e3;
    this.openedPromise = new Promise((resolve) => {
      this.resolveOpened = resolve;
    });
    const mux = Protomux.from(stream);
    const channel = mux.createChannel({
      protocol: PROTOCOL,
      handshake: { preencode: c2.raw.preencode, encode: c2.raw.encode, decode: rawDecode },
      onopen: (hs) => this.guard("handshake", () => this.onHandshake(hs)),
      onclose: () => this.onClose(),
      ondrain: () => this.onDrain()
    });
    if (channel === null) {
      throw new UpswarmError("UPSWARM_E_PEER", `cannot open ${PROTOCOL} to peer ${this.peer}: the connection is closed or already has a piece session`);
    }
    this.channel = channel;
    this.send = {
      have: this.addMessage("have", encoders.have, (b) => this.onHave(decoders.have(b))),
      havePiece: this.addMessage("have-piece", encoders.havePiece, (b) => this.onHavePiece(decoders.havePiece(b))),
      request: this.addMessage("request", encoders.request, (b) => this.onRequest(decoders.request(b))),
      data: this.addMessage("data", encoders.data, (b) => this.onData(decoders.data(b))),
      reject: this.addMessage("reject", encoders.reject, (b) => this.onReject(decoders.reject(b))),
      cancel: this.addMessage("cancel", encoders.cancel, (b) => this.onCancel(decoders.cancel(b).id)),
      choke: this.addMessage("choke", encoders.choke, (b) => {
        decoders.choke(b);
        this.onChoke();
      }),
      unchoke: this.addMessage("unchoke", encoders.unchoke, (b) => {
        decoders.unchoke(b);
        this.onUnchoke();
      })
    };
    channel.open(toBytes(encoders.handshake, { version: PROTOCOL_VERSION, maxOutstanding: this.opts.maxOutstanding, maxRequestLength: MAX_REQUEST_LENGTH }));
  }
  // ---------------------------------------------------------------- public API
  /** Resolves true once the peer opened its side with a compatible handshake, false if the channel closed first. */
  opened() {
    return this.openedPromise;
  }
  get closed() {
    return this.closedFlag;
  }
  /** What the peer announced: its product and revision, and the blobs (hex SHA-256) it holds whole. */
  get remote() {
    return this.remoteState;
  }
  /** True when the peer is choking us (our requests would be rejected). */
  get choked() {
    return this.remoteChoked;
  }
  /** Requests sent and not answered yet, plus those waiting for the peer's request window. */
  get pendingRequests() {
    return this.inflight.size + this.waiting.length;
  }
  /**
   * Tells the peer which blobs this node holds whole. `reset` (default) replaces everything
   * announced before, including `announcePiece`s; otherwise the hashes are added.
   */
  announceHave(hashes, opts = {}) {
    if (this.closedFlag) return;
    const list = [...hashes].map((h) => toHashBytes(h));
    const product = opts.product ?? this.opts.product;
    const rev = opts.rev ?? this.opts.rev;
    this.opts.product = product;
    this.opts.rev = rev;
    let reset = opts.reset ?? true;
    this.channel.cork();
    try {
      for (let i = 0; i === 0 || i < list.length; i += MAX_HAVE_PER_MESSAGE) {
        const msg = { product, rev, reset, hashes: list.slice(i, i + MAX_HAVE_PER_MESSAGE) };
        this.send.have.send(msg);
        reset = false;
      }
    } finally {
      this.channel.uncork();
    }
  }
  /** Tells the peer this node holds (verified) piece `index` of a blob it does not hold whole yet (R-ACCEL-3). */
  announcePiece(sha256, pieceSize, index) {
    if (this.closedFlag) return;
    this.send.havePiece.send({ sha256: toHashBytes(sha256), pieceSize, index });
  }
  /** Whether the peer announced holding the whole blob. */
  peerHas(sha256) {
    return this.remoteState.blobs.has(toHex(sha256));
  }
  /** Whether the peer announced holding the whole blob or piece `index` of it at `pieceSize`. */
  peerHasPiece(sha256, pieceSize, index) {
    const hex = toHex(sha256);
    if (this.remoteState.blobs.has(hex)) return true;
    const p = this.remotePieces.get(hex);
    return p !== void 0 && p.pieceSize === pieceSize && p.indexes.has(index);
  }
  /**
   * Fetches `length` bytes (1 … 1 MiB) of blob `sha256` from `offset`. The bytes are NOT
   * verified here: the caller checks them against the manifest's piece hash (R-VERIFY).
   * Rejects with an UpswarmError whose `details.reason` is a PieceFailure.
   */
  request(sha256, offset, length, opts = {}) {
    let hash2;
    try {
      hash2 = toHashBytes(sha256);
    } catch (err) {
      return Promise.reject(err);
    }
    const hex = b4a2.toString(hash2, "hex");
    const limit = this.remoteMaxRequestLength > 0 ? Math.min(MAX_REQUEST_LENGTH, this.remoteMaxRequestLength) : MAX_REQUEST_LENGTH;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1 || length > limit) {
      return Promise.reject(new UpswarmError(
        "UPSWARM_E_BAD_REQUEST",
        `piece request for blob ${hex} at offset ${offset} length ${length} is invalid: length must be 1\u2026${limit} bytes, offset a non-negative integer`,
        { details: { reason: "bad-request", peer: this.peer } }
      ));
    }
    if (this.closedFlag) return Promise.reject(this.failure("closed", hex, offset, length));
    if (this.remoteChoked) return Promise.reject(this.failure("choked", hex, offset, length));
    if (opts.signal?.aborted) return Promise.reject(this.failure("aborted", hex, offset, length, opts.signal.reason));
    return new Promise((resolve, reject2) => {
      const timeoutMs = opts.timeoutMs ?? this.opts.requestTimeoutMs;
      const req = {
        id: this.nextId++,
        sha256: hash2,
        hex,
        offset,
        length,
        sent: false,
        resolve,
        reject: reject2,
        cleanup: () => {
          clearTimeout(timer);
          opts.signal?.removeEventListener("abort", onAbort);
        }
      };
      const onAbort = () => this.fail(req, this.failure("aborted", hex, offset, length, opts.signal?.reason));
      const timer = setTimeout(() => this.fail(req, this.failure("timeout", hex, offset, length)), timeoutMs);
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(req);
      this.pump();
    });
  }
  /** Stops serving the peer: queued requests are rejected 'choked', new ones too, until unchoke(). */
  choke() {
    if (this.closedFlag || this.localChoked) return;
    this.localChoked = true;
    this.send.choke.send(null);
    for (const r of this.queue.splice(0)) {
      this.unreserve(r);
      this.send.reject.send({ id: r.id, reason: "choked" });
    }
  }
  unchoke() {
    if (this.closedFlag || !this.localChoked) return;
    this.localChoked = false;
    this.send.unchoke.send(null);
  }
  /** Closes the piece channel (the connection stays up). Pending requests fail 'closed'. */
  close() {
    this.channel.close();
  }
  // ---------------------------------------------------------------- plumbing
  addMessage(name, encoder, onBytes) {
    return this.channel.addMessage({
      // Sent values are typed and trusted; received bytes go raw to our own strict decoders.
      encoding: { preencode: encoder.preencode, encode: encoder.encode, decode: rawDecode },
      onmessage: (bytes) => this.guard(`${name} message`, () => onBytes(bytes))
    });
  }
  /** Runs a handler for remote input; nothing escapes into Protomux (it would kill the connection or the process). */
  guard(what, fn) {
    if (this.closedFlag) return;
    try {
      this.touch();
      fn();
    } catch (err) {
      const fromPeer = err instanceof PieceDecodeError || err instanceof ProtocolViolation;
      const reason = fromPeer ? "protocol" : "internal";
      const e = new UpswarmError(
        "UPSWARM_E_PEER",
        fromPeer ? `peer ${this.peer} broke the ${PROTOCOL} protocol (${what}): ${errorMessage(err)}; closed its piece channel` : `internal error handling ${what} from peer ${this.peer}: ${errorMessage(err)}; closed its piece channel`,
        { cause: err, details: { reason, peer: this.peer } }
      );
      this.channel.close();
      this.emitSafely("protocol-error", e);
    }
  }
  emitSafely(event, ...args) {
    const emit = this.emit;
    queueMicrotask(() => emit.call(this, event, ...args));
  }
  onHandshake(bytes) {
    const hs = decodeHandshake(bytes);
    if (hs.version !== PROTOCOL_VERSION) throw new ProtocolViolation(`speaks version ${hs.version}, this node speaks ${PROTOCOL_VERSION}`);
    if (hs.maxOutstanding < 1 || hs.maxRequestLength < 1) throw new ProtocolViolation("handshake announces a zero request window");
    this.remoteMaxOutstanding = hs.maxOutstanding;
    this.remoteMaxRequestLength = hs.maxRequestLength;
    this.resolveOpened(true);
    this.emitSafely("open");
    this.pump();
  }
  onClose() {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.resolveOpened(false);
    this.closeController.abort(new UpswarmError("UPSWARM_E_PEER", `piece channel to peer ${this.peer} closed`));
    for (const r of [...this.waiting, ...this.inflight.values()]) this.fail(r, this.failure("closed", r.hex, r.offset, r.length));
    for (const r of this.queue.splice(0)) this.unreserve(r);
    for (const r of this.active.values()) r.cancelled = true;
    this.onDrain();
    this.stopStallTimer();
    this.emitSafely("close");
  }
  touch() {
    this.stallTimer?.refresh();
  }
  // ---- requesting side
  pump() {
    if (this.closedFlag || this.remoteMaxOutstanding === 0 || this.remoteChoked) return;
    while (this.waiting.length > 0 && this.inflight.size < this.remoteMaxOutstanding) {
      const req = this.waiting.shift();
      req.sent = true;
      this.inflight.set(req.id, req);
      this.send.request.send({ id: req.id, sha256: req.sha256, offset: req.offset, length: req.length });
    }
    if (this.inflight.size > 0) this.startStallTimer();
  }
  fail(req, err) {
    const i = this.waiting.indexOf(req);
    if (i >= 0) this.waiting.splice(i, 1);
    else if (!this.inflight.delete(req.id)) return;
    req.cleanup();
    const reason = err.details?.reason;
    if (req.sent && !this.closedFlag && (reason === "timeout" || reason === "aborted" || reason === "stalled")) {
      this.send.cancel.send({ id: req.id });
    }
    req.reject(err);
    if (this.inflight.size === 0) this.stopStallTimer();
    this.pump();
  }
  onData(msg) {
    this.bytesDown += msg.bytes.byteLength;
    const req = this.inflight.get(msg.id);
    if (!req) {
      if (msg.id >= this.nextId) throw new ProtocolViolation(`data for request ${msg.id}, which was never sent`);
      return;
    }
    if (msg.bytes.byteLength > req.length) throw new ProtocolViolation(`data for request ${msg.id} is ${msg.bytes.byteLength} bytes, ${req.length} were asked`);
    this.inflight.delete(req.id);
    req.cleanup();
    if (this.inflight.size === 0) this.stopStallTimer();
    req.resolve(msg.bytes);
    this.pump();
  }
  onReject(msg) {
    const req = this.inflight.get(msg.id);
    if (!req) {
      if (msg.id >= this.nextId) throw new ProtocolViolation(`reject for request ${msg.id}, which was never sent`);
      return;
    }
    this.fail(req, this.failure(msg.reason === "unknown" ? "rejected" : msg.reason, req.hex, req.offset, req.length));
  }
  onChoke() {
    this.remoteChoked = true;
    for (const r of [...this.waiting, ...this.inflight.values()]) this.fail(r, this.failure("choked", r.hex, r.offset, r.length));
    this.emitSafely("choke");
  }
  onUnchoke() {
    this.remoteChoked = false;
    this.emitSafely("unchoke");
    this.pump();
  }
  startStallTimer() {
    if (this.stallTimer) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      const stuck = [...this.inflight.values(), ...this.waiting];
      for (const r of stuck) this.fail(r, this.failure("stalled", r.hex, r.offset, r.length));
      this.emitSafely("stalled", stuck.length);
    }, this.opts.stallTimeoutMs);
  }
  stopStallTimer() {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
  failure(reason, hex, offset, length, cause) {
    const code = reason === "timeout" || reason === "stalled" ? "UPSWARM_E_TIMEOUT" : reason === "not-found" ? "UPSWARM_E_NOT_FOUND" : "UPSWARM_E_PEER";
    const what = {
      "not-found": "does not hold it",
      "bad-request": "called the request invalid",
      busy: "is busy (too many outstanding requests)",
      choked: "is choking this node",
      error: "failed to read it",
      rejected: "rejected it",
      timeout: "did not answer in time",
      stalled: `sent nothing for ${this.opts.stallTimeoutMs} ms`,
      aborted: "was not waited for: the request was aborted",
      closed: "is no longer connected (piece channel closed)"
    }[reason];
    return new UpswarmError(
      code,
      `piece ${hex}@${offset}+${length} from peer ${this.peer}: the peer ${what}; try another source`,
      { cause, details: { reason, peer: this.peer, sha256: hex, offset, length } }
    );
  }
  // ---- serving side
  onRequest(msg) {
    if (this.active.has(msg.id) || this.queue.some((r) => r.id === msg.id)) throw new ProtocolViolation(`request id ${msg.id} reused while outstanding`);
    if (this.localChoked) return void this.send.reject.send({ id: msg.id, reason: "choked" });
    let outstanding = this.queue.length;
    for (const r of this.active.values()) if (!r.cancelled) outstanding++;
    if (outstanding >= this.opts.maxOutstanding) {
      if (!this.channel.drained) throw new ProtocolViolation("floods requests beyond its window without reading the replies");
      return void this.send.reject.send({ id: msg.id, reason: "busy" });
    }
    if (msg.length < 1 || msg.length > MAX_REQUEST_LENGTH) return void this.send.reject.send({ id: msg.id, reason: "bad-request" });
    if (!this.opts.serve) return void this.send.reject.send({ id: msg.id, reason: "not-found" });
    if (this.bucket.rate > 0 && this.bucket.backlogSeconds() > this.maxBacklogSeconds) {
      return void this.send.reject.send({ id: msg.id, reason: "busy" });
    }
    const reserved = this.bucket.rate > 0 ? msg.length : 0;
    this.bucket.reserve(reserved);
    this.queue.push({ id: msg.id, hex: b4a2.toString(msg.sha256, "hex"), offset: msg.offset, length: msg.length, cancelled: false, reserved });
    this.drainQueue();
  }
  onCancel(id) {
    const i = this.queue.findIndex((r) => r.id === id);
    if (i >= 0) this.unreserve(this.queue.splice(i, 1)[0]);
    const a = this.active.get(id);
    if (a) a.cancelled = true;
  }
  drainQueue() {
    while (!this.closedFlag && this.active.size < this.opts.serveConcurrency && this.queue.length > 0) {
      const r = this.queue.shift();
      this.active.set(r.id, r);
      void this.serveOne(r).finally(() => {
        this.active.delete(r.id);
        this.drainQueue();
      });
    }
  }
  unreserve(r) {
    this.bucket.release(r.reserved);
    r.reserved = 0;
  }
  async serveOne(r) {
    try {
      await this.serveReserved(r);
    } finally {
      this.unreserve(r);
    }
  }
  async serveReserved(r) {
    let bytes;
    try {
      bytes = await this.opts.serve(r.hex, r.offset, r.length);
    } catch (err) {
      if (!r.cancelled && !this.closedFlag) this.send.reject.send({ id: r.id, reason: "error" });
      this.emitSafely("serve-error", err, r.hex);
      return;
    }
    if (r.cancelled || this.closedFlag) return;
    if (bytes === null) return void this.send.reject.send({ id: r.id, reason: "not-found" });
    const payload = bytes.byteLength > r.length ? bytes.subarray(0, r.length) : bytes;
    this.unreserve(r);
    try {
      await this.bucket.take(payload.byteLength, this.closeController.signal);
      await this.drained();
    } catch {
      return;
    }
    if (r.cancelled || this.closedFlag) return;
    this.send.data.send({ id: r.id, bytes: payload });
    this.bytesUp += payload.byteLength;
    this.emitSafely("upload", r.hex, payload.byteLength);
  }
  /** Waits for the connection's write buffer to drain, so a slow reader cannot make us buffer without bound. */
  drained() {
    if (this.channel.drained || this.closedFlag) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }
  onDrain() {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
  // ---- announcements
  onHave(msg) {
    if (msg.reset) {
      this.remoteState.blobs.clear();
      this.remotePieces.clear();
      this.remotePieceCount = 0;
    }
    if (this.remoteState.blobs.size + msg.hashes.length > this.opts.maxRemoteBlobs) {
      throw new ProtocolViolation(`announced more than ${this.opts.maxRemoteBlobs} blobs`);
    }
    const hashes = msg.hashes.map((h) => b4a2.toString(h, "hex"));
    for (const h of hashes) this.remoteState.blobs.add(h);
    this.remoteState.product = msg.product;
    this.remoteState.rev = msg.rev;
    this.emitSafely("have", { product: msg.product, rev: msg.rev, reset: msg.reset, hashes });
  }
  onHavePiece(msg) {
    const hex = b4a2.toString(msg.sha256, "hex");
    if (this.remoteState.blobs.has(hex)) return;
    let entry = this.remotePieces.get(hex);
    if (!entry || entry.pieceSize !== msg.pieceSize) {
      if (entry) this.remotePieceCount -= entry.indexes.size;
      entry = { pieceSize: msg.pieceSize, indexes: /* @__PURE__ */ new Set() };
      this.remotePieces.set(hex, entry);
    }
    if (entry.indexes.has(msg.index)) return;
    if (this.remotePieceCount + 1 > this.opts.maxRemotePieces) throw new ProtocolViolation(`announced more than ${this.opts.maxRemotePieces} pieces`);
    entry.indexes.add(msg.index);
    this.remotePieceCount++;
    this.emitSafely("have-piece", { sha256: hex, pieceSize: msg.pieceSize, index: msg.index });
  }
};
var ProtocolViolation = class extends Error {
  name = "ProtocolViolation";
};
var rawDecode = c2.raw.decode;
function toHashBytes(h) {
  if (typeof h === "string") {
    if (!HEX64.test(h)) throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `not a SHA-256 hex digest: ${JSON.stringify(h.slice(0, 80))}`);
    return b4a2.from(h, "hex");
  }
  if (h.byteLength !== 32) throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `a SHA-256 is 32 bytes, got ${h.byteLength}`);
  return h;
}
function toHex(h) {
  return typeof h === "string" ? h : b4a2.toString(h, "hex");
}
function clampInt(n, min, max) {
  return Math.max(min, Math.min(max, Math.floor(n)));
}
function pieceFailure(err) {
  if (!(err instanceof UpswarmError)) return void 0;
  return err.details?.reason;
}

export {
  TokenBucket,
  DEFAULT_MAX_REMOTE_BLOBS,
  PieceSession,
  pieceFailure
};
