import {
  ensureResources
} from "./chunk-2A6R4MPD.js";
import {
  connectNats
} from "./chunk-OB7OCPB5.js";
import {
  UpswarmError
} from "./chunk-RP33VEIV.js";

// actors/launcher/index.ts
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join as join3, resolve as resolve2 } from "node:path";
import { createInterface } from "node:readline";

// infra/cluster/children.ts
import { spawn } from "node:child_process";
var watchdog;
var WATCHDOG_SCRIPT = [
  'pids=""',
  'while read p; do case "$p" in -*) pids=$(echo " $pids " | sed "s/ ${p#-} / /g");; *) pids="$pids $p";; esac; done',
  '[ -n "$pids" ] || exit 0',
  "kill -TERM $pids 2>/dev/null",
  "sleep 3",
  "kill -KILL $pids 2>/dev/null",
  "exit 0"
].join("\n");
function getWatchdog() {
  if (watchdog && watchdog.exitCode === null) return watchdog;
  watchdog = spawn("sh", ["-c", WATCHDOG_SCRIPT], { stdio: ["pipe", "ignore", "ignore"], detached: true });
  watchdog.unref();
  watchdog.stdin.unref?.();
  return watchdog;
}
function spawnGuarded(cmd, args, options = {}) {
  const child = spawn(cmd, args, options);
  const pid = child.pid;
  if (pid !== void 0) {
    getWatchdog().stdin?.write(`${pid}
`);
    child.once("exit", () => {
      if (watchdog?.stdin?.writable) watchdog.stdin.write(`-${pid}
`);
    });
  }
  return child;
}
async function stopChild(child, graceMs = 5e3) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve3) => child.once("exit", () => resolve3()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

// infra/cluster/nats-cluster.ts
import { existsSync as existsSync2, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join as join2 } from "node:path";

// infra/cluster/nats-server-bin.ts
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
var PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
var cached;
function natsServerBinary() {
  if (cached) return cached;
  const candidates = [];
  if (process.env.UPSWARM_NATS_SERVER) candidates.push(process.env.UPSWARM_NATS_SERVER);
  const recorded = join(PROJECT_ROOT, ".tools", "nats-server.path");
  if (existsSync(recorded)) candidates.push(readFileSync(recorded, "utf8").trim());
  candidates.push("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server");
  for (const path of candidates) {
    const r = spawnSync(path, ["--version"], { encoding: "utf8" });
    const m = r.status === 0 ? /v?(\d+)\.(\d+)\.(\d+)/.exec(r.stdout + r.stderr) : null;
    if (!m) continue;
    const version = [Number(m[1]), Number(m[2]), Number(m[3])];
    cached = { path, version, supportsSyncAlways: version[0] > 2 || version[0] === 2 && version[1] >= 10 };
    return cached;
  }
  throw new UpswarmError(
    "UPSWARM_E_NATS_SERVER_MISSING",
    "nats-server not found. Run `node scripts/ensure-tools.mjs` (it fetches Debian's package), or `apt-get install -y nats-server`, or set UPSWARM_NATS_SERVER to a nats-server binary."
  );
}

// infra/cluster/ports.ts
import { createServer } from "node:net";
function freePort() {
  return new Promise((resolve3, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => typeof addr === "object" && addr ? resolve3(addr.port) : reject(new Error("no port")));
    });
  });
}
async function freePorts(n) {
  const out = /* @__PURE__ */ new Set();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

// infra/cluster/nats-cluster.ts
var CLUSTER_NAME = "upswarm";
var READY_TIMEOUT_MS = 3e4;
var NatsNode = class {
  name;
  port;
  clusterPort;
  monitorPort;
  configFile;
  logFile;
  child;
  constructor(opts, configFile, logFile) {
    this.name = opts.name;
    this.port = opts.port;
    this.clusterPort = opts.clusterPort;
    this.monitorPort = opts.monitorPort;
    this.configFile = configFile;
    this.logFile = logFile;
  }
  get url() {
    return `nats://127.0.0.1:${this.port}`;
  }
  get pid() {
    return this.child?.pid;
  }
  get running() {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }
  /** Starts the process and resolves once it accepts client connections. */
  async start() {
    const bin = natsServerBinary();
    const child = spawnGuarded(bin.path, ["-c", this.configFile], { stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    let log = "";
    await new Promise((resolve3, reject) => {
      const timer = setTimeout(() => reject(this.startError(`not ready after ${READY_TIMEOUT_MS} ms`, log)), READY_TIMEOUT_MS);
      child.stderr?.on("data", (chunk) => {
        if (log.length < 64e3) log += chunk.toString();
        if (log.includes("Server is ready")) {
          clearTimeout(timer);
          resolve3();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(this.startError(`exited early (code ${code}, signal ${signal})`, log));
      });
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(this.startError(err.message, log));
      });
    });
    this.log = log;
    child.stderr?.removeAllListeners("data");
    child.stderr?.on("data", (chunk) => {
      this.log = (this.log + chunk.toString()).slice(-16e3);
    });
  }
  /** The tail of this node's log (stderr). */
  log = "";
  startError(what, log) {
    return new UpswarmError(
      "UPSWARM_E_CLUSTER_START",
      `nats-server ${this.name} (config ${this.configFile}) ${what}. Last output:
${log.slice(-2e3)}`
    );
  }
  /** Sends a signal (SIGKILL simulates a crash) and waits for the exit. */
  async kill(signal = "SIGKILL") {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve3) => child.once("exit", () => resolve3()));
    child.kill(signal);
    await exited;
  }
  async stop() {
    if (this.child) await stopChild(this.child);
  }
};
var NatsCluster = class _NatsCluster {
  nodes;
  dir;
  constructor(dir, nodes) {
    this.dir = dir;
    this.nodes = nodes;
  }
  get urls() {
    return this.nodes.map((n) => n.url);
  }
  /**
   * Starts the cluster. Free ports are chosen just before the servers bind them, so another
   * process may take one in between: a cluster that does not form is started again on fresh ports.
   */
  static async start(opts) {
    const fresh = !existsSync2(join2(opts.dir, "n1", "jetstream", "jetstream"));
    const attempts = fresh && !opts.basePort ? 3 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await _NatsCluster.startOnce(opts);
      } catch (err) {
        if (attempt >= attempts) throw err;
        rmSync(opts.dir, { recursive: true, force: true });
      }
    }
  }
  static async startOnce(opts) {
    const count = opts.nodes ?? 3;
    if (count < 1) throw new UpswarmError("UPSWARM_E_CONFIG", `--nats-nodes must be at least 1 (got ${count})`);
    const ports = opts.basePort ? Array.from({ length: count * 3 }, (_, i) => opts.basePort + i) : await freePorts(count * 3);
    const specs = Array.from({ length: count }, (_, i) => ({
      name: `n${i + 1}`,
      port: ports[i],
      clusterPort: ports[count + i],
      monitorPort: ports[2 * count + i]
    }));
    const bin = natsServerBinary();
    const nodes = specs.map((spec) => {
      const nodeDir = join2(opts.dir, spec.name);
      mkdirSync(join2(nodeDir, "jetstream"), { recursive: true });
      const configFile = join2(nodeDir, "nats-server.conf");
      writeFileSync(configFile, renderConfig(spec, specs, nodeDir, bin.supportsSyncAlways));
      return new NatsNode(spec, configFile, join2(nodeDir, "nats-server.log"));
    });
    const cluster = new _NatsCluster(opts.dir, nodes);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      await cluster.waitForJetStream();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }
  /**
   * Resolves once the JetStream meta group has a leader and every running node is a current
   * member of it: before that, R3 assets cannot be placed ("no suitable peers for placement").
   */
  async waitForJetStream(timeoutMs = READY_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    const running = this.nodes.filter((n) => n.running);
    let last = "";
    for (; ; ) {
      try {
        const jsz = async (node) => (await fetch(`http://127.0.0.1:${node.monitorPort}/jsz`)).json();
        if (running.length === 1) {
          await jsz(running[0]);
          return;
        }
        const leaderName = (await jsz(running[0])).meta_cluster?.leader;
        const leader = running.find((n) => n.name === leaderName);
        const meta = leader ? (await jsz(leader)).meta_cluster : void 0;
        const current = (meta?.replicas ?? []).filter((r) => r.current).length + 1;
        last = JSON.stringify(meta ?? { leader: leaderName });
        if (leader && current >= running.length) return;
      } catch (err) {
        last = err.message;
      }
      if (Date.now() > deadline) {
        const logs = running.map((n) => `--- ${n.name}
${n.log.split("\n").filter((l) => /\[(ERR|WRN)\]/.test(l)).slice(-5).join("\n")}`).join("\n");
        throw new UpswarmError("UPSWARM_E_CLUSTER_START", `JetStream meta group not formed after ${timeoutMs} ms in ${this.dir}: ${last}
${logs}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  async stop() {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }
};
function renderConfig(self, all, dir, syncAlways) {
  const routes = all.filter((n) => n !== self).map((n) => `    "nats://127.0.0.1:${n.clusterPort}"`);
  return [
    `server_name: ${self.name}`,
    `listen: "127.0.0.1:${self.port}"`,
    `http: "127.0.0.1:${self.monitorPort}"`,
    "max_payload: 8MB",
    "jetstream {",
    `  store_dir: ${JSON.stringify(join2(dir, "jetstream"))}`,
    "  max_memory_store: 256MB",
    "  max_file_store: 16GB",
    // Acknowledged writes are on disk before the ack (kill -9 and power loss safe).
    syncAlways ? "  sync_interval: always" : "",
    "}",
    // A single node runs JetStream standalone: a cluster block needs routes.
    ...all.length > 1 ? [
      "cluster {",
      `  name: ${CLUSTER_NAME}`,
      `  listen: "127.0.0.1:${self.clusterPort}"`,
      "  routes: [",
      ...routes,
      "  ]",
      "}"
    ] : [],
    ""
  ].filter((l) => l !== "").join("\n") + "\n";
}

// actors/launcher/index.ts
var CLI = join3(PROJECT_ROOT, "bin", "upswarm.mjs");
var READY_TIMEOUT_MS2 = 6e4;
async function spawnRole(name, args, env, log) {
  const child = spawnGuarded(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  child.stderr?.on("data", (d) => log(`[${name}] ${d.toString().trimEnd()}`));
  const lines = createInterface({ input: child.stdout });
  const ready = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new UpswarmError("UPSWARM_E_CLUSTER_START", `${name} not ready after ${READY_TIMEOUT_MS2} ms`)), READY_TIMEOUT_MS2);
    lines.on("line", (line) => {
      if (!line.startsWith("READY ")) return log(`[${name}] ${line}`);
      clearTimeout(timer);
      resolvePromise(JSON.parse(line.slice(6)));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new UpswarmError("UPSWARM_E_CLUSTER_START", `${name} exited before it was ready (code ${code}, signal ${signal}); see its output above`));
    });
  });
  child.on("exit", (code, signal) => log(`[${name}] exited (code ${code}, signal ${signal})`));
  return { child, ready };
}
async function up(opts) {
  const dir = resolve2(opts.dir);
  const log = opts.log ?? (() => {
  });
  await mkdir(dir, { recursive: true });
  const endpointsFile = join3(dir, "endpoints.json");
  await rm(endpointsFile, { force: true });
  const children = /* @__PURE__ */ new Map();
  const endpoints = {};
  let cluster;
  const stop = async () => {
    await rm(endpointsFile, { force: true });
    await Promise.all([...children.entries()].filter(([n]) => n !== "dht").map(([, c]) => stopChild(c)));
    const dht = children.get("dht");
    if (dht) await stopChild(dht);
    await cluster?.stop();
  };
  try {
    const has = (r) => opts.roles.includes(r);
    if (has("nats")) {
      cluster = await NatsCluster.start({ dir: join3(dir, "nats"), nodes: opts.natsNodes });
      endpoints.nats = cluster.urls;
      log(`nats: ${cluster.nodes.length} nodes with JetStream at ${cluster.urls.join(", ")}`);
    } else if (opts.natsUrls?.length) {
      endpoints.nats = opts.natsUrls;
    }
    const natsArg = endpoints.nats?.join(",");
    const needsNats = has("servers") || has("proxy") || has("tracker");
    if (needsNats && !natsArg) {
      throw new UpswarmError("UPSWARM_E_CONFIG", "roles servers/proxy/tracker need NATS: include the nats role or pass --nats URLS");
    }
    if (natsArg) {
      const nc = await connectNats(natsArg, "upswarm-up");
      await ensureResources(nc);
      await nc.close();
    }
    const env = { ...process.env, ...natsArg ? { UPSWARM_NATS: natsArg } : {} };
    if (has("dht")) {
      const { child, ready } = await spawnRole("dht", ["dht", ...opts.dhtPort ? ["--port", String(opts.dhtPort)] : []], env, log);
      children.set("dht", child);
      endpoints.dhtBootstrap = String(ready.dhtBootstrap);
      log(`dht: bootstrap ${endpoints.dhtBootstrap}`);
    }
    const bootstrap = endpoints.dhtBootstrap ?? opts.bootstrap;
    const roleEnv = { ...env, ...bootstrap ? { UPSWARM_BOOTSTRAP: bootstrap } : {} };
    const starts = [];
    if (has("servers")) {
      for (let i = 1; i <= opts.servers; i++) {
        const id = `s${i}`;
        const weight = opts.weights?.[i - 1] ?? 1;
        const args = ["server", "--id", id, "--data", join3(dir, "servers", id), "--weight", String(weight)];
        if (opts.serverMaxUploadRate !== void 0) args.push("--max-upload-rate", String(opts.serverMaxUploadRate));
        starts.push(spawnRole(`server ${id}`, args, roleEnv, log).then(({ child }) => {
          children.set(`server-${id}`, child);
          log(`server ${id}: weight ${weight}`);
        }));
      }
    }
    if (has("proxy")) {
      const args = ["proxy", "--http-port", String(opts.httpPort ?? 0), "--ssh-port", String(opts.sshPort ?? 0), "--ssh-host-key", join3(dir, "proxy", "ssh-host-key")];
      starts.push(spawnRole("proxy", args, roleEnv, log).then(({ child, ready }) => {
        children.set("proxy", child);
        endpoints.http = String(ready.http);
        endpoints.ssh = String(ready.ssh);
        log(`proxy: gateway ${endpoints.http}, ${endpoints.ssh}`);
      }));
    }
    if (has("tracker")) {
      const args = ["tracker", "--http-port", String(opts.trackerHttpPort ?? 0), "--udp-port", String(opts.trackerUdpPort ?? 0)];
      starts.push(spawnRole("tracker", args, roleEnv, log).then(({ child, ready }) => {
        children.set("tracker", child);
        endpoints.trackerHttp = String(ready.trackerHttp);
        endpoints.trackerUdp = String(ready.trackerUdp);
        log(`tracker: ${endpoints.trackerHttp} ${endpoints.trackerUdp}`);
      }));
    }
    const results = await Promise.allSettled(starts);
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  } catch (err) {
    await stop();
    throw err;
  }
  await writeFile(`${endpointsFile}.tmp`, `${JSON.stringify(endpoints, null, 2)}
`);
  await rename(`${endpointsFile}.tmp`, endpointsFile);
  return { endpoints, endpointsFile, children, cluster, stop };
}

export {
  spawnGuarded,
  stopChild,
  PROJECT_ROOT,
  spawnRole,
  up
};
