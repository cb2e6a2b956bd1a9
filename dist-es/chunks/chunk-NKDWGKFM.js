import {
  HeartbeatForFeed
} from "./chunk-T5RVPTZM.js";
import {
  HEARTBEAT_MS
} from "./chunk-WXI5373J.js";
import {
  MAX_RELEASE_BLOCK_BYTES,
  SwarmTransport,
  openFeed
} from "./chunk-2C5K53AI.js";
import {
  ensureResources,
  openBlobStore
} from "./chunk-2A6R4MPD.js";
import {
  withRetry
} from "./chunk-OI7SFTYE.js";
import {
  REV_HEADER,
  lastRelease
} from "./chunk-DOGSJQR3.js";
import {
  RELEASE_STREAM,
  RELEASE_SUBJECTS,
  SERVER_HEARTBEATS,
  releaseSubject
} from "./chunk-ZEBQZC7Y.js";
import {
  META_DIR,
  UUID_RE,
  canonicalJson,
  comparePaths,
  decodeRelease,
  encodeRelease,
  fileEntries,
  manifestSha256,
  signManifest
} from "./chunk-27MN4SFY.js";
import {
  PIECE_SIZE,
  hashFile
} from "./chunk-6PH2J2O4.js";
import {
  UpswarmError,
  errorMessage,
  isUpswarmError
} from "./chunk-RP33VEIV.js";

// actors/publisher/publish.ts
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { jetstream as jetstream2, jetstreamManager as jetstreamManager2 } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";

// infra/release/scan.ts
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
async function scanTree(root, opts = {}) {
  const pieceSize = opts.pieceSize ?? PIECE_SIZE;
  const entries = [];
  const files = /* @__PURE__ */ new Map();
  const toHash = [];
  async function walk(dirAbs, dirRel) {
    let names;
    try {
      names = await readdir(dirAbs);
    } catch (err) {
      throw new UpswarmError("UPSWARM_E_IO", `cannot read directory ${dirAbs}: ${err.message}`, { cause: err });
    }
    names.sort();
    for (const name of names) {
      if (dirRel === "" && name === META_DIR) continue;
      const abs = join(dirAbs, name);
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const st = await lstat(abs);
      if (st.isSymbolicLink()) entries.push({ path: rel, kind: "symlink", target: await readlink(abs) });
      else if (st.isDirectory()) {
        entries.push({ path: rel, kind: "dir", mode: st.mode & 4095 });
        await walk(abs, rel);
      } else if (st.isFile()) toHash.push({ rel, abs, mode: st.mode & 4095 });
    }
  }
  await walk(root, "");
  let done = 0;
  let bytes = 0;
  let next = 0;
  const workers = Array.from({ length: opts.concurrency ?? 2 }, async () => {
    while (next < toHash.length) {
      const f = toHash[next++];
      const h = await hashFile(f.abs, pieceSize);
      entries.push({ path: f.rel, kind: "file", mode: f.mode, ...h });
      files.set(f.rel, f.abs);
      done++;
      bytes += h.size;
      opts.onProgress?.({ files: done, bytes, path: f.rel });
    }
  });
  await Promise.all(workers);
  entries.sort((a, b) => comparePaths(a.path, b.path));
  return { entries, files };
}

