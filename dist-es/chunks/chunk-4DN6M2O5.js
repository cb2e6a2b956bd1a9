import {
  UpswarmError
} from "./chunk-RP33VEIV.js";

// infra/store/blob-store.ts
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, rm, stat, copyFile, link } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
var HEX64 = /^[0-9a-f]{64}$/;
var OPEN_HANDLES = 32;
function checkDigests(sha256, where, got, size, sha1) {
  if (got.sha256 === sha256 && (size === void 0 || got.size === size) && got.sha1 === sha1) return;
  const expected = [...size !== void 0 ? [String(size)] : [], ...sha1 !== void 0 ? [`SHA-1 ${sha1}`] : []];
  throw new UpswarmError(
    "UPSWARM_E_HASH_MISMATCH",
    `blob ${sha256} from ${where} does not verify: got SHA-256 ${got.sha256}${got.sha1 === void 0 ? "" : `, SHA-1 ${got.sha1}`} over ${got.size} bytes` + (expected.length > 0 ? ` (expected ${expected.join(", ")})` : "")
  );
}
var BlobStore = class {
  root;
  /** Open read handles by blob, least recently used first (a blob is immutable once stored). */
  handles = /* @__PURE__ */ new Map();
  constructor(root) {
    this.root = root;
  }
  path(sha256) {
    if (!HEX64.test(sha256)) throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `not a SHA-256 hex digest: ${JSON.stringify(sha256.slice(0, 80))}`);
    return join(this.root, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }
  tmpPath() {
    return join(this.root, "tmp", `${Date.now()}-${randomBytes(6).toString("hex")}`);
  }
  async has(sha256) {
    try {
      await stat(this.path(sha256));
      return true;
    } catch {
      return false;
    }
  }
  async size(sha256) {
    try {
      return (await stat(this.path(sha256))).size;
    } catch {
      return void 0;
    }
  }
  /**
   * Streams `source` into the store, verifying SHA-256 (and size when given). On mismatch
   * nothing is stored and UPSWARM_E_HASH_MISMATCH names the blob and `where` it came from.
   */
  async put(sha256, source, where, size) {
    const final = this.path(sha256);
    const tmp = this.tmpPath();
    await mkdir(dirname(tmp), { recursive: true });
    const hash = createHash("sha256");
    let n = 0;
    const tap = new Transform({
      transform(chunk, _enc, cb) {
        hash.update(chunk);
        n += chunk.length;
        cb(null, chunk);
      }
    });
    try {
      const out = createWriteStream(tmp, { flags: "wx" });
      await pipeline(source, tap, out);
      checkDigests(sha256, where, { sha256: hash.digest("hex"), size: n }, size);
      await fsyncFile(tmp);
      await mkdir(dirname(final), { recursive: true });
      await rename(tmp, final);
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof UpswarmError) throw err;
      throw new UpswarmError("UPSWARM_E_IO", `cannot store blob ${sha256} from ${where} in ${this.root}: ${err.message}`, { cause: err });
    }
  }
  /** A fresh temporary path inside the store (same file system, so a rename commits it). */
  async stagingPath() {
    const tmp = this.tmpPath();
    await mkdir(dirname(tmp), { recursive: true });
    return tmp;
  }
  /**
   * Verifies a file written elsewhere (e.g. by concurrent range writers at a stagingPath) and
   * moves it into the store; on mismatch it is deleted and UPSWARM_E_HASH_MISMATCH thrown.
   * With `sha1`, the same read also checks SHA-1: the blob is then verified as R-VERIFY asks
   * (size, SHA-1 and SHA-256) and the caller need not read it again.
   */
  async commitFile(sha256, tmp, where, size, sha1) {
    const hash = createHash("sha256");
    const hash1 = sha1 === void 0 ? null : createHash("sha1");
    let n = 0;
    try {
      for await (const chunk of createReadStream(tmp, { highWaterMark: 1024 * 1024 })) {
        hash.update(chunk);
        hash1?.update(chunk);
        n += chunk.length;
      }
      checkDigests(sha256, where, { sha256: hash.digest("hex"), size: n, ...hash1 ? { sha1: hash1.digest("hex") } : {} }, size, sha1);
      await fsyncFile(tmp);
      const final = this.path(sha256);
      await mkdir(dirname(final), { recursive: true });
      await rename(tmp, final);
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof UpswarmError) throw err;
      throw new UpswarmError("UPSWARM_E_IO", `cannot store blob ${sha256} from ${where} in ${this.root}: ${err.message}`, { cause: err });
    }
  }
  /** Adds a file already on disk whose SHA-256 is known and verified (hard link, else copy). */
  async adoptVerifiedFile(sha256, file) {
    if (await this.has(sha256)) return;
    const final = this.path(sha256);
    await mkdir(dirname(final), { recursive: true });
    const tmp = this.tmpPath();
    await mkdir(dirname(tmp), { recursive: true });
    try {
      await link(file, tmp).catch(() => copyFile(file, tmp));
      await rename(tmp, final);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new UpswarmError("UPSWARM_E_IO", `cannot add ${file} to the blob store ${this.root}: ${err.message}`, { cause: err });
    }
  }
  /** Reads `length` bytes at `offset` of a stored blob. */
  async readRange(sha256, offset, length) {
    const data = await this.readRangeIfPresent(sha256, offset, length);
    if (!data) throw new UpswarmError("UPSWARM_E_NOT_FOUND", `blob ${sha256} is not in ${this.root}`);
    return data;
  }
  /**
   * Reads `length` bytes at `offset` of a stored blob, or null when the store does not hold it.
   * Serving a blob piece by piece reuses one open handle (no stat, open and close per piece).
   */
  async readRangeIfPresent(sha256, offset, length) {
    const handle = await this.acquire(sha256);
    if (!handle) return null;
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === length ? buf : buf.subarray(0, got);
    } finally {
      handle.users--;
      if (handle.dropped) this.closeIfIdle(handle);
      else this.trimHandles();
    }
  }
  async acquire(sha256) {
    const path = this.path(sha256);
    let handle = this.handles.get(sha256);
    if (handle) {
      this.handles.delete(sha256);
    } else {
      let fh;
      try {
        fh = await open(path, "r");
      } catch (err) {
        if (err.code === "ENOENT") return null;
        throw new UpswarmError("UPSWARM_E_IO", `cannot read blob ${sha256} in ${this.root}: ${err.message}`, { cause: err });
      }
      const raced = this.handles.get(sha256);
      if (raced) {
        void fh.close().catch(() => {
        });
        handle = raced;
        this.handles.delete(sha256);
      } else {
        handle = { fh, users: 0, dropped: false };
      }
    }
    handle.users++;
    this.handles.set(sha256, handle);
    return handle;
  }
  trimHandles() {
    for (const [sha, h] of this.handles) {
      if (this.handles.size <= OPEN_HANDLES) break;
      if (h.users === 0) this.dropHandle(sha);
    }
  }
  dropHandle(sha256) {
    const h = this.handles.get(sha256);
    if (!h) return;
    this.handles.delete(sha256);
    h.dropped = true;
    this.closeIfIdle(h);
  }
  closeIfIdle(h) {
    if (h.users === 0) void h.fh.close().catch(() => {
    });
  }
  /** Closes the read handles kept open for serving (those in use, after their read). */
  closeHandles() {
    for (const sha of [...this.handles.keys()]) this.dropHandle(sha);
  }
  createReadStream(sha256, start, end) {
    return createReadStream(this.path(sha256), { start, end, highWaterMark: 1024 * 1024 });
  }
  async remove(sha256) {
    this.dropHandle(sha256);
    await rm(this.path(sha256), { force: true });
  }
};
async function fsyncFile(path) {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// infra/store/working-copy/atomic.ts
import { randomBytes as randomBytes2 } from "node:crypto";
import { mkdir as mkdir2, open as open2, readFile, rename as rename2, rm as rm2 } from "node:fs/promises";
import { dirname as dirname2, join as join2 } from "node:path";
async function writeFileAtomic(file, data, tmpDir) {
  await mkdir2(tmpDir, { recursive: true });
  const tmp = join2(tmpDir, `${Date.now()}-${randomBytes2(6).toString("hex")}`);
  try {
    const fh = await open2(tmp, "wx", 420);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename2(tmp, file);
    await fsyncDir(dirname2(file));
  } catch (err) {
    await rm2(tmp, { force: true });
    throw new UpswarmError("UPSWARM_E_IO", `cannot write ${file}: ${err.message}`, { cause: err });
  }
}
async function fsyncDir(dir) {
  const fh = await open2(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
async function readJsonFile(file, schema, what) {
  let raw;
  try {
    raw = await readFile(file, "utf8");
  } catch (err) {
    if (err.code === "ENOENT") return void 0;
    throw new UpswarmError("UPSWARM_E_IO", `cannot read ${what} ${file}: ${err.message}`, { cause: err });
  }
  let json;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_WORKING_COPY", `${what} ${file} is not valid JSON; restore it or re-create the working copy`, { cause: err });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UpswarmError(
      "UPSWARM_E_WORKING_COPY",
      `${what} ${file} is malformed at ${issue?.path.join(".") || "(root)"}: ${issue?.message}; restore it or re-create the working copy`
    );
  }
  return parsed.data;
}

export {
  writeFileAtomic,
  fsyncDir,
  readJsonFile,
  BlobStore,
  fsyncFile
};
