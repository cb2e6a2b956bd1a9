import {
  publish
} from "./chunk-EVFMMDEE.js";
import "./chunk-B65YCFFG.js";
import "./chunk-XN3RHCU7.js";
import "./chunk-ZCUDO6HQ.js";
import "./chunk-PEHDTYHQ.js";
import {
  PROJECT_ROOT,
  spawnGuarded,
  stopChild,
  up
} from "./chunk-Y6HXYLSX.js";
import "./chunk-4WGPO4AC.js";
import "./chunk-O2WH55TW.js";
import "./chunk-GZTDGJDJ.js";
import "./chunk-B7YUUYMX.js";
import {
  formatBytes
} from "./chunk-EHBQHOMX.js";
import {
  connectNats
} from "./chunk-LW4KT72T.js";
import "./chunk-WQWQP4HQ.js";
import {
  SERVER_HEARTBEATS,
  proxySubject
} from "./chunk-M4ACGP5U.js";
import "./chunk-W5VBZNBS.js";
import "./chunk-TI5YD5TO.js";
import {
  generatePublisherKey
} from "./chunk-4NZCUDRR.js";
import {
  requestJson
} from "./chunk-UNO7TY7C.js";
import {
  UpswarmError
} from "./chunk-5DMJPWEV.js";

// actors/demo/index.ts
import { mkdtemp, rm as rm2 } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join as join3 } from "node:path";