// actors/publisher/feed.ts
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join as join2 } from "node:path";
import NoiseSecretStream from "@hyperswarm/secret-stream";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
var DEFAULT_SERVER_WAIT_MS = 2e3;
var DEFAULT_FEED_TIMEOUT_MS = 15e3;
var LISTEN_MS = Math.round(HEARTBEAT_MS * 1.5);
var SPREAD_MS = 2e3;
var MAX_CATCH_UP_ROUNDS = 3;
var STREAM_READ_MS = 5e3;
var MSG_ID_HEADER = "Nats-Msg-Id";
async function publishToFeed(opts) {
  const temp = opts.feedDir === void 0 ? await mkdtemp(join2(tmpdir(), "upswarm-feed-")) : null;
  const storageDir = opts.feedDir ?? temp;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_FEED_TIMEOUT_MS;
  let feed;
  let transport;
  let servers;
  try {
    feed = await openFeed({ storageDir, publisherPublicKey: opts.key.publicKey, writerKey: opts.key });
    const f = feed;
    transport = new SwarmTransport({ keyPair: NoiseSecretStream.keyPair(), onConnection: (stream) => f.replicate(stream) });
    servers = dialSeedingServers(opts.nc, transport, opts.key.publicKey);
    const reached = await servers.first(opts.serverWaitMs ?? DEFAULT_SERVER_WAIT_MS);
    if (!reached.ok) return { appended: false, reason: reached.reason };
    await feed.update({ minPeers: 1, timeoutMs });
    let added = 0;
    for (let round = 1; ; round++) {
      try {
        await appendFromStream(opts.nc, feed, opts.key.publicKey, opts.seq, () => {
          added++;
        });
        break;
      } catch (err) {
        const behind = isUpswarmError(err, "UPSWARM_E_PUBLISH") && err.details?.reason === "behind";
        if (!behind || round >= MAX_CATCH_UP_ROUNDS) throw err;
        await feed.update({ minPeers: 1, timeoutMs });
      }
    }
    const { product, rev } = opts.release.manifest;
    const mine = feed.releases(product).find((e) => e.rev === rev);
    if (!mine || mine.manifestSha256 !== manifestSha256(opts.release.manifest)) {
      return { appended: false, reason: `the release feed of key ${opts.key.publicKey} does not hold this release of ${product} r${rev}: ${describe(feed.latest(product))}` };
    }
    await feed.waitForRemote(feed.length, { timeoutMs });
    await servers.settled(LISTEN_MS);
    await feed.waitForRemote(feed.length, { all: true, timeoutMs: SPREAD_MS }).catch(() => {
    });
    return { appended: true, length: feed.length, added, servers: feed.remotesHolding(feed.length) };
  } catch (err) {
    return { appended: false, reason: `${errorMessage(err)}; the next publish appends this release too` };
  } finally {
    servers?.stop();
    await transport?.close();
    await feed?.close().catch(() => {
    });
    if (temp) await rm(temp, { recursive: true, force: true });
  }
}
function describe(entry) {
  return entry ? `its newest release of the product is r${entry.rev} (${entry.manifestSha256})` : "it holds no release of the product";
}
function dialSeedingServers(nc, transport, publisherKey) {
  const started = performance.now();
  const heard = /* @__PURE__ */ new Set();
  const dialled = /* @__PURE__ */ new Set();
  const dialling = /* @__PURE__ */ new Set();
  const failures = [];
  let connected = false;
  let onConnected = null;
  const sub = nc.subscribe(SERVER_HEARTBEATS, {
    callback: (err, msg) => {
      if (err) return;
      let hb;
      try {
        hb = HeartbeatForFeed.parse(msg.json());
      } catch {
        return;
      }
      heard.add(hb.id);
      if (!hb.swarm.feeds.includes(publisherKey) || dialled.has(hb.swarm.publicKey)) return;
      dialled.add(hb.swarm.publicKey);
      const dial = transport.dial(hb.swarm.host, hb.swarm.port, { remotePublicKey: Buffer.from(hb.swarm.publicKey, "hex") }).then(() => {
        connected = true;
        onConnected?.();
      }, (e) => {
        dialled.delete(hb.swarm.publicKey);
        failures.push(`server ${hb.id} at ${hb.swarm.host}:${hb.swarm.port}: ${errorMessage(e)}`);
      });
      dialling.add(dial);
      void dial.finally(() => dialling.delete(dial));
    }
  });
  return {
    async first(waitMs) {
      if (!connected) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, waitMs);
          onConnected = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      if (connected) return { ok: true };
      const why = heard.size === 0 ? `no repository server heartbeat within ${waitMs} ms` : `none of the ${heard.size} repository server(s) heard within ${waitMs} ms seeds the release feed of key ${publisherKey} yet` + (failures.length ? `, and dialling failed: ${failures.slice(-3).join("; ")}` : "");
      return { ok: false, reason: `${why}; the next publish appends this release too` };
    },
    async settled(listenMs) {
      const left = listenMs - (performance.now() - started);
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
      await Promise.allSettled([...dialling]);
    },
    stop() {
      sub.unsubscribe();
    }
  };
}
async function appendFromStream(nc, feed, publisherKey, untilSeq, onAppended) {
  const js = jetstream(nc);
  const startSeq = await streamSeqOf(nc, feed.releases().at(-1)) + 1;
  if (startSeq > untilSeq) return;
  const consumer = await withRetry(() => js.consumers.get(RELEASE_STREAM, {
    filter_subjects: RELEASE_SUBJECTS,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: startSeq
  }), { attempts: 10 });
  try {
    for (let seq = startSeq - 1; seq < untilSeq; ) {
      const msg = await consumer.next({ expires: STREAM_READ_MS });
      if (!msg) throw new UpswarmError("UPSWARM_E_TIMEOUT", `the release stream did not deliver sequence ${seq + 1} within ${STREAM_READ_MS} ms`);
      seq = msg.seq;
      if (msg.data.byteLength > MAX_RELEASE_BLOCK_BYTES) continue;
      let release;
      try {
        release = decodeRelease(msg.data, publisherKey, `release stream seq ${msg.seq}`);
      } catch {
        continue;
      }
      if (release.manifest.rev <= (feed.latest(release.manifest.product)?.rev ?? 0)) continue;
      if ((await feed.append(msg.data)).appended) onAppended();
    }
  } finally {
    await consumer.delete().catch(() => {
    });
  }
}
async function streamSeqOf(nc, entry) {
  if (!entry) return 0;
  const jsm = await jetstreamManager(nc);
  const last = await withRetry(() => lastRelease(jsm, entry.product), { attempts: 10 });
  if (!last) return 0;
  if (last.release.manifest.rev === entry.rev) return last.manifestSha256 === entry.manifestSha256 ? last.seq : 0;
  return findRevSeq(jetstream(nc), entry.product, entry.rev, entry.manifestSha256);
}
async function findRevSeq(js, product, rev, sha) {
  const consumer = await withRetry(() => js.consumers.get(RELEASE_STREAM, {
    filter_subjects: releaseSubject(product),
    deliver_policy: DeliverPolicy.All,
    headers_only: true
  }), { attempts: 10 });
  try {
    for (let i = 0; i < rev; i++) {
      const msg = await consumer.next({ expires: STREAM_READ_MS });
      if (!msg) return 0;
      if (Number(msg.headers?.get(REV_HEADER)) === rev) return msg.headers?.get(MSG_ID_HEADER) === sha ? msg.seq : 0;
      if (msg.info.pending === 0) return 0;
    }
    return 0;
  } finally {
    await consumer.delete().catch(() => {
    });
  }
}

