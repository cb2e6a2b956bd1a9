import {
  UUID_RE
} from "./chunk-27MN4SFY.js";
import {
  UpswarmError,
  errorMessage,
  isUpswarmError
} from "./chunk-RP33VEIV.js";

// infra/ssh/sftp-gateway.ts
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname, posix } from "node:path";
import ssh2 from "ssh2";
var { Server, utils } = ssh2;
var { STATUS_CODE, OPEN_MODE } = utils.sftp;
var CHUNK = 1024 * 1024;
var CHUNKS_KEPT = 4;
var MAX_HANDLES = 256;
var MAX_READ = 256 * 1024;
var S_IFDIR = 16384;
var S_IFREG = 32768;
var S_IFLNK = 40960;
async function loadOrCreateHostKey(file) {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if (err.code !== "ENOENT") {
      throw new UpswarmError("UPSWARM_E_IO", `cannot read the SSH host key ${file}: ${errorMessage(err)}`, { cause: err });
    }
  }
  const { private: key } = utils.generateKeyPairSync("ed25519");
  await mkdir(dirname(file), { recursive: true });
  try {
    await writeFile(file, key, { mode: 384, flag: "wx" });
    return key;
  } catch (err) {
    if (err.code === "EEXIST") return readFile(file, "utf8");
    throw new UpswarmError("UPSWARM_E_IO", `cannot write the SSH host key ${file}: ${errorMessage(err)}`, { cause: err });
  }
}
function parseAuthorizedKeys(text, where) {
  const keys = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const parsed = utils.parseKey(line);
    if (parsed instanceof Error) throw new UpswarmError("UPSWARM_E_CONFIG", `${where}:${i + 1}: not a public key: ${parsed.message}`);
    keys.push(Array.isArray(parsed) ? parsed[0] : parsed);
  });
  if (keys.length === 0) throw new UpswarmError("UPSWARM_E_CONFIG", `${where} holds no public key; leave the option out to let anyone read`);
  return keys;
}
async function startSftpGateway(opts) {
  const allowed = opts.authorizedKeys === void 0 ? void 0 : parseAuthorizedKeys(opts.authorizedKeys, "authorized keys");
  const log = opts.log ?? (() => {
  });
  const clients = /* @__PURE__ */ new Set();
  const server = new Server({ hostKeys: [opts.hostKey] }, (client) => {
    clients.add(client);
    client.on("close", () => clients.delete(client));
    client.on("error", (err) => log(`ssh client error: ${err.message}`));
    client.on("authentication", (ctx) => {
      if (!allowed) return ctx.accept();
      if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
      const key = allowed.find((k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data));
      if (key && (!ctx.signature || key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true)) return ctx.accept();
      return ctx.reject(["publickey"]);
    });
    client.on("ready", () => {
      client.on("session", (acceptSession) => {
        const session = acceptSession();
        session.on("sftp", (acceptSftp) => serveSftp(acceptSftp(), opts.backend, log));
        session.on("exec", (_accept, reject) => reject());
        session.on("shell", (_accept, reject) => reject());
        session.on("pty", (_accept, reject) => reject?.());
      });
    });
  });
  await new Promise((resolve2, reject) => {
    server.once("error", (err) => reject(new UpswarmError("UPSWARM_E_CONFIG", `cannot listen for SSH on ${opts.host}:${opts.port}: ${err.message}`, { cause: err })));
    server.listen(opts.port, opts.host, () => resolve2());
  });
  server.on("error", (err) => log(`ssh server error: ${err.message}`));
  const port = server.address().port;
  return {
    url: `sftp://${opts.host}:${port}`,
    port,
    close: () => new Promise((resolve2) => {
      server.close(() => resolve2());
      for (const c of clients) c.end();
    })
  };
}
var SftpError = class extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
  code;
};
function serveSftp(sftp, backend, log) {
  const handles = /* @__PURE__ */ new Map();
  let nextHandle = 1;
  const newHandle = (h) => {
    if (handles.size >= MAX_HANDLES) throw new SftpError(STATUS_CODE.FAILURE, `too many open files (${MAX_HANDLES}); close some`);
    const id = nextHandle++;
    handles.set(id, h);
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(id);
    return buf;
  };
  const handleOf = (buf) => {
    const h = buf.length === 4 ? handles.get(buf.readUInt32BE(0)) : void 0;
    if (!h) throw new SftpError(STATUS_CODE.FAILURE, "invalid handle");
    return h;
  };
  const answer = (reqId, work) => {
    Promise.resolve().then(work).catch((err) => {
      if (err instanceof SftpError) return sftp.status(reqId, err.code, err.message);
      if (isUpswarmError(err) && /NOT_FOUND|UNKNOWN_REVISION/.test(err.code)) return sftp.status(reqId, STATUS_CODE.NO_SUCH_FILE, err.message);
      log(`sftp request failed: ${errorMessage(err)}`);
      sftp.status(reqId, STATUS_CODE.FAILURE, errorMessage(err));
    });
  };
  const readOnly = (what) => (reqId) => {
    sftp.status(reqId, STATUS_CODE.PERMISSION_DENIED, `${what}: this view is read-only (releases are published signed with \`upswarm publish\`)`);
  };
  sftp.on("REALPATH", (reqId, path) => answer(reqId, async () => {
    const p = normalize(path);
    sftp.name(reqId, [{ filename: p, longname: p, attrs: attrsOf(await resolve(backend, p, true)) }]);
  }));
  for (const op of ["STAT", "LSTAT"]) {
    sftp.on(op, (reqId, path) => answer(reqId, async () => {
      sftp.attrs(reqId, attrsOf(await resolve(backend, normalize(path), op === "STAT")));
    }));
  }
  sftp.on("READLINK", (reqId, path) => answer(reqId, async () => {
    const node = await resolve(backend, normalize(path), false);
    if (node.kind !== "entry" || node.entry.kind !== "symlink") throw new SftpError(STATUS_CODE.FAILURE, `${path} is not a symbolic link`);
    sftp.name(reqId, [{ filename: node.entry.target, longname: node.entry.target, attrs: attrsOf(node) }]);
  }));
  sftp.on("OPENDIR", (reqId, path) => answer(reqId, async () => {
    const p = normalize(path);
    const names = await list(backend, p, await resolve(backend, p, true));
    sftp.handle(reqId, newHandle({ kind: "dir", names, sent: false }));
  }));
  sftp.on("READDIR", (reqId, handle) => answer(reqId, () => {
    const h = handleOf(handle);
    if (h.kind !== "dir") throw new SftpError(STATUS_CODE.FAILURE, "not a directory handle");
    if (h.sent || h.names.length === 0) return sftp.status(reqId, STATUS_CODE.EOF);
    h.sent = true;
    sftp.name(reqId, h.names);
  }));
  sftp.on("OPEN", (reqId, filename, flags) => answer(reqId, async () => {
    if (flags & (OPEN_MODE.WRITE | OPEN_MODE.APPEND | OPEN_MODE.CREAT | OPEN_MODE.TRUNC)) return readOnly(`open ${filename} for writing`)(reqId);
    const node = await resolve(backend, normalize(filename), true);
    if (node.kind !== "entry" || node.entry.kind !== "file") throw new SftpError(STATUS_CODE.FAILURE, `${filename} is a directory, not a file`);
    sftp.handle(reqId, newHandle({ kind: "file", release: node.release, entry: node.entry, chunks: /* @__PURE__ */ new Map() }));
  }));
  sftp.on("READ", (reqId, handle, offset, length) => answer(reqId, async () => {
    const h = handleOf(handle);
    if (h.kind !== "file") throw new SftpError(STATUS_CODE.FAILURE, "not a file handle");
    if (offset >= h.entry.size) return sftp.status(reqId, STATUS_CODE.EOF);
    const end = Math.min(h.entry.size, offset + Math.min(length, MAX_READ));
    const parts = [];
    for (let at = offset; at < end; ) {
      const index = Math.floor(at / CHUNK);
      const chunk = await chunkOf(backend, h, index);
      const from = at - index * CHUNK;
      const take = Math.min(chunk.length - from, end - at);
      parts.push(chunk.subarray(from, from + take));
      at += take;
    }
    sftp.data(reqId, parts.length === 1 ? parts[0] : Buffer.concat(parts));
  }));
  sftp.on("FSTAT", (reqId, handle) => answer(reqId, () => {
    const h = handleOf(handle);
    if (h.kind !== "file") throw new SftpError(STATUS_CODE.FAILURE, "not a file handle");
    sftp.attrs(reqId, attrsOf({ kind: "entry", release: h.release, entry: h.entry }));
  }));
  sftp.on("CLOSE", (reqId, handle) => answer(reqId, () => {
    handleOf(handle);
    handles.delete(handle.readUInt32BE(0));
    sftp.status(reqId, STATUS_CODE.OK);
  }));
  sftp.on("WRITE", readOnly("write"));
  sftp.on("FSETSTAT", readOnly("setstat"));
  sftp.on("SETSTAT", readOnly("setstat"));
  sftp.on("REMOVE", readOnly("remove"));
  sftp.on("RMDIR", readOnly("rmdir"));
  sftp.on("MKDIR", readOnly("mkdir"));
  sftp.on("RENAME", readOnly("rename"));
  sftp.on("SYMLINK", readOnly("symlink"));
  sftp.on("EXTENDED", (reqId) => sftp.status(reqId, STATUS_CODE.OP_UNSUPPORTED, "no extensions"));
  sftp.on("error", (err) => log(`sftp session error: ${err.message}`));
  sftp.on("end", () => {
    handles.clear();
    sftp.end();
  });
}
function chunkOf(backend, h, index) {
  let p = h.chunks.get(index);
  if (!p) {
    const start = index * CHUNK;
    const end = Math.min(h.entry.size, start + CHUNK) - 1;
    p = (async () => {
      const parts = [];
      for await (const part of backend.read(h.release.manifest.product, h.release.manifest.rev, h.entry.sha256, start, end)) parts.push(part);
      return Buffer.concat(parts);
    })();
    p.catch(() => h.chunks.delete(index));
    h.chunks.set(index, p);
    if (h.chunks.size > CHUNKS_KEPT) h.chunks.delete(h.chunks.keys().next().value);
  }
  return p;
}
function normalize(path) {
  const p = posix.normalize(`/${path}`);
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}
async function resolve(backend, path, follow, depth = 0) {
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0) return { kind: "root" };
  const product = parts[0].toLowerCase();
  if (!UUID_RE.test(product)) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: ${parts[0]} is not a product UUID`);
  if (parts.length === 1) {
    const newest = (await backend.products?.())?.[product] ?? 0;
    if (newest === 0) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: no healthy repository server holds product ${product}`);
    return { kind: "product", product, newest };
  }
  const rawRev = parts[1];
  const rev = rawRev === "latest" ? "latest" : Number(rawRev);
  if (rev !== "latest" && (!Number.isInteger(rev) || rev < 1)) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: ${rawRev} is not a revision`);
  const release = await backend.release(product, rev);
  const rel = parts.slice(2).join("/");
  if (rel === "") return { kind: "tree", release, dir: "" };
  const entry = release.manifest.entries.find((e) => e.path === rel);
  if (entry?.kind === "symlink" && follow) {
    if (depth >= 8) throw new SftpError(STATUS_CODE.FAILURE, `${path}: too many levels of symbolic links`);
    const target = entry.target.startsWith("/") ? null : posix.normalize(posix.join(posix.dirname(rel), entry.target));
    if (target === null || target.startsWith("..")) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: its link target ${entry.target} is outside the release`);
    return resolve(backend, `/${product}/${rawRev}/${target}`, true, depth + 1);
  }
  if (entry?.kind === "dir") return { kind: "tree", release, dir: rel };
  if (entry) return { kind: "entry", release, entry };
  if (release.manifest.entries.some((e) => e.path.startsWith(`${rel}/`))) return { kind: "tree", release, dir: rel };
  throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: ${rel} is not in revision ${release.manifest.rev} of ${product}`);
}
async function list(backend, path, node) {
  const named = (filename, n) => {
    const attrs = attrsOf(n);
    return { filename, longname: longname(filename, attrs), attrs };
  };
  if (node.kind === "root") {
    const products = await backend.products?.() ?? {};
    return Object.entries(products).filter(([, newest]) => newest > 0).sort().map(([product, newest]) => named(product, { kind: "product", product, newest }));
  }
  if (node.kind === "product") {
    const latest = await backend.release(node.product, "latest");
    const revs = Array.from({ length: node.newest }, (_, i) => named(String(i + 1), { kind: "product", product: node.product, newest: node.newest }));
    return [named("latest", { kind: "tree", release: latest, dir: "" }), ...revs];
  }
  if (node.kind === "entry") throw new SftpError(STATUS_CODE.FAILURE, `${path} is not a directory`);
  const prefix = node.dir === "" ? "" : `${node.dir}/`;
  const children = /* @__PURE__ */ new Map();
  for (const e of node.release.manifest.entries) {
    if (!e.path.startsWith(prefix) || e.path === node.dir) continue;
    const rest = e.path.slice(prefix.length);
    const slash = rest.indexOf("/");
    const name = slash === -1 ? rest : rest.slice(0, slash);
    if (slash === -1) children.set(name, named(name, e.kind === "dir" ? { kind: "tree", release: node.release, dir: e.path } : { kind: "entry", release: node.release, entry: e }));
    else if (!children.has(name)) children.set(name, named(name, { kind: "tree", release: node.release, dir: `${prefix}${name}` }));
  }
  return [...children.values()].sort((a, b) => a.filename < b.filename ? -1 : 1);
}
function attrsOf(node) {
  const time = node.kind === "tree" || node.kind === "entry" ? Math.floor(Date.parse(node.release.manifest.createdAt) / 1e3) || 0 : 0;
  const base = { uid: 0, gid: 0, atime: time, mtime: time };
  if (node.kind !== "entry") {
    const dirMode = node.kind === "tree" ? node.release.manifest.entries.find((e2) => e2.path === node.dir && e2.kind === "dir") : void 0;
    return { ...base, mode: S_IFDIR | (dirMode?.kind === "dir" ? dirMode.mode : 493), size: 0 };
  }
  const e = node.entry;
  if (e.kind === "file") return { ...base, mode: S_IFREG | e.mode, size: e.size };
  if (e.kind === "symlink") return { ...base, mode: S_IFLNK | 511, size: Buffer.byteLength(e.target) };
  return { ...base, mode: S_IFDIR | e.mode, size: 0 };
}
function longname(name, a) {
  const type = (a.mode & 61440) === S_IFDIR ? "d" : (a.mode & 61440) === S_IFLNK ? "l" : "-";
  const bits = "rwxrwxrwx".split("").map((c, i) => a.mode & 256 >> i ? c : "-").join("");
  const date = new Date(a.mtime * 1e3).toISOString().slice(0, 16).replace("T", " ");
  return `${type}${bits} 1 upswarm upswarm ${String(a.size).padStart(10)} ${date} ${name}`;
}

export {
  loadOrCreateHostKey,
  parseAuthorizedKeys,
  startSftpGateway
};