// actors/demo/swarm.ts
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
var CLI = join(PROJECT_ROOT, "bin", "upswarm.mjs");
var SwarmClient = class {
  constructor(name, dir, env) {
    this.name = name;
    this.dir = dir;
    this.env = env;
  }
  name;
  dir;
  env;
  events = [];
  waiters = [];
  child;
  ready;
  /** The end of the daemon's log (stderr), for diagnostics. */
  stderrTail = "";
  /** What `upswarm init --json` reported: where the first revision's bytes came from. */
  initResult;
  /** Starts `upswarm daemon DIR --auto --json`; resolves with its READY payload. */
  async start(extra = []) {
    const child = spawnGuarded(process.execPath, [CLI, "daemon", this.dir, "--auto", "--json", ...extra], { stdio: ["ignore", "pipe", "pipe"], env: this.env });
    this.child = child;
    child.stderr.on("data", (d) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-8e3);
    });
    const lines = createInterface({ input: child.stdout });
    this.ready = await new Promise((resolve, reject) => {
      child.once("exit", (code) => reject(new UpswarmError("UPSWARM_E_PEER", `daemon ${this.name} exited (code ${code}) before it was ready: ${this.stderrTail.trim()}`)));
      lines.on("line", (line) => {
        if (line.startsWith("READY ")) return resolve(JSON.parse(line.slice(6)));
        let e;
        try {
          e = JSON.parse(line);
        } catch {
          return;
        }
        this.events.push(e);
        for (const w of [...this.waiters]) {
          if (w.test(e)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(e);
          }
        }
      });
    });
  }
  /** Resolves with the first event (already seen or to come) that passes `test`. */
  waitFor(test, timeoutMs = 12e4) {
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new UpswarmError(
        "UPSWARM_E_TIMEOUT",
        `client ${this.name}: no matching event after ${timeoutMs} ms; events: ${this.events.map((e) => e.event).join(" ")}; log:
${this.stderrTail.slice(-3e3)}`
      )), timeoutMs);
      this.waiters.push({ test, resolve: (e) => {
        clearTimeout(timer);
        resolve(e);
      } });
    });
  }
  /** The update that reached revision `rev`. */
  reached(rev, timeoutMs) {
    return this.waitFor((e) => e.event === "update.done" && e.to >= rev, timeoutMs);
  }
  async stop() {
    if (this.child) await stopChild(this.child);
  }
};
var Swarm = class {
  constructor(opts) {
    this.opts = opts;
  }
  opts;
  /** The product that publish and addClient work on; a test may switch to a fresh one. */
  product = crypto.randomUUID();
  key = generatePublisherKey();
  clients = [];
  launched;
  nc;
  get env() {
    const ep = this.launched.endpoints;
    return {
      ...process.env,
      UPSWARM_NATS: ep.nats.join(","),
      UPSWARM_BOOTSTRAP: ep.dhtBootstrap,
      UPSWARM_TRACKER: [ep.trackerHttp, ep.trackerUdp].filter(Boolean).join(",")
    };
  }
  async start() {
    const upOpts = {
      dir: join(this.opts.dir, "cluster"),
      roles: ["nats", "dht", "servers", "proxy", "tracker"],
      natsNodes: 3,
      servers: this.opts.servers ?? 3,
      weights: this.opts.weights,
      ...this.opts.serverMaxUploadRate ? { serverMaxUploadRate: this.opts.serverMaxUploadRate } : {},
      log: this.opts.log
    };
    this.launched = await up(upOpts);
    this.nc = await connectNats(this.launched.endpoints.nats, "upswarm-demo");
  }
  async publish(src, label) {
    return publish({ nc: this.nc, src, product: this.product, key: this.key, ...label ? { label } : {} });
  }
  /** Resolves when every healthy server of the pool has synced `rev` (from their heartbeats). */
  async serversSynced(rev, timeoutMs = 18e4) {
    const healthy = (await this.stats()).servers.filter((s) => s.healthy).map((s) => s.id);
    if (healthy.length === 0) throw new UpswarmError("UPSWARM_E_NO_SERVER", "no healthy server in the pool");
    const pending = new Set(healthy);
    const sub = this.nc.subscribe(SERVER_HEARTBEATS);
    const timer = setTimeout(() => sub.unsubscribe(), timeoutMs);
    for await (const msg of sub) {
      const hb = msg.json();
      if ((hb.synced?.[this.product] ?? 0) >= rev) pending.delete(hb.id);
      if (pending.size === 0) break;
    }
    clearTimeout(timer);
    sub.unsubscribe();
    if (pending.size > 0) throw new UpswarmError("UPSWARM_E_TIMEOUT", `servers ${[...pending].join(", ")} did not sync r${rev} within ${timeoutMs} ms`);
  }
  async stats() {
    return requestJson(this.nc, proxySubject("stats"), {});
  }
  /** Creates a working copy with `upswarm init` (at the newest revision, from the servers). */
  async addClient(name) {
    const dir = join(this.opts.dir, "clients", name);
    await mkdir(join(this.opts.dir, "clients"), { recursive: true });
    const init = JSON.parse(await run([CLI, "init", dir, "--product", this.product, "--pubkey", this.key.publicKey, "--json"], this.env));
    const client = new SwarmClient(name, dir, this.env);
    client.initResult = init;
    this.clients.push(client);
    return client;
  }
  /** Runs an `upswarm` command to completion and returns its stdout parsed as JSON. */
  async cli(args) {
    return JSON.parse(await run([CLI, ...args], this.env));
  }
  /** Stops a role process of the cluster: 'tracker', 'proxy', 'server-s1' … */
  async stopRole(name) {
    const child = this.launched.children.get(name);
    if (!child) throw new UpswarmError("UPSWARM_E_CONFIG", `no role ${name} in this swarm (have ${[...this.launched.children.keys()].join(", ")})`);
    await stopChild(child);
  }
  async stop() {
    await Promise.all(this.clients.map((c) => c.stop()));
    await this.nc?.close().catch(() => {
    });
    await this.launched?.stop();
  }
};
async function run(args, env) {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => out += d.toString());
  child.stderr.on("data", (d) => err += d.toString());
  const [code] = await once(child, "exit");
  if (code !== 0) throw new UpswarmError("UPSWARM_E_IO", `upswarm ${args.slice(1, 3).join(" ")} failed (exit ${code}): ${err.trim().slice(-1e3)}`);
  return out;
}

// actors/demo/tree-gen.ts
import { createHash } from "node:crypto";
import { mkdir as mkdir2, readdir, rm, writeFile, stat } from "node:fs/promises";
import { dirname, join as join2, relative } from "node:path";
function seededBytes(seed, size) {
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  for (let i = 0; off < size; i++) {
    const block = createHash("sha256").update(`${seed}:${i}`).digest();
    off += block.copy(out, off, 0, Math.min(32, size - off));
  }
  return out;
}
function rng(seed) {
  let state = createHash("sha256").update(seed).digest().readUInt32LE(0) || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}