// actors/publisher/publish.ts
var MAX_REV_ATTEMPTS = 20;
var WRONG_LAST_SEQUENCE = /wrong last sequence|10071/i;
async function publish(opts) {
  const product = opts.product.toLowerCase();
  if (!UUID_RE.test(product)) throw new UpswarmError("UPSWARM_E_CONFIG", `--product must be a UUID (got ${JSON.stringify(opts.product)})`);
  const { replicas } = await ensureResources(opts.nc);
  const { entries, files } = await scanTree(opts.src, {
    onProgress: (p) => opts.onProgress?.({ phase: "scan", done: p.files, bytes: p.bytes })
  });
  const fileList = entries.filter((e) => e.kind === "file");
  const bytes = fileList.reduce((n, e) => n + (e.kind === "file" ? e.size : 0), 0);
  const os = await withRetry(() => openBlobStore(opts.nc, replicas), { attempts: 30 });
  const { newBlobs, newBytes } = await uploadBlobs(os, entries, files, opts.onProgress);
  const jsm = await jetstreamManager2(opts.nc);
  const js = jetstream2(opts.nc);
  let mine;
  for (let attempt = 1; attempt <= MAX_REV_ATTEMPTS; attempt++) {
    const last = await withRetry(() => lastRelease(jsm, product), { attempts: 30 });
    if (mine && last && last.manifestSha256 === manifestSha256(mine.manifest)) return result(mine, last.seq, true);
    if (last && sameContent(last.release.manifest, entries, opts.label)) return result(last.release, last.seq, false);
    const rev = (last?.release.manifest.rev ?? 0) + 1;
    mine = signManifest({
      format: 1,
      product,
      rev,
      ...opts.label ? { label: opts.label } : {},
      createdAt: (/* @__PURE__ */ new Date()).toISOString(),
      pieceSize: PIECE_SIZE,
      ...last ? { parent: last.manifestSha256 } : {},
      entries
    }, opts.key);
    const sha = manifestSha256(mine.manifest);
    try {
      const ack = await withRetry(
        () => js.publish(releaseSubject(product), encodeRelease(mine), {
          msgID: sha,
          expect: { lastSubjectSequence: last?.seq ?? 0 },
          headers: revHeaders(rev),
          timeout: 5e3
        }),
        { attempts: 30, retryable: (err) => !WRONG_LAST_SEQUENCE.test(errorMessage(err)) }
      );
      return result(mine, ack.seq, true);
    } catch (err) {
      if (WRONG_LAST_SEQUENCE.test(errorMessage(err))) continue;
      throw new UpswarmError("UPSWARM_E_PUBLISH", `cannot append revision ${rev} of ${product} to the release stream: ${errorMessage(err)}`, { cause: err });
    }
  }
  throw new UpswarmError("UPSWARM_E_PUBLISH", `gave up after ${MAX_REV_ATTEMPTS} concurrent publishes of ${product} raced this one; retry`);
  async function result(release, seq, appended) {
    opts.onProgress?.({ phase: "feed", done: 0, bytes: 0 });
    const feed = opts.skipFeed ? { appended: false, reason: "skipped on request (--no-feed); the next publish appends this release to the feed" } : await publishToFeed({
      nc: opts.nc,
      key: opts.key,
      release,
      seq,
      ...opts.feedDir !== void 0 ? { feedDir: opts.feedDir } : {},
      ...opts.serverWaitMs !== void 0 ? { serverWaitMs: opts.serverWaitMs } : {},
      ...opts.feedTimeoutMs !== void 0 ? { timeoutMs: opts.feedTimeoutMs } : {}
    });
    return {
      product,
      rev: release.manifest.rev,
      label: release.manifest.label ?? null,
      manifestSha256: manifestSha256(release.manifest),
      files: fileEntries(release.manifest).length,
      bytes,
      newBlobs: appended ? newBlobs : 0,
      newBytes: appended ? newBytes : 0,
      unchanged: !appended,
      release,
      feed
    };
  }
}
function revHeaders(rev) {
  const h = headers();
  h.set(REV_HEADER, String(rev));
  return h;
}
function sameContent(manifest, entries, label) {
  return (manifest.label ?? void 0) === (label ?? void 0) && canonicalJson(manifest.entries) === canonicalJson(entries);
}
async function uploadBlobs(os, entries, files, onProgress) {
  const unique = /* @__PURE__ */ new Map();
  for (const e of entries) if (e.kind === "file" && !unique.has(e.sha256)) unique.set(e.sha256, { size: e.size, abs: files.get(e.path) });
  const todo = [...unique.entries()];
  let newBlobs = 0;
  let newBytes = 0;
  let done = 0;
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const [sha, { size, abs }] = todo[next++];
      const have = await withRetry(() => os.info(sha), { attempts: 30 });
      if (!have || have.deleted || have.size !== size) {
        await withRetry(async () => {
          const info = await os.put({ name: sha }, Readable.toWeb(createReadStream(abs, { highWaterMark: 128 * 1024 })));
          if (info.size !== size) throw new UpswarmError("UPSWARM_E_PUBLISH", `upload of ${abs} stored ${info.size} bytes, expected ${size}: the file changed during publish`);
        }, { attempts: 10, retryable: (err) => !(err instanceof UpswarmError) });
        newBlobs++;
        newBytes += size;
      }
      done++;
      onProgress?.({ phase: "upload", done, total: todo.length, bytes: newBytes });
    }
  };
  await Promise.all([worker(), worker()]);
  return { newBlobs, newBytes };
}

export {
  publish
};
