import {
  SwarmTransport,
  loadOrCreateKeyPair,
  openFeed,
  topicFor
} from "./chunk-2C5K53AI.js";
import {
  DEFAULT_MAX_REMOTE_BLOBS,
  PieceSession,
  TokenBucket
} from "./chunk-IAH3INNS.js";
import {
  ensureResources,
  openBlobStore
} from "./chunk-2A6R4MPD.js";
import {
  BlobStore,
  writeFileAtomic
} from "./chunk-4DN6M2O5.js";
import {
  RELEASE_STREAM,
  REPO_SERVICE,
  actorEventSubject,
  repoSubject,
  serverConsumer,
  serverHeartbeat
} from "./chunk-ZEBQZC7Y.js";
import {
  SignedReleaseSchema,
  UUID_RE,
  blobsOf,
  decodeRelease,
  encodeRelease,
  fileEntries,
  manifestSha256
} from "./chunk-27MN4SFY.js";
import {
  endpoint,
  startService
} from "./chunk-LL5LKXZC.js";
import {
  UpswarmError,
  errorMessage,
  isUpswarmError
} from "./chunk-RP33VEIV.js";

// actors/repo-server/index.ts
import { Readable } from "node:stream";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createActor, fromPromise as fromPromise2 } from "xstate";
import { z } from "zod";

// machines/server-sync.machine.ts
import { assign, emit, setup, fromPromise } from "xstate";
var serverSyncMachine = setup({
  types: {
    context: {},
    events: {},
    input: {},
    emitted: {}
  },
  actors: {
    prepareConsumer: fromPromise(async () => {
    }),
    nextRelease: fromPromise(async () => null),
    syncRelease: fromPromise(
      async () => ({ permanent: false })
    ),
    acknowledge: fromPromise(async () => {
    })
  },
  delays: {
    retryDelay: ({ context }) => Math.min(3e4, 250 * 2 ** Math.min(context.failures, 7))
  },
  guards: {
    gotRelease: ({ event }) => event.output !== null,
    hasPending: ({ context }) => context.pending !== null,
    permanentFailure: ({ event }) => event.output.permanent
  }
}).createMachine({
  id: "serverSync",
  context: ({ input }) => ({ serverId: input.serverId, pending: null, lastError: null, failures: 0 }),
  initial: "preparing",
  on: { stop: ".stopped" },
  states: {
    preparing: {
      invoke: {
        src: "prepareConsumer",
        input: ({ context }) => ({ serverId: context.serverId }),
        onDone: "waiting",
        onError: {
          target: "backoff",
          actions: assign({ lastError: ({ event }) => String(event.error), failures: ({ context }) => context.failures + 1 })
        }
      }
    },
    waiting: {
      invoke: {
        src: "nextRelease",
        input: ({ context }) => ({ serverId: context.serverId }),
        onDone: [
          { guard: "gotRelease", target: "syncing", actions: assign({ pending: ({ event }) => event.output }) },
          { target: "waiting", reenter: true }
        ],
        onError: {
          target: "backoff",
          actions: assign({ lastError: ({ event }) => String(event.error), failures: ({ context }) => context.failures + 1 })
        }
      }
    },
    syncing: {
      invoke: {
        src: "syncRelease",
        input: ({ context }) => ({ release: context.pending }),
        onDone: [
          {
            guard: "permanentFailure",
            target: "rejecting",
            actions: [
              assign({ lastError: ({ event }) => event.output.permanent ? event.output.reason : null }),
              emit(({ context, event }) => ({
                type: "release.rejected",
                seq: context.pending.seq,
                reason: event.output.permanent ? event.output.reason : ""
              }))
            ]
          },
          { target: "acknowledging" }
        ],
        onError: {
          target: "backoff",
          actions: [
            assign({ lastError: ({ event }) => String(event.error), failures: ({ context }) => context.failures + 1 }),
            emit(({ context, event }) => ({ type: "sync.failed", seq: context.pending.seq, reason: String(event.error) }))
          ]
        }
      }
    },
    acknowledging: {
      invoke: {
        src: "acknowledge",
        input: ({ context }) => ({ release: context.pending, outcome: "synced" }),
        onDone: {
          target: "waiting",
          actions: [
            emit(({ context }) => ({
              type: "release.synced",
              product: context.pending.product,
              rev: context.pending.rev,
              seq: context.pending.seq
            })),
            assign({ pending: null, failures: 0, lastError: null })
          ]
        },
        onError: { target: "backoff", actions: assign({ failures: ({ context }) => context.failures + 1 }) }
      }
    },
    rejecting: {
      invoke: {
        src: "acknowledge",
        input: ({ context }) => ({ release: context.pending, outcome: "rejected" }),
        onDone: { target: "waiting", actions: assign({ pending: null, failures: 0 }) },
        onError: { target: "backoff", actions: assign({ failures: ({ context }) => context.failures + 1 }) }
      }
    },
    backoff: {
      after: {
        retryDelay: [{ guard: "hasPending", target: "syncing" }, { target: "preparing" }]
      }
    },
    stopped: { type: "final" }
  }
});