function sizeMix(shape) {
  const r = rng(`${shape.seed}:sizes`);
  const raw = Array.from({ length: shape.files }, () => {
    const x = r();
    return x < 0.8 ? 256 + r() * 16128 : x < 0.97 ? 16384 + r() * 5e5 : 1e6 + r() * 8e6;
  });
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((s) => Math.max(1, Math.round(s / sum * shape.totalBytes)));
}
async function generateTree(root, shape) {
  const sizes = sizeMix(shape);
  let bytes = 0;
  for (const [i, size] of sizes.entries()) {
    const path = join2(root, `dir${i % 13}`, `sub${i % 5}`, `file${i}.dat`);
    await mkdir2(dirname(path), { recursive: true });
    await writeFile(path, seededBytes(`${shape.seed}:file${i}`, size));
    bytes += size;
  }
  return { files: sizes.length, bytes };
}
async function listFiles(root, dir = root) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const abs = join2(dir, e.name);
    if (e.isDirectory()) out.push(...await listFiles(root, abs));
    else if (e.isFile()) out.push(relative(root, abs));
  }
  return out.sort();
}
async function mutateTree(root, opts) {
  const r = rng(`${opts.seed}:mutate`);
  const files = await listFiles(root);
  const shuffled = files.map((f) => [r(), f]).sort((a, b) => a[0] - b[0]).map(([, f]) => f);
  const nChange = Math.max(1, Math.round(files.length * opts.changeFraction));
  const toChange = shuffled.slice(0, nChange);
  const toRemove = shuffled.slice(nChange, nChange + opts.remove);
  let changedBytes = 0;
  for (const f of toChange) {
    const size = (await stat(join2(root, f))).size;
    await writeFile(join2(root, f), seededBytes(`${opts.seed}:${f}`, size));
    changedBytes += size;
  }
  for (const f of toRemove) await rm(join2(root, f));
  for (let i = 0; i < opts.add; i++) {
    const size = 1024 + Math.floor(r() * 2e5);
    const path = join2(root, "added", `${opts.seed}-${i}.dat`);
    await mkdir2(dirname(path), { recursive: true });
    await writeFile(path, seededBytes(`${opts.seed}:add${i}`, size));
    changedBytes += size;
  }
  return { changed: toChange.length, added: opts.add, removed: toRemove.length, changedBytes };
}

