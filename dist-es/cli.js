import {
  ALL_ROLES
} from "./chunk-B7YUUYMX.js";
import {
  formatBytes,
  printEvent,
  printResult,
  progressLine,
  reportError
} from "./chunk-EHBQHOMX.js";
import {
  UpswarmError,
  errorMessage
} from "./chunk-5DMJPWEV.js";

// actors/cli.ts
import { Command } from "commander";

// actors/cli/common.ts
import { Option } from "commander";
var natsOption = () => new Option("--nats <urls>", "NATS servers, comma-separated").env("UPSWARM_NATS");
var jsonOption = () => new Option("--json", "print the result as JSON on stdout");
function intArg(name) {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer (got ${value})`);
    return n;
  };
}
function action(fn) {
  return async (...args) => {
    const { reportError: reportError2 } = await import("./output-XLPHUW4M.js");
    try {
      await fn(...args);
    } catch (err) {
      process.exitCode = reportError2(err, process.argv.includes("--json"));
    }
  };
}

// actors/cli/repository.ts
function registerRepositoryCommands(program2) {
  program2.command("keygen").description("create an Ed25519 publisher key pair; prints the public key (hex) that clients pin").requiredOption("--out <file>", "key file to create (mode 0600; never overwritten)").addOption(jsonOption()).action(action(async (o) => {
    const { generatePublisherKey, writeKeyFile } = await import("./keys-QFGJGI6Z.js");
    const key = generatePublisherKey();
    await writeKeyFile(o.out, key);
    printResult(!!o.json, { publicKey: key.publicKey, file: o.out }, () => key.publicKey);
  }));
  program2.command("publish <src>").description("publish the tree SRC as the next revision of a product (signed, uploaded once, replicated)").requiredOption("--product <uuid>", "product UUID").requiredOption("--key <file>", "publisher key file (from keygen)").option("--label <label>", "human version label, e.g. 2.4.1").option("--feed-dir <dir>", "keep the release feed here between publishes (default: a temporary directory)").option("--no-feed", "write the release stream only; the next publish appends this release to the release feed").addOption(natsOption()).addOption(jsonOption()).action(action(async (src, o) => {
    const [{ readKeyFile }, { connectNats: connectNats2 }, { publish }] = await Promise.all([
      import("./keys-QFGJGI6Z.js"),
      import("./connect-PNYJXVTV.js"),
      import("./publish-274WNWAQ.js")
    ]);
    const key = await readKeyFile(o.key);
    const nc = await connectNats2(o.nats, "upswarm-publish");
    const bar = progressLine(!o.json);
    try {
      const r = await publish({
        nc,
        src,
        product: o.product,
        key,
        label: o.label,
        feedDir: o.feedDir,
        skipFeed: o.feed === false,
        onProgress: (p) => bar.update(p.phase === "scan" ? `hashing: ${p.done} files, ${formatBytes(p.bytes)}` : p.phase === "upload" ? `uploading: ${p.done}/${p.total} blobs, ${formatBytes(p.bytes)} new` : "updating the release feed")
      });
      bar.done();
      const { release: _release, unchanged, ...summary } = r;
      const feedLine = r.feed.appended ? `release feed: ${r.feed.length} blocks, held by ${r.feed.servers} server(s)${r.feed.added > 1 ? `; ${r.feed.added} appended, earlier missing releases included` : ""}` : `release feed: not updated: ${r.feed.reason}`;
      printResult(!!o.json, { ...summary, unchanged }, () => (unchanged ? `${r.product}: tree unchanged; newest is still r${r.rev} (${r.manifestSha256})` : `${r.product}: published r${r.rev}${r.label ? ` (${r.label})` : ""}: ${r.files} files, ${formatBytes(r.bytes)}; ${r.newBlobs} new blobs, ${formatBytes(r.newBytes)} uploaded; manifest ${r.manifestSha256}`) + `
${feedLine}`);
    } finally {
      await nc.close();
    }
  }));
  program2.command("demo").description("the whole product on this machine: cluster, publish r1, client daemons, publish r2, swarm upgrade, rollback").option("--clients <n>", "client processes", intArg("--clients"), 8).option("--files <n>", "files in r1", intArg("--files"), 300).option("--mib <n>", "size of r1 in MiB", intArg("--mib"), 24).option("--keep", "keep the demo directory").addOption(jsonOption()).action(action(async (o) => {
    const { runDemo } = await import("./demo-GI5OO4NP.js");
    await runDemo({ clients: o.clients, files: o.files, totalBytes: o.mib * 1024 * 1024, json: !!o.json, keep: !!o.keep });
  }));
  program2.command("stats").description("the server pool as a proxy sees it: health, weights, synced revisions, load").addOption(natsOption()).addOption(jsonOption()).action(action(async (o) => {
    const [{ connectNats: connectNats2 }, { proxySubject }, { requestJson }] = await Promise.all([
      import("./connect-PNYJXVTV.js"),
      import("./names-IG4H3X2M.js"),
      import("./service-XQR7Z7LA.js")
    ]);
    const nc = await connectNats2(o.nats, "upswarm-stats");
    try {
      const stats = await requestJson(nc, proxySubject("stats"), {});
      printResult(!!o.json, stats, () => [
        `proxy ${stats.proxy}`,
        ...stats.servers.map((s) => `${s.id.padEnd(12)} ${s.state.padEnd(8)} weight ${s.weight}  requests ${s.requests}  served ${formatBytes(s.bytesServed)}  synced ${Object.entries(s.synced).map(([p, r]) => `${p.slice(0, 8)}\u2026=r${r}`).join(" ") || "-"}`)
      ].join("\n"));
    } finally {
      await nc.close();
    }
  }));
}

// actors/cli/cluster.ts
import { Option as Option2 } from "commander";
import { once as once2 } from "node:events";

// actors/cli/role.ts
import { once } from "node:events";
async function runRole(name, start) {
  const role = await start();
  process.stdout.write(`READY ${JSON.stringify({ role: name, pid: process.pid, ...role.ready })}
`);
  const signal = await Promise.race([once(process, "SIGINT"), once(process, "SIGTERM")]);
  void signal;
  await role.close();
}

// actors/cli/cluster.ts
var log = (msg) => {
  process.stderr.write(`${msg}
`);
};
function registerClusterCommands(program2) {
  program2.command("up").description("start the embedded default in the foreground: NATS cluster, DHT bootstrap, servers, proxy, tracker").requiredOption("--dir <dir>", "where config files, data and endpoints.json go").option("--roles <list>", `roles to start (${ALL_ROLES.join(",")})`, ALL_ROLES.join(",")).option("--nats-nodes <n>", "nats-server nodes in the cluster", intArg("--nats-nodes"), 3).option("--servers <n>", "repository servers", intArg("--servers"), 3).option("--weights <list>", "weight of each server, comma-separated (default 1 each)").option("--http-port <port>", "the proxy's HTTP gateway port (0: any free port)", intArg("--http-port")).option("--ssh-port <port>", "the proxy's SFTP door port (0: any free port)", intArg("--ssh-port")).option("--tracker-http-port <port>", "tracker HTTP port", intArg("--tracker-http-port")).option("--tracker-udp-port <port>", "tracker UDP port", intArg("--tracker-udp-port")).option("--dht-port <port>", "DHT bootstrap UDP port", intArg("--dht-port")).option("--bootstrap <host:port>", "DHT bootstrap to use when the dht role is not started here").addOption(natsOption()).action(action(async (o) => {
    const roles = String(o.roles).split(",").map((r) => r.trim()).filter(Boolean);
    const unknown = roles.filter((r) => !ALL_ROLES.includes(r));
    if (unknown.length) throw new Error(`unknown role(s) ${unknown.join(", ")}; choose from ${ALL_ROLES.join(", ")}`);
    const { up } = await import("./launcher-OOI5GLES.js");
    const launched = await up({
      dir: o.dir,
      roles,
      natsNodes: o.natsNodes,
      servers: o.servers,
      weights: o.weights ? String(o.weights).split(",").map(Number) : void 0,
      natsUrls: o.nats ? String(o.nats).split(",") : void 0,
      bootstrap: o.bootstrap,
      httpPort: o.httpPort,
      sshPort: o.sshPort,
      trackerHttpPort: o.trackerHttpPort,
      trackerUdpPort: o.trackerUdpPort,
      dhtPort: o.dhtPort,
      log
    });
    log(`upswarm: ready; endpoints in ${launched.endpointsFile}`);
    process.stdout.write(`${JSON.stringify(launched.endpoints)}
`);
    await Promise.race([once2(process, "SIGINT"), once2(process, "SIGTERM")]);
    log("upswarm: shutting down");
    await launched.stop();
  }));
  program2.command("dht").description("run a HyperDHT bootstrap node (and two full nodes) on 127.0.0.1").option("--port <port>", "UDP port of the bootstrap node (0: any free port)", intArg("--port"), 0).action(action(async (o) => {
    const { startLocalDht } = await import("./dht-IU6RCQDK.js");
    await runRole("dht", async () => {
      const dht = await startLocalDht({ port: o.port });
      return { ready: { dhtBootstrap: dht.bootstrap }, close: () => dht.close() };
    });
  }));
  program2.command("server").description("run one repository server (R-SERVER): syncs releases from JetStream and serves them").requiredOption("--id <id>", "server id (its place in the ring)").requiredOption("--data <dir>", "local content-addressed store and state").option("--weight <w>", "weight in the round-robin", intArg("--weight"), 1).option("--swarm-host <host>", "address the swarm (seed) listener binds and the heartbeat advertises", "127.0.0.1").option("--swarm-advertise <host>", "address clients dial, when not --swarm-host (required with 0.0.0.0 or ::)").option("--swarm-port <port>", "swarm TCP port (0: any free port)", intArg("--swarm-port"), 0).addOption(new Option2("--bootstrap <host:port>", "DHT bootstrap node(s), comma-separated: announce every synced revision on the DHT").env("UPSWARM_BOOTSTRAP")).addOption(new Option2("--max-upload-rate <bytes/s>", "limit of swarm and NATS range uploads together (0: unlimited)").env("UPSWARM_SERVER_MAX_UPLOAD_RATE").argParser(intArg("--max-upload-rate"))).addOption(natsOption()).action(action(async (o) => {
    const [{ connectNats: connectNats2 }, { parseBootstrap }, { startRepoServer }] = await Promise.all([
      import("./connect-PNYJXVTV.js"),
      import("./dht-IU6RCQDK.js"),
      import("./repo-server-4KAUVXKV.js")
    ]);
    const nc = await connectNats2(o.nats, `upswarm-server-${o.id}`);
    await runRole("server", async () => {
      const server = await startRepoServer({
        nc,
        id: o.id,
        dataDir: o.data,
        weight: o.weight,
        swarmHost: o.swarmHost,
        swarmPort: o.swarmPort,
        ...o.swarmAdvertise ? { swarmAdvertise: o.swarmAdvertise } : {},
        bootstrap: parseBootstrap(o.bootstrap),
        maxUploadRate: o.maxUploadRate,
        log: (m) => log(`server ${o.id}: ${m}`)
      });
      const { host, port, publicKey } = server.seed.info();
      return { ready: { id: o.id, swarm: { host, port, publicKey } }, close: async () => {
        await server.close();
        await nc.drain();
      } };
    });
  }));
  program2.command("proxy").description("run the server proxy (R-PROXY): weighted round-robin director and HTTP/WebDAV gateway").option("--http-port <port>", "gateway port (0: any free port)", intArg("--http-port"), 0).option("--ssh-port <port>", "SFTP door: read-only view of every release over SSH (0: any free port; off unless given)", intArg("--ssh-port")).option("--ssh-host-key <file>", "SSH host key (created, Ed25519, when missing)", "upswarm-proxy-ssh-host-key").option("--ssh-authorized-keys <file>", "only these public keys (OpenSSH authorized_keys) may log in; default: anyone may read, as over HTTP").option("--id <id>", "proxy id").addOption(natsOption()).action(action(async (o) => {
    const [{ connectNats: connectNats2 }, { startProxy }, { loadOrCreateHostKey }, { readFile }] = await Promise.all([
      import("./connect-PNYJXVTV.js"),
      import("./proxy-A2OHE2WF.js"),
      import("./sftp-gateway-4T5BKTJR.js"),
      import("node:fs/promises")
    ]);
    const ssh = o.sshPort === void 0 ? {} : {
      sshPort: o.sshPort,
      sshHostKey: await loadOrCreateHostKey(o.sshHostKey),
      ...o.sshAuthorizedKeys ? { sshAuthorizedKeys: await readFile(o.sshAuthorizedKeys, "utf8") } : {}
    };
    const nc = await connectNats2(o.nats, "upswarm-proxy");
    await runRole("proxy", async () => {
      const proxy = await startProxy({ nc, id: o.id, httpPort: o.httpPort, ...ssh, log: (m) => log(`proxy: ${m}`) });
      return { ready: { http: proxy.httpUrl, ssh: proxy.sshUrl, id: proxy.id }, close: async () => {
        await proxy.close();
        await nc.drain();
      } };
    });
  }));
  program2.command("tracker").description("run the tracker (R-TRACKER): NATS, HTTP (BEP 3/23) and UDP (BEP 15) announce").option("--http-port <port>", "HTTP port (0: any free port)", intArg("--http-port"), 0).option("--udp-port <port>", "UDP port (0: any free port)", intArg("--udp-port"), 0).option("--id <id>", "tracker instance id").option("--cert <file>", "TLS certificate: serve HTTPS").option("--key <file>", "TLS key for --cert").addOption(natsOption()).action(action(async (o) => {
    const trackerModule = "../tracker/index.ts";
    const { runTrackerCli } = await import(trackerModule);
    await runTrackerCli(o);
  }));
}

// actors/cli/client.ts
import { Option as Option3 } from "commander";
import { once as once3 } from "node:events";
var trackerOption = () => new Option3("--tracker <urls>", "tracker URLs (http(s)://\u2026, udp://\u2026), comma-separated").env("UPSWARM_TRACKER");
var bootstrapOption = () => new Option3("--bootstrap <host:port>", "DHT bootstrap nodes, comma-separated").env("UPSWARM_BOOTSTRAP");
var threadsOption = () => new Option3("--threads <k>", "concurrent downloads / range requests (default 4; the daemon: 16)").argParser(intArg("--threads"));
var connectNats;
var parseServers;
var jetStreamAlertSink;
var decodeRelease;
var followReleases;
var WorkingCopy;
var startDaemon;
var serverSource;
var updater;
async function load() {
  const [connect, alerts, manifest, releaseLog, wc, daemon, sources, upd] = await Promise.all([
    import("./connect-PNYJXVTV.js"),
    import("./alert-sink-BSKDU3WP.js"),
    import("./manifest-Q5RC6RTK.js"),
    import("./release-log-QNO6FI6X.js"),
    import("./working-copy-73PZB4RR.js"),
    import("./share-daemon-LRT4NQFU.js"),
    import("./sources-EUDRQORM.js"),
    import("./updater-3A2HJUJU.js")
  ]);
  ({ connectNats, parseServers } = connect);
  ({ jetStreamAlertSink } = alerts);
  ({ decodeRelease } = manifest);
  ({ followReleases } = releaseLog);
  ({ WorkingCopy } = wc);
  ({ startDaemon } = daemon);
  ({ serverSource } = sources);
  updater = upd;
}
function loaded(fn) {
  return action(async (...args) => {
    await load();
    await fn(...args);
  });
}
async function maybeNats(urls, name) {
  return parseServers(urls).length > 0 ? connectNats(urls, name) : void 0;
}
async function requireNats(urls, name, what) {
  const nc = await maybeNats(urls, name);
  if (!nc) throw new UpswarmError("UPSWARM_E_CONFIG", `${what} needs the repository: pass --nats URLS or set UPSWARM_NATS`);
  return nc;
}
function trackerUrls(value) {
  const out = {};
  for (const url of (value ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    if (url.startsWith("udp://")) out.trackerUdp = url;
    else if (/^https?:\/\//.test(url)) out.trackerHttp = url;
    else throw new UpswarmError("UPSWARM_E_CONFIG", `--tracker ${url}: expected http://, https:// or udp://`);
  }
  return out;
}
var stderrLog = (quiet) => (msg) => {
  if (!quiet) process.stderr.write(`${msg}
`);
};
async function updateThroughSwarm(dir, nc, o, rev, quiet) {
  const daemon = await startDaemon({ dir, ...nc ? { nc } : {}, ...trackerUrls(o.tracker), bootstrap: o.bootstrap, ...o.threads ? { threads: o.threads } : {}, log: stderrLog(quiet) });
  try {
    return await daemon.updateNow(rev);
  } finally {
    await daemon.close();
  }
}
function progress(json) {
  const bar = progressLine(!json);
  return {
    bar,
    onProgress: (p) => bar.update(`${p.phase}: ${p.done}/${p.total} ${formatBytes(p.bytes)}${p.path ? ` ${p.path}` : ""}`)
  };
}
function updateSummary(r) {
  return `r${r.from} \u2192 r${r.to}: ${r.updated} updated, ${r.checkedOut} checked out, ${r.removed} removed, ${r.conflicts.length} conflict(s)${r.conflicts.length ? ` (${r.conflicts.join(", ")}: left alone, administrators alerted)` : ""}; ${formatBytes(r.bytesFromServers)} from servers, ${formatBytes(r.bytesFromPeers)} from peers` + ("uploadedBytes" in r ? `; ${formatBytes(r.uploadedBytes)} served to peers so far` : "");
}
function updateJson(r) {
  const { warnings, ...rest } = r;
  return { ...rest, conflicts: r.conflicts.length, conflictPaths: r.conflicts, warnings };
}
function registerClientCommands(program2) {
  program2.command("init <dir>").description("create a working copy of a product at its newest (or a given) revision").requiredOption("--product <uuid>", "product UUID").requiredOption("--pubkey <hex>", "the publisher's public key (pinned: no release signed by another key is accepted)").option("--rev <n>", "revision to check out (default: the newest)", intArg("--rev")).option("--adopt", "take over a non-empty directory: its files are classified, never overwritten").option("--history <k>", "revisions kept in the local history store for offline rollback", intArg("--history")).addOption(threadsOption()).addOption(natsOption()).addOption(trackerOption()).addOption(bootstrapOption()).addOption(jsonOption()).action(loaded(async (dir, o) => {
    const nc = await requireNats(o.nats, "upswarm-init", "init");
    const { bar, onProgress } = progress(!!o.json);
    const swarm = (o.tracker || o.bootstrap) && !o.adopt;
    try {
      const r = await updater.init(dir, {
        product: o.product,
        publicKey: String(o.pubkey).toLowerCase(),
        source: serverSource(nc, String(o.product).toLowerCase()),
        alerts: jetStreamAlertSink(nc),
        threads: o.threads,
        onProgress,
        ...o.rev !== void 0 ? { rev: o.rev } : {},
        ...o.adopt ? { adopt: true } : {},
        ...o.history ? { historyDepth: o.history } : {},
        ...swarm ? { checkout: (d) => updateThroughSwarm(d, nc, o, o.rev, true) } : {}
      });
      bar.done();
      printResult(!!o.json, updateJson(r), () => `${dir}: working copy at r${r.to} (${r.checkedOut} files checked out; ${formatBytes(r.bytesFromServers)} from servers${r.bytesFromPeers ? `, ${formatBytes(r.bytesFromPeers)} from peers` : ""})`);
    } finally {
      await nc.close();
    }
  }));
  program2.command("status <dir>").description("the status of every path: current, ignored, conflict, outdated, missing, modified, unversioned, removed").addOption(natsOption()).option("--offline", "do not ask the repository for newer revisions").addOption(jsonOption()).action(loaded(async (dir, o) => {
    const nc = o.offline ? void 0 : await maybeNats(o.nats, "upswarm-status");
    try {
      const wc = await WorkingCopy.open(dir);
      const r = await updater.status(dir, nc ? { source: serverSource(nc, wc.config.product) } : {});
      const shown = r.files.filter((f) => f.status !== "current");
      printResult(!!o.json, { product: r.product, rev: r.rev, latest: r.latest, target: r.target, files: r.files, hashed: r.hashed, cached: r.cached }, () => [
        `${r.product} at r${r.rev}; newest verified r${r.latest}`,
        ...shown.map((f) => `${f.status.padEnd(12)} ${f.path}`),
        `${r.files.length - shown.length} current`
      ].join("\n"));
    } finally {
      await nc?.close();
    }
  }));
  program2.command("update <dir>").description("update the working copy to the newest (or a given) revision, from peers and servers").option("--rev <n>", "revision to install (explicit; may be lower than the current one)", intArg("--rev")).addOption(new Option3("--on-conflict <policy>", "what to do with files changed by hand and out of date").choices(["alert", "overwrite", "abort"]).default("alert")).addOption(threadsOption()).addOption(natsOption()).addOption(trackerOption()).addOption(bootstrapOption()).addOption(jsonOption()).action(loaded(async (dir, o) => {
    const nc = await maybeNats(o.nats, "upswarm-update");
    const { bar, onProgress } = progress(!!o.json);
    try {
      let r;
      if (o.tracker || o.bootstrap) {
        r = await updateThroughSwarm(dir, nc, o, o.rev, !!o.json);
      } else {
        if (!nc) throw new UpswarmError("UPSWARM_E_CONFIG", "update needs a source: --nats URLS (or UPSWARM_NATS), and/or --tracker / --bootstrap for peers");
        const wc = await WorkingCopy.open(dir);
        r = await updater.update(dir, {
          source: serverSource(nc, wc.config.product),
          alerts: jetStreamAlertSink(nc),
          threads: o.threads,
          onConflict: o.onConflict,
          onProgress,
          ...o.rev !== void 0 ? { rev: o.rev } : {}
        });
      }
      bar.done();
      printResult(!!o.json, updateJson(r), () => updateSummary(r));
    } finally {
      await nc?.close();
    }
  }));
  program2.command("rollback <dir>").description("roll back to an older revision: offline from local history when it holds it, else downloaded").requiredOption("--rev <n>", "the revision to go back to (lower than the current one)", intArg("--rev")).addOption(threadsOption()).addOption(natsOption()).addOption(jsonOption()).action(loaded(async (dir, o) => {
    const nc = await maybeNats(o.nats, "upswarm-rollback");
    try {
      const wc = await WorkingCopy.open(dir);
      const r = await updater.rollback(dir, {
        rev: o.rev,
        threads: o.threads,
        ...nc ? { source: serverSource(nc, wc.config.product), alerts: jetStreamAlertSink(nc) } : {}
      });
      printResult(!!o.json, r, () => `rolled back r${r.from} \u2192 r${r.to} (${r.source === "local" ? "from local history, no network" : "downloaded"})`);
    } finally {
      await nc?.close();
    }
  }));
  program2.command("history <dir>").description("revisions known to the working copy, which are local, the current one").addOption(jsonOption()).action(loaded(async (dir, o) => {
    const r = await updater.history(dir);
    printResult(!!o.json, r, () => r.revisions.map((v) => `${v.current ? "*" : " "} r${v.rev}${v.label ? ` (${v.label})` : ""} ${v.local ? "local" : v.manifest ? "manifest only" : "remote"} ${v.manifestSha256.slice(0, 16)}`).join("\n"));
  }));
  program2.command("ignore <dir> <pattern>").description("exclude paths from updates (gitignore syntax, R-STATUS-2): personalised files stay as they are").addOption(jsonOption()).action(loaded(async (dir, pattern, o) => {
    const patterns = await updater.ignore(dir, pattern);
    printResult(!!o.json, { patterns }, () => patterns.join("\n"));
  }));
  program2.command("watch <dir>").description("follow the release stream (push) and report newer revisions; with --auto, update to them").option("--auto", "update automatically").addOption(threadsOption()).addOption(natsOption()).addOption(jsonOption()).action(loaded(async (dir, o) => {
    const nc = await requireNats(o.nats, "upswarm-watch", "watch");
    const wc = await WorkingCopy.open(dir);
    const source = serverSource(nc, wc.config.product);
    let busy = Promise.resolve();
    const follow = await followReleases(nc, wc.config.product, (bytes, seq) => {
      let rev;
      try {
        rev = decodeRelease(bytes, wc.config.publicKey, `release stream seq ${seq}`).manifest.rev;
      } catch (err) {
        process.stderr.write(`upswarm: ignored release message ${seq}: ${errorMessage(err)}
`);
        return;
      }
      busy = busy.then(async () => {
        const current = (await WorkingCopy.open(dir)).state.current;
        if (rev <= current) return;
        printEvent(!!o.json, { event: "release.available", rev, current }, () => `upgrade notice: r${rev} is available (working copy at r${current})`);
        if (!o.auto) return;
        const r = await updater.update(dir, { source, alerts: jetStreamAlertSink(nc), threads: o.threads });
        printEvent(!!o.json, { event: "update.done", ...updateJson(r) }, () => updateSummary(r));
      }).catch((err) => {
        process.stderr.write(`upswarm: update failed: ${errorMessage(err)}
`);
      });
    });
    await Promise.race([once3(process, "SIGINT"), once3(process, "SIGTERM"), follow.closed]);
    await follow.stop();
    await busy;
    await nc.close();
  }));
  program2.command("daemon <dir>").description("the sharing daemon (R-SHARE): serve this working copy to peers, find peers, and with --auto update from them").option("--auto", "update automatically when a newer revision is published").option("--port <port>", "TCP port peers connect to (0: any free port)", intArg("--port"), 0).option("--host <host>", "address to listen on", "127.0.0.1").option("--max-upload-rate <bytes>", "upload limit to peers in bytes/s (0: unlimited)", intArg("--max-upload-rate"), 0).addOption(threadsOption()).addOption(natsOption()).addOption(trackerOption()).addOption(bootstrapOption()).addOption(jsonOption()).action(loaded(async (dir, o) => {
    const nc = await maybeNats(o.nats, "upswarm-daemon");
    const emit = (event, human) => printEvent(!!o.json, event, () => human);
    await runRole("daemon", async () => {
      const daemon = await startDaemon({
        dir,
        ...nc ? { nc } : {},
        ...trackerUrls(o.tracker),
        bootstrap: o.bootstrap,
        host: o.host,
        port: o.port,
        auto: !!o.auto,
        ...o.threads ? { threads: o.threads } : {},
        maxUploadRate: o.maxUploadRate,
        log: stderrLog(false)
      });
      daemon.on("release.available", (rev) => emit({ event: "release.available", rev }, `upgrade notice: r${rev} is available`));
      daemon.on("update.started", (from, to) => emit({ event: "update.started", from, to }, `updating r${from} \u2192 r${to}`));
      daemon.on("update.done", (r) => emit({ event: "update.done", ...updateJson(r) }, updateSummary(r)));
      daemon.on("update.failed", (err) => emit({ event: "update.failed", error: err.toJSON() }, `update failed: ${err.message}`));
      daemon.on("tracker.status", (s) => emit({ event: "tracker.status", status: s }, `tracker: ${s}`));
      const connected = (key, via) => emit({ event: "peer.connected", peer: key, via }, `peer ${key.slice(0, 12)}\u2026 connected over ${via}`);
      for (const c of daemon.connections()) connected(c.key, c.via);
      daemon.on("peer.connected", connected);
      return {
        ready: { port: daemon.port, publicKey: daemon.publicKey, peerId: daemon.peerId, rev: daemon.rev() },
        close: async () => {
          emit(
            { event: "daemon.stopped", uploadedBytes: daemon.uploaded(), peers: daemon.connections().length },
            `stopped; served ${formatBytes(daemon.uploaded())} to peers over ${daemon.connections().length} connection(s)`
          );
          await daemon.close();
          await nc?.close();
        }
      };
    });
  }));
}

// actors/cli.ts
var program = new Command();
program.name("upswarm").description("Keeps installed copies of a program up to date: signed releases, replicated servers, peer-to-peer delivery, rollback to any version.").showHelpAfterError().configureHelp({ sortSubcommands: false });
registerClusterCommands(program);
registerRepositoryCommands(program);
registerClientCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = reportError(err, process.argv.includes("--json"));
}