// actors/repo-server/repo-store.ts
import { mkdir, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
var RepoStore = class {
  dir;
  blobs;
  /** Temporary files of the atomic writes (same file system as their targets). */
  tmpDir;
  state = { lastSeq: 0, keys: {}, synced: {} };
  releases = /* @__PURE__ */ new Map();
  constructor(dir) {
    this.dir = dir;
    this.blobs = new BlobStore(join(dir, "blobs"));
    this.tmpDir = join(dir, "tmp");
  }
  /** Loads the state and every stored release (all were verified before they were written). */
  async open() {
    await mkdir(join(this.dir, "releases"), { recursive: true });
    try {
      this.state = JSON.parse(await readFile(join(this.dir, "state.json"), "utf8"));
    } catch {
      this.state = { lastSeq: 0, keys: {}, synced: {} };
    }
    for (const product of await readdir(join(this.dir, "releases"))) {
      const key = this.state.keys[product];
      if (!key) continue;
      for (const name of await readdir(join(this.dir, "releases", product))) {
        if (!name.endsWith(".json")) continue;
        const bytes = await readFile(join(this.dir, "releases", product, name));
        const release = decodeRelease(bytes, key, `local store ${this.dir}`);
        if (release.manifest.rev <= (this.state.synced[product] ?? 0)) this.remember(bytes, release);
      }
    }
  }
  get lastSeq() {
    return this.state.lastSeq;
  }
  get synced() {
    return { ...this.state.synced };
  }
  keyOf(product) {
    return this.state.keys[product];
  }
  release(product, rev) {
    return this.releases.get(product)?.get(rev);
  }
  revisions(product) {
    const revs = [...this.releases.get(product)?.values() ?? []];
    return revs.map(({ release, sha }) => ({
      rev: release.manifest.rev,
      manifestSha256: sha,
      label: release.manifest.label ?? null,
      createdAt: release.manifest.createdAt
    })).sort((a, b) => a.rev - b.rev);
  }
  products() {
    return [...this.releases.keys()];
  }
  /** Records a release whose blobs are all in the store and verified: now it may be served. */
  async markSynced(seq, bytes, release) {
    const { product, rev } = release.manifest;
    const dir = join(this.dir, "releases", product);
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(join(dir, `${rev}.json`), bytes, this.tmpDir);
    this.state = {
      lastSeq: Math.max(this.state.lastSeq, seq),
      keys: { ...this.state.keys, [product]: this.state.keys[product] ?? release.publicKey },
      synced: { ...this.state.synced, [product]: Math.max(this.state.synced[product] ?? 0, rev) }
    };
    await writeFileAtomic(join(this.dir, "state.json"), JSON.stringify(this.state), this.tmpDir);
    this.remember(bytes, release);
  }
  /** Records that a message was processed without a release (rejected), so replay skips it. */
  async markSkipped(seq) {
    this.state = { ...this.state, lastSeq: Math.max(this.state.lastSeq, seq) };
    await writeFileAtomic(join(this.dir, "state.json"), JSON.stringify(this.state), this.tmpDir);
  }
  remember(bytes, release) {
    const { product, rev } = release.manifest;
    let revs = this.releases.get(product);
    if (!revs) this.releases.set(product, revs = /* @__PURE__ */ new Map());
    revs.set(rev, { bytes, release, sha: manifestSha256(release.manifest) });
  }
};

// actors/repo-server/seed.ts
import { join as join2 } from "node:path";
import b4a from "b4a";
var NODE_KEY_FILE = "node-key.json";
var FEEDS_DIR = "feeds";
async function startSeed(opts) {
  const { store, log } = opts;
  const keyPair = await loadOrCreateKeyPair(join2(opts.dataDir, NODE_KEY_FILE));
  const sessions = /* @__PURE__ */ new Set();
  const feeds = /* @__PURE__ */ new Map();
  const opening = /* @__PURE__ */ new Map();
  const topics = /* @__PURE__ */ new Set();
  const held = /* @__PURE__ */ new Set();
  let joins = Promise.resolve();
  let bytesUp = 0;
  let closing = false;
  const serve = (sha256, offset, length) => store.blobs.readRangeIfPresent(sha256, offset, length);
  const onConnection = (stream) => {
    for (const feed of feeds.values()) feed.replicate(stream);
    const session = new PieceSession(stream, { serve, uploadBucket: opts.uploadBucket });
    session.on("upload", (_sha, bytes) => {
      bytesUp += bytes;
    });
    session.on("protocol-error", (err) => log(`swarm: ${err.message}`));
    session.on("serve-error", (err, sha) => log(`swarm: cannot serve blob ${sha}: ${errorMessage(err)}`));
    session.on("close", () => sessions.delete(session));
    void session.opened().then((ok) => {
      if (!ok || session.closed) return;
      session.announceHave(held, { reset: true });
      sessions.add(session);
    });
  };
  const wildcard = opts.host === "0.0.0.0" || opts.host === "::";
  if (wildcard && !opts.advertiseHost) {
    throw new UpswarmError(
      "UPSWARM_E_CONFIG",
      `the swarm listener binds ${opts.host} (every interface): say which address clients should dial with --swarm-advertise HOST`
    );
  }
  const transport = new SwarmTransport({
    keyPair,
    onConnection,
    ...opts.bootstrap && opts.bootstrap.length > 0 ? { bootstrap: opts.bootstrap, dhtHost: opts.host } : {}
  });
  transport.on("refused", (peer, reason) => log(`swarm: refused ${peer ?? "a connection"}: ${reason}`));
  const address = await transport.listen(opts.host, opts.port);
  const hold = (product, rev) => {
    const found = store.release(product, rev);
    if (!found) return [];
    const added = [];
    for (const sha of blobsOf(found.release.manifest).keys()) {
      if (held.size >= DEFAULT_MAX_REMOTE_BLOBS) break;
      if (held.has(sha)) continue;
      held.add(sha);
      added.push(sha);
    }
    return added;
  };
  const announceTopic = (topic) => {
    const hex = b4a.toString(topic, "hex");
    if (!opts.bootstrap?.length || topics.has(hex)) return;
    topics.add(hex);
    joins = joins.then(() => transport.join(topic, { server: true, client: false })).catch((err) => {
      if (!closing) log(`swarm: cannot announce topic ${hex} on the DHT: ${errorMessage(err)}`);
    });
  };
  const joinRelease = (product, rev) => {
    announceTopic(topicFor(product));
    announceTopic(topicFor(product, rev));
  };
  for (const product of store.products()) {
    for (const { rev } of store.revisions(product).reverse()) {
      hold(product, rev);
      joinRelease(product, rev);
    }
  }
  const seed = {
    transport,
    info: () => ({
      publicKey: b4a.toString(keyPair.publicKey, "hex"),
      host: opts.advertiseHost ?? address.host,
      port: address.port,
      feeds: [...feeds.keys()],
      peers: transport.connections.size,
      bytesUp
    }),
    seedFeed(publisherKey) {
      const pending = opening.get(publisherKey);
      if (pending) return pending;
      const p = (async () => {
        const feed = await openFeed({ storageDir: join2(opts.dataDir, FEEDS_DIR, publisherKey), publisherPublicKey: publisherKey });
        if (closing) return void await feed.close();
        feed.on("rejected", (err) => log(`release feed ${publisherKey}: ${err.message}`));
        feed.on("conflict", (err) => log(`ALERT: ${err.message}`));
        feeds.set(publisherKey, feed);
        for (const { stream } of transport.connections.values()) feed.replicate(stream);
      })().catch((err) => {
        opening.delete(publisherKey);
        log(`cannot seed the release feed of publisher ${publisherKey}: ${errorMessage(err)}`);
      });
      opening.set(publisherKey, p);
      return p;
    },
    feed: (publisherKey) => feeds.get(publisherKey),
    synced(product, rev) {
      const added = hold(product, rev);
      if (added.length > 0) for (const s of sessions) s.announceHave(added, { reset: false });
      joinRelease(product, rev);
    },
    flushed: async () => {
      for (let seen = null; seen !== joins; ) await (seen = joins);
    },
    async close() {
      closing = true;
      await transport.close();
      await Promise.allSettled([...opening.values()]);
      await Promise.all([...feeds.values()].map((f) => f.close().catch(() => {
      })));
    }
  };
  for (const product of store.products()) {
    const key = store.keyOf(product);
    if (key) void seed.seedFeed(key);
  }
  return seed;
}

// actors/repo-server/index.ts
var HEARTBEAT_MS = 1e3;
var MAX_RANGE = 4 * 1024 * 1024;
var Product = z.string().regex(UUID_RE);
var Rev = z.number().int().min(1);
var Hex64 = z.string().regex(/^[0-9a-f]{64}$/);
async function startRepoServer(opts) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(opts.id)) {
    throw new UpswarmError("UPSWARM_E_CONFIG", `server id must be 1-64 letters, digits, - or _ (got ${JSON.stringify(opts.id)})`);
  }
  const { nc, id } = opts;
  const log = opts.log ?? (() => {
  });
  const weight = opts.weight ?? 1;
  const store = new RepoStore(opts.dataDir);
  await store.open();
  const { replicas } = await ensureResources(nc);
  const os = await openBlobStore(nc, replicas);
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const durable = serverConsumer(id);
  const inHand = /* @__PURE__ */ new Map();
  const counters = { inflight: 0, requests: 0, bytesServed: 0 };
  const startedAt = (/* @__PURE__ */ new Date()).toISOString();
  const uploads = new TokenBucket(opts.maxUploadRate ?? 0);
  const writing = /* @__PURE__ */ new Set();
  const whileWriting = (fn) => (args) => {
    const p = fn(args);
    writing.add(p);
    p.then(() => writing.delete(p), () => writing.delete(p));
    return p;
  };
  let seed;
  const machine = serverSyncMachine.provide({
    actors: {
      // A server (re)starts from what its own disk holds: a wiped server replays everything.
      prepareConsumer: fromPromise2(async () => {
        const config = {
          durable_name: durable,
          ack_policy: AckPolicy.Explicit,
          max_ack_pending: 1,
          ack_wait: 6e10,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: store.lastSeq + 1
        };
        const existing = await jsm.consumers.info(RELEASE_STREAM, durable).catch(() => null);
        if (existing && existing.ack_floor.stream_seq !== store.lastSeq) await jsm.consumers.delete(RELEASE_STREAM, durable);
        if (!existing || existing.ack_floor.stream_seq !== store.lastSeq) await jsm.consumers.add(RELEASE_STREAM, config);
      }),
      nextRelease: fromPromise2(async () => {
        const consumer = await js.consumers.get(RELEASE_STREAM, durable);
        const msg = await consumer.next({ expires: 5e3 });
        if (!msg) return null;
        let product = "";
        let rev = 0;
        try {
          const release = SignedReleaseSchema.parse(msg.json());
          product = release.manifest.product;
          rev = release.manifest.rev;
        } catch {
        }
        inHand.set(msg.seq, msg);
        return { seq: msg.seq, product, rev };
      }),
      syncRelease: fromPromise2(whileWriting(async ({ input: { release }, signal }) => {
        const msg = inHand.get(release.seq);
        if (!msg) throw new UpswarmError("UPSWARM_E_IO", `release message ${release.seq} is no longer in hand`);
        let signed;
        try {
          const parsed = SignedReleaseSchema.parse(msg.json());
          const key = store.keyOf(parsed.manifest.product) ?? parsed.publicKey;
          signed = decodeRelease(msg.data, key, `release stream seq ${msg.seq}`);
        } catch (err) {
          return { permanent: true, reason: errorMessage(err) };
        }
        void seed.seedFeed(signed.publicKey);
        if (signed.manifest.rev <= (store.synced[signed.manifest.product] ?? 0)) return { permanent: false };
        const keepAlive = setInterval(() => msg.working(), 1e4);
        try {
          for (const [sha, size] of blobsOf(signed.manifest)) {
            if (await store.blobs.has(sha)) continue;
            signal.throwIfAborted();
            const obj = await os.get(sha);
            if (!obj) throw new UpswarmError("UPSWARM_E_NOT_FOUND", `blob ${sha} of ${signed.manifest.product} r${signed.manifest.rev} is not in the object store yet`);
            const source = Readable.fromWeb(obj.data);
            const stop = () => void source.destroy(new UpswarmError("UPSWARM_E_IO", `server ${id} is stopping`));
            signal.addEventListener("abort", stop, { once: true });
            try {
              await store.blobs.put(sha, source, `object store (release seq ${msg.seq})`, size);
            } finally {
              signal.removeEventListener("abort", stop);
            }
          }
        } finally {
          clearInterval(keepAlive);
        }
        signal.throwIfAborted();
        await store.markSynced(msg.seq, encodeRelease(signed), signed);
        return { permanent: false };
      })),
      acknowledge: fromPromise2(whileWriting(async ({ input: { release, outcome } }) => {
        const msg = inHand.get(release.seq);
        inHand.delete(release.seq);
        if (!msg) return;
        if (outcome === "rejected") {
          await store.markSkipped(release.seq);
          msg.term();
        } else {
          if (store.lastSeq < release.seq) await store.markSkipped(release.seq);
          await msg.ackAck();
        }
      }))
    }
  });
  const actor = createActor(machine, { input: { serverId: id } });
  actor.on("release.synced", (e) => log(`synced ${e.product} r${e.rev} (seq ${e.seq})`));
  actor.on("release.rejected", (e) => log(`rejected release seq ${e.seq}: ${e.reason}`));
  actor.on("sync.failed", (e) => log(`sync of seq ${e.seq} failed, will retry: ${e.reason}`));
  actor.subscribe({
    next: (snap) => nc.publish(actorEventSubject("repo-server", id), JSON.stringify({ state: snap.value, synced: store.synced })),
    error: (err) => log(`sync actor failed: ${errorMessage(err)}`)
  });
  const service = await startService(nc, {
    name: REPO_SERVICE,
    version: "1.0.0",
    description: `upswarm repository server ${id}`,
    metadata: { id, weight: String(weight) },
    endpoints: {
      revs: endpoint(repoSubject(id, "revs"), z.object({ product: Product }), ({ product }) => tracked(async () => {
        const revs = store.revisions(product);
        return { product, server: id, latest: revs.at(-1)?.rev ?? 0, revs };
      })),
      manifest: endpoint(
        repoSubject(id, "manifest"),
        z.object({ product: Product, rev: Rev }),
        ({ product, rev }) => tracked(async () => syncedRelease(product, rev).bytes)
      ),
      sha1s: endpoint(repoSubject(id, "sha1s"), z.object({ product: Product, rev: Rev }), ({ product, rev }) => tracked(async () => {
        const { release, sha } = syncedRelease(product, rev);
        return { product, rev, manifestSha256: sha, files: fileEntries(release.manifest).map((e) => ({ path: e.path, sha1: e.sha1 })) };
      })),
      range: endpoint(
        repoSubject(id, "range"),
        z.object({ sha256: Hex64, offset: z.number().int().min(0), length: z.number().int().min(1).max(MAX_RANGE) }),
        ({ sha256, offset, length }) => tracked(async () => {
          const size = await store.blobs.size(sha256);
          if (size === void 0) throw new UpswarmError("UPSWARM_E_NOT_FOUND", `server ${id} has no blob ${sha256}`);
          if (offset >= size && !(offset === 0 && size === 0)) {
            throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `range offset ${offset} is beyond the end of blob ${sha256} (${size} bytes)`);
          }
          const bytes = await store.blobs.readRange(sha256, offset, Math.min(length, size - offset));
          await uploads.take(bytes.length);
          counters.bytesServed += bytes.length;
          return bytes;
        })
      )
    }
  });
  function syncedRelease(product, rev) {
    const found = store.release(product, rev);
    if (!found) throw new UpswarmError("UPSWARM_E_UNKNOWN_REVISION", `server ${id} has no synced revision ${rev} of ${product}`);
    return found;
  }
  async function tracked(fn) {
    counters.requests++;
    counters.inflight++;
    try {
      return await fn();
    } catch (err) {
      if (!isUpswarmError(err)) log(`request failed: ${errorMessage(err)}`);
      throw err;
    } finally {
      counters.inflight--;
    }
  }
  try {
    seed = await startSeed({
      store,
      dataDir: opts.dataDir,
      host: opts.swarmHost ?? "127.0.0.1",
      port: opts.swarmPort ?? 0,
      ...opts.swarmAdvertise ? { advertiseHost: opts.swarmAdvertise } : {},
      ...opts.bootstrap ? { bootstrap: opts.bootstrap } : {},
      uploadBucket: uploads,
      log
    });
  } catch (err) {
    await service.stop().catch(() => {
    });
    throw err;
  }
  const heartbeat = () => ({ id, weight, synced: store.synced, ...counters, startedAt, swarm: seed.info() });
  const beat = () => nc.publish(serverHeartbeat(id), JSON.stringify(heartbeat()));
  const timer = setInterval(beat, opts.heartbeatMs ?? HEARTBEAT_MS);
  actor.on("release.synced", (e) => {
    seed.synced(e.product, e.rev);
    beat();
  });
  actor.start();
  beat();
  return {
    id,
    store,
    actor,
    seed,
    heartbeat,
    async close() {
      clearInterval(timer);
      actor.send({ type: "stop" });
      actor.stop();
      await service.stop().catch(() => {
      });
      await seed.close();
      await Promise.allSettled([...writing]);
    }
  };
}

export {
  HEARTBEAT_MS,
  MAX_RANGE,
  startRepoServer
};