// actors/demo/index.ts
async function runDemo(opts) {
  const started = Date.now();
  const say = (msg) => {
    if (!opts.json) process.stdout.write(`${msg}
`);
  };
  const dir = await mkdtemp(join3(tmpdir(), "upswarm-demo-"));
  const swarm = new Swarm({ dir, servers: 3, weights: [5, 1, 1] });
  try {
    say("\u25B8 starting the embedded cluster: 3 NATS nodes (JetStream), DHT bootstrap, 3 repository servers (weights 5,1,1), proxy, tracker");
    await swarm.start();
    const src = join3(dir, "release");
    const r1 = await generateTree(src, { files: opts.files, totalBytes: opts.totalBytes, seed: "demo-r1" });
    const p1 = await swarm.publish(src, "1.0.0");
    say(`\u25B8 published r1 of product ${swarm.product}: ${r1.files} files, ${formatBytes(r1.bytes)} (manifest ${p1.manifestSha256.slice(0, 16)}\u2026)`);
    await swarm.serversSynced(1);
    const before = await swarm.stats();
    say(`\u25B8 ${opts.clients} clients: upswarm init (working copies at r1), then upswarm daemon --auto`);
    const clients = await Promise.all(Array.from({ length: opts.clients }, (_, i) => swarm.addClient(`c${i + 1}`)));
    await Promise.all(clients.map((c) => c.start()));
    const r2 = await mutateTree(src, { seed: "demo-r2", changeFraction: 0.2, add: 12, remove: 6 });
    const upgradeStart = Date.now();
    const p2 = await swarm.publish(src, "2.0.0");
    say(`\u25B8 published r2: ${r2.changed} files changed, ${r2.added} added, ${r2.removed} removed (${formatBytes(r2.changedBytes)} new content; manifest ${p2.manifestSha256.slice(0, 16)}\u2026)`);
    say("  client  time      from servers  from peers");
    const done = await Promise.all(clients.map(async (c) => {
      const d = await c.reached(2, 18e4);
      say(`  ${c.name.padEnd(6)}  ${(d.ms / 1e3).toFixed(1).padStart(5)} s  ${formatBytes(d.bytesFromServers).padStart(12)}  ${formatBytes(d.bytesFromPeers).padStart(10)}`);
      return { client: c, d };
    }));
    const upgradeSeconds = (Date.now() - upgradeStart) / 1e3;
    const { status } = await import("./updater-3A2HJUJU.js");
    let allCurrent = true;
    for (const c of clients) {
      const s = await status(c.dir);
      allCurrent &&= s.rev === 2 && s.files.every((f) => f.status === "current");
    }
    const after = await swarm.stats();
    const servers = serverShares(before.servers, after.servers);
    const victim = clients[0];
    await victim.stop();
    const rbStart = Date.now();
    const rb = await swarm.cli(["rollback", victim.dir, "--rev", "1", "--json"]);
    const rollback = { client: victim.name, ...rb, seconds: (Date.now() - rbStart) / 1e3 };
    const sum = (f) => done.reduce((n, x) => n + f(x.d), 0);
    const reasons = {};
    for (const { d } of done) for (const [k, v] of Object.entries(d.sources.serverReasons)) reasons[k] = (reasons[k] ?? 0) + v;
    const summary = {
      clients: opts.clients,
      release: { r1: { files: r1.files, bytes: r1.bytes }, r2 },
      upgrade: {
        seconds: upgradeSeconds,
        bytesFromServers: sum((d) => d.bytesFromServers),
        bytesFromPeers: sum((d) => d.bytesFromPeers),
        serverBytesPerChangedByte: sum((d) => d.bytesFromServers) / r2.changedBytes,
        piecesVerified: sum((d) => d.sources.piecesFromPeers + d.sources.piecesFromServers),
        badPieces: sum((d) => d.sources.badPieces),
        serverReasons: reasons,
        perClient: done.map(({ client, d }) => ({ client: client.name, ms: d.ms, bytesFromServers: d.bytesFromServers, bytesFromPeers: d.bytesFromPeers }))
      },
      servers,
      verified: { clients: clients.length, allCurrentAtR2: allCurrent },
      rollback,
      totalSeconds: (Date.now() - started) / 1e3
    };
    if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}
`);
    else say(render(summary));
    if (!allCurrent) process.exitCode = 1;
    return summary;
  } finally {
    await swarm.stop();
    if (!opts.keep) await rm2(dir, { recursive: true, force: true });
  }
}
function serverShares(before, after) {
  const rows = after.map((s) => {
    const b = before.find((x) => x.id === s.id);
    return { id: s.id, weight: s.weight, requests: s.requests - (b?.requests ?? 0), bytesServed: s.bytesServed - (b?.bytesServed ?? 0), assigned: s.assigned - (b?.assigned ?? 0), share: 0 };
  });
  const total = rows.reduce((n, r) => n + r.assigned, 0) || 1;
  for (const r of rows) r.share = r.assigned / total;
  return rows;
}
function render(s) {
  const u = s.upgrade;
  return [
    "",
    "\u2501\u2501 summary \u2501\u2501",
    `upgrade r1 \u2192 r2 of ${s.clients} clients: ${u.seconds.toFixed(1)} s until the last one was verified`,
    `  bytes from servers: ${formatBytes(u.bytesFromServers)} (${u.serverBytesPerChangedByte.toFixed(2)}\xD7 the changed content)`,
    `  bytes from peers:   ${formatBytes(u.bytesFromPeers)}`,
    `  pieces verified against the signed manifest: ${u.piecesVerified}; bad pieces: ${u.badPieces}`,
    `  why servers were asked: ${Object.entries(u.serverReasons).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    "server pool (weighted round-robin, assignments by the proxy during the run):",
    ...s.servers.map((r) => `  ${r.id}  weight ${r.weight}  assigned ${r.assigned} (${(r.share * 100).toFixed(0)}%)  requests ${r.requests}  served ${formatBytes(r.bytesServed)}`),
    `verified: ${s.verified.clients} working copies, all files current at r2: ${s.verified.allCurrentAtR2 ? "yes" : "NO"}`,
    `rollback of ${s.rollback.client}: r${s.rollback.from} \u2192 r${s.rollback.to} from ${s.rollback.source} history in ${s.rollback.seconds.toFixed(1)} s`,
    `total ${s.totalSeconds.toFixed(1)} s`
  ].join("\n");
}
export {
  runDemo
};
