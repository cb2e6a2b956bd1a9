import {
  DEFAULT_HISTORY_DEPTH,
  WorkingCopy,
  layoutOf,
  readState,
  treePath
} from "./chunk-JUR675O3.js";
import {
  fsyncDir,
  fsyncFile,
  readJsonFile,
  writeFileAtomic
} from "./chunk-4DN6M2O5.js";
import {
  META_DIR,
  UUID_RE,
  blobsOf,
  comparePaths,
  decodeRelease,
  fileEntries,
  manifestSha256
} from "./chunk-27MN4SFY.js";
import {
  hashFile,
  sha1Hex,
  sha256Hex
} from "./chunk-6PH2J2O4.js";
import {
  UpswarmError,
  errorMessage,
  isUpswarmError,
  toUpswarmError
} from "./chunk-RP33VEIV.js";

// actors/updater/index.ts
import { randomUUID as randomUUID2 } from "node:crypto";
import { mkdir as mkdir3, readdir as readdir2, rm as rm4 } from "node:fs/promises";

// infra/store/working-copy/ignore-rules.ts
import { readFile } from "node:fs/promises";
import ignore from "ignore";
var IgnoreRules = class _IgnoreRules {
  patterns;
  matcher;
  constructor(patterns) {
    this.patterns = patterns;
    this.matcher = ignore().add([...patterns]);
  }
  static async load(layout) {
    let raw = "";
    try {
      raw = await readFile(layout.ignore, "utf8");
    } catch (err) {
      if (err.code !== "ENOENT") {
        throw new UpswarmError("UPSWARM_E_IO", `cannot read ignore patterns ${layout.ignore}: ${err.message}`, { cause: err });
      }
    }
    return new _IgnoreRules(raw.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#")));
  }
  /** Whether `path` (or a directory above it) is ignored; directories match `name/` patterns. */
  ignores(path, isDir) {
    return this.matcher.ignores(isDir ? `${path}/` : path);
  }
};
async function addIgnorePattern(layout, pattern) {
  if (pattern.trim() === "" || /[\n\r\0]/.test(pattern) || pattern.startsWith("#")) {
    throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `ignore pattern ${JSON.stringify(pattern)} is empty, a comment, or spans lines; give one gitignore pattern`);
  }
  const rules = await IgnoreRules.load(layout);
  if (rules.patterns.includes(pattern)) return rules.patterns;
  const patterns = [...rules.patterns, pattern];
  await writeFileAtomic(layout.ignore, patterns.join("\n") + "\n", layout.tmp);
  return patterns;
}

// infra/store/working-copy/journal.ts
import { randomUUID } from "node:crypto";
import { lstat, mkdir, chmod, rename, rm, rmdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
var Slot = z.string().regex(/^(new|old)\/[0-9]+$/);
var JournalOpSchema = z.discriminatedUnion("op", [
  /** Move a file or symlink out of the tree (to staging/old). */
  z.object({ op: z.literal("unlink"), path: z.string(), backup: Slot }),
  /** Remove an empty directory; when not `required`, a non-empty one is left in place. */
  z.object({ op: z.literal("rmdir"), path: z.string(), mode: z.number().int(), required: z.boolean() }),
  z.object({ op: z.literal("mkdir"), path: z.string(), mode: z.number().int() }),
  /** Move what is at `path` to `backup`, then the staged entry to `path`. */
  z.object({ op: z.literal("put"), path: z.string(), staged: Slot, backup: Slot })
]);
var JournalSchema = z.object({
  format: z.literal(1),
  id: z.string(),
  from: z.number().int().min(0),
  to: z.number().int().min(0),
  ops: z.array(JournalOpSchema)
});
function newJournal(from, to, ops) {
  return { format: 1, id: randomUUID(), from, to, ops };
}
function stagingPath(layout, slot) {
  return join(layout.staging, ...slot.split("/"));
}
async function writeJournal(layout, journal, onStep) {
  await mkdir(join(layout.staging, "old"), { recursive: true });
  await writeFileAtomic(layout.journal, JSON.stringify(journal), layout.tmp);
  onStep("journal.written");
}
async function readJournal(layout) {
  return readJsonFile(layout.journal, JournalSchema, "apply journal");
}
async function runJournal(layout, journal, onStep) {
  const touched = /* @__PURE__ */ new Set([join(layout.staging, "old"), join(layout.staging, "new")]);
  const safeDirs = /* @__PURE__ */ new Set();
  for (const op of journal.ops) {
    const abs = treePath(layout, op.path);
    try {
      switch (op.op) {
        case "unlink":
          await renameIfPresent(abs, stagingPath(layout, op.backup));
          break;
        case "rmdir":
          await rmdirOp(abs, op.required);
          break;
        case "mkdir":
          await assertRealDirs(layout, op.path, safeDirs);
          await mkdir(abs, { mode: op.mode }).catch(async (err) => {
            if (err.code !== "EEXIST" || !(await lstat(abs)).isDirectory()) throw err;
          });
          await chmod(abs, op.mode);
          break;
        case "put": {
          await assertRealDirs(layout, op.path, safeDirs);
          const st = await lstat(abs).catch(() => void 0);
          if (st?.isDirectory()) throw Object.assign(new Error("a directory is in the way"), { code: "EISDIR" });
          if (st) {
            await rename(abs, stagingPath(layout, op.backup));
            onStep(`put.backup ${op.path}`);
          }
          await rename(stagingPath(layout, op.staged), abs);
          break;
        }
      }
    } catch (err) {
      const e = err;
      throw new UpswarmError(
        "UPSWARM_E_IO",
        `cannot ${op.op} ${abs}: ${e.code ?? ""} ${e.message}. The update is rolled back; fix the cause (free space, permissions, or move that path away) and run the update again`,
        { cause: err, details: { path: op.path, errno: e.code } }
      );
    }
    touched.add(dirname(abs));
    onStep(`${op.op} ${op.path}`);
  }
  for (const dir of touched) await fsyncDir(dir).catch(() => void 0);
  onStep("ops.synced");
}
async function undoJournal(layout, journal, onStep) {
  for (let i = journal.ops.length - 1; i >= 0; i--) {
    const op = journal.ops[i];
    const abs = treePath(layout, op.path);
    try {
      switch (op.op) {
        case "put": {
          const staged = stagingPath(layout, op.staged);
          if (!await exists(staged) && await exists(abs)) await rename(abs, staged);
          await renameIfPresent(stagingPath(layout, op.backup), abs);
          break;
        }
        case "unlink":
          await renameIfPresent(stagingPath(layout, op.backup), abs);
          break;
        case "rmdir":
          if (!await exists(abs)) {
            await mkdir(abs, { mode: op.mode });
            await chmod(abs, op.mode);
          }
          break;
        case "mkdir":
          await rmdir(abs).catch((err) => {
            if (err.code !== "ENOENT" && err.code !== "ENOTEMPTY" && err.code !== "EEXIST" && err.code !== "ENOTDIR") throw err;
          });
          break;
      }
    } catch (err) {
      throw new UpswarmError(
        "UPSWARM_E_IO",
        `cannot roll back ${op.op} of ${abs}: ${err.message}. Fix the cause and run any upswarm command on ${layout.root} to finish the recovery`,
        { cause: err, details: { path: op.path } }
      );
    }
    onStep(`undo ${op.op} ${op.path}`);
  }
}
async function finishJournal(layout, onStep) {
  await rm(layout.staging, { recursive: true, force: true });
  onStep("staging.removed");
  await rm(layout.journal, { force: true });
  await fsyncDir(layout.meta);
  onStep("journal.removed");
}
async function recoverWorkingCopy(layout, onStep, historyTmp) {
  const journal = await readJournal(layout);
  let action = "none";
  if (journal) {
    const state = await readState(layout);
    if (state.lastJournal === journal.id) action = "completed";
    else {
      await undoJournal(layout, journal, onStep);
      action = "undone";
    }
    await finishJournal(layout, onStep);
  } else {
    await rm(layout.staging, { recursive: true, force: true });
  }
  await rm(layout.tmp, { recursive: true, force: true });
  await rm(historyTmp, { recursive: true, force: true });
  return action;
}
async function exists(p) {
  return lstat(p).then(() => true, () => false);
}
async function renameIfPresent(from, to) {
  if (await exists(from)) await rename(from, to);
}
async function rmdirOp(abs, required) {
  await rmdir(abs).catch((err) => {
    if (err.code === "ENOENT") return;
    if (!required && (err.code === "ENOTEMPTY" || err.code === "EEXIST")) return;
    throw err;
  });
}
async function assertRealDirs(layout, rel, safe) {
  const parts = rel.split("/");
  let prefix = "";
  for (let i = 0; i < parts.length - 1; i++) {
    prefix = prefix ? `${prefix}/${parts[i]}` : parts[i];
    if (safe.has(prefix)) continue;
    const st = await lstat(treePath(layout, prefix));
    if (!st.isDirectory()) throw Object.assign(new Error(`${prefix} is not a directory (a symlink or file is in the way)`), { code: "ENOTDIR" });
    safe.add(prefix);
  }
}

// actors/updater/releases.ts
var HEX64 = /^[0-9a-f]{64}$/;
var ReleaseHistory = class {
  wc;
  source;
  log;
  /** Set once any call reached the source. */
  usedNetwork = false;
  constructor(wc, source, log) {
    this.wc = wc;
    this.source = source;
    this.log = log;
  }
  get product() {
    return this.wc.config.product;
  }
  requireSource(why) {
    if (!this.source) {
      throw new UpswarmError("UPSWARM_E_NO_SERVER", `${why}, and no release source (network) was given; connect to the servers and try again`);
    }
    this.usedNetwork = true;
    return this.source;
  }
  /**
   * R-WATCH: asks the source for its revisions and verifies the newest one if it is newer than
   * anything verified so far. Returns the newest verified revision (never lower than before).
   */
  async refresh() {
    const src = this.requireSource(`cannot look for new releases of ${this.product}`);
    const advertised = await src.revisions(this.product).catch((err) => {
      throw toUpswarmError(err, "UPSWARM_E_NO_SERVER", `cannot list the revisions of ${this.product}`);
    });
    const record = this.wc.state.record;
    let newest = 0;
    for (const { rev, manifestSha256: sha } of advertised) {
      if (!Number.isInteger(rev) || rev < 1 || !HEX64.test(sha)) {
        this.log.warn({ product: this.product, rev, sha }, "ignoring a malformed revision advertised by the source");
        continue;
      }
      const known = record[String(rev)];
      if (known && known !== sha) {
        this.log.warn({ product: this.product, rev, advertised: sha, recorded: known }, "the source advertises a manifest that differs from the signed release history; ignoring it");
        continue;
      }
      newest = Math.max(newest, rev);
    }
    const verified = this.wc.state.newestVerified;
    if (newest < verified) {
      this.log.warn(
        { product: this.product, advertised: newest, verified },
        `a source advertises revision ${newest} as the newest, lower than the verified revision ${verified}; ignoring it (possible rollback attack)`
      );
      return verified;
    }
    if (newest > verified) await this.accept(await this.fetch(newest));
    return this.wc.state.newestVerified;
  }
  /**
   * The verified release of `rev`: from the local store, else from the source — a revision
   * newer than any verified one on its signature, an older one only if it matches the record.
   */
  async resolve(rev) {
    if (!Number.isInteger(rev) || rev < 1) throw new UpswarmError("UPSWARM_E_UNKNOWN_REVISION", `revision ${rev} does not exist: revisions are integers from 1`);
    const stored = await this.wc.manifests.get(rev);
    if (stored) return stored;
    if (rev > this.wc.state.newestVerified) {
      const release2 = await this.fetch(rev);
      await this.accept(release2);
      return release2;
    }
    await this.extendRecordDownTo(rev);
    const release = await this.fetch(rev);
    const expected = this.wc.state.record[String(rev)];
    const got = manifestSha256(release.manifest);
    if (got !== expected) {
      throw new UpswarmError(
        "UPSWARM_E_ROLLBACK",
        `the manifest of revision ${rev} served by the source (SHA-256 ${got}) is not the one in this client's release history (${expected}); refusing it`
      );
    }
    await this.accept(release);
    return release;
  }
  /** Follows `parent` links down from the lowest known revision above `rev` until `rev` is recorded. */
  async extendRecordDownTo(rev) {
    const recorded = (r) => this.wc.state.record[String(r)] !== void 0;
    while (!recorded(rev)) {
      let k = rev + 1;
      while (k <= this.wc.state.newestVerified && !recorded(k)) k++;
      if (k > this.wc.state.newestVerified) break;
      const release = await this.wc.manifests.get(k) ?? await this.fetchRecorded(k);
      if (!release.manifest.parent) break;
      await this.accept(release);
    }
    if (!recorded(rev)) {
      throw new UpswarmError(
        "UPSWARM_E_ROLLBACK",
        `revision ${rev} cannot be checked against this client's release history (the chain of signed parent hashes does not reach it); refusing it`
      );
    }
  }
  async fetchRecorded(rev) {
    const release = await this.fetch(rev);
    const expected = this.wc.state.record[String(rev)];
    if (manifestSha256(release.manifest) !== expected) {
      throw new UpswarmError("UPSWARM_E_ROLLBACK", `the manifest of revision ${rev} served by the source is not the one in this client's release history; refusing it`);
    }
    return release;
  }
  /** Downloads and verifies (pinned key, product, revision) a release. */
  async fetch(rev) {
    const src = this.requireSource(`revision ${rev} of ${this.product} is not stored locally`);
    const where = `the release source (product ${this.product}, revision ${rev})`;
    const bytes = await src.release(this.product, rev).catch((err) => {
      throw toUpswarmError(err, "UPSWARM_E_NO_SERVER", `cannot fetch revision ${rev} of ${this.product}`);
    });
    const release = decodeRelease(bytes, this.wc.config.publicKey, where);
    if (release.manifest.product !== this.product || release.manifest.rev !== rev) {
      throw new UpswarmError(
        "UPSWARM_E_MANIFEST",
        `${where} returned the manifest of product ${release.manifest.product} revision ${release.manifest.rev}; refusing it`
      );
    }
    return release;
  }
  /** Records a verified release and its parent link (write-once), stores it, saves the state. */
  async accept(release) {
    const { rev, parent } = release.manifest;
    const sha = manifestSha256(release.manifest);
    const record = { ...this.wc.state.record };
    const mismatch = (r, h) => record[String(r)] !== void 0 && record[String(r)] !== h;
    if (mismatch(rev, sha) || parent && rev > 1 && mismatch(rev - 1, parent)) {
      throw new UpswarmError(
        "UPSWARM_E_MANIFEST",
        `signed revision ${rev} of ${this.product} contradicts this client's record of the release history (the publisher's history was rewritten?); refusing it`
      );
    }
    record[String(rev)] = sha;
    if (parent && rev > 1) record[String(rev - 1)] = parent;
    await this.wc.manifests.put(release);
    this.wc.state = { ...this.wc.state, record, newestVerified: Math.max(this.wc.state.newestVerified, rev) };
    await this.wc.saveState();
    this.log.info({ product: this.product, rev, manifestSha256: sha }, "verified release manifest");
  }
};

// actors/updater/run.ts
import { createActor as createActor2, fromPromise as fromPromise5, toPromise as toPromise2 } from "xstate";

// machines/update-run.machine.ts
import { assign, emit, fromPromise, setup } from "xstate";
var notProvided = (name) => async () => {
  throw new Error(`update-run machine: actor ${name} is not provided`);
};
var updateRunMachine = setup({
  types: {
    context: {},
    events: {},
    input: {},
    output: {},
    emitted: {}
  },
  actors: {
    /** Recovered working copy → the revision to go to, its manifest verified (R-WATCH). */
    check: fromPromise(notProvided("check")),
    /** Status of every path against the target (R-STATUS). */
    plan: fromPromise(notProvided("plan")),
    /** Runs the file-status machine of every planned path. */
    download: fromPromise(notProvided("download")),
    /** Drops everything staged; the tree was not touched. */
    discard: fromPromise(notProvided("discard")),
    /** Journal, renames, commit of the new revision. */
    apply: fromPromise(notProvided("apply")),
    /** Undoes a failed apply from the journal. */
    undo: fromPromise(notProvided("undo")),
    /** History window, garbage collection, stat cache; returns warnings (never fails the run). */
    retain: fromPromise(notProvided("retain"))
  },
  guards: {
    abortOnConflicts: ({ context }, plan) => context.request.onConflict === "abort" && plan.conflicts.length > 0,
    someDownloadFailed: (_, staged) => staged.failed.length > 0
  },
  actions: {
    announce: emit((_, phase) => ({ type: "run.phase", phase })),
    fail: assign((_, failure) => ({ failure }))
  }
}).createMachine({
  id: "updateRun",
  context: ({ input }) => ({ request: input, outcome: "failed", warnings: [] }),
  initial: "idle",
  states: {
    idle: {
      on: { "run.start": "checking" }
    },
    checking: {
      entry: { type: "announce", params: "checking" },
      invoke: {
        src: "check",
        input: ({ context }) => context.request,
        onDone: { target: "planning", actions: assign({ target: ({ event }) => event.output }) },
        onError: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ phase: "checking", reason: "error", error: event.error }) } }
      }
    },
    planning: {
      entry: { type: "announce", params: "planning" },
      invoke: {
        src: "plan",
        input: ({ context }) => ({ request: context.request, target: context.target }),
        onDone: [
          {
            guard: { type: "abortOnConflicts", params: ({ event }) => event.output },
            target: "failed",
            actions: [
              assign({ plan: ({ event }) => event.output }),
              { type: "fail", params: ({ event }) => ({ phase: "planning", reason: "conflicts", paths: event.output.conflicts }) }
            ]
          },
          { target: "downloading", actions: assign({ plan: ({ event }) => event.output }) }
        ],
        onError: { target: "failed", actions: { type: "fail", params: ({ event }) => ({ phase: "planning", reason: "error", error: event.error }) } }
      }
    },
    downloading: {
      entry: { type: "announce", params: "downloading" },
      invoke: {
        src: "download",
        input: ({ context }) => ({ request: context.request, target: context.target, plan: context.plan }),
        onDone: [
          {
            guard: { type: "someDownloadFailed", params: ({ event }) => event.output },
            target: "discarding",
            actions: [
              assign({ staged: ({ event }) => event.output }),
              { type: "fail", params: ({ event }) => ({ phase: "downloading", reason: "downloads", paths: event.output.failed }) }
            ]
          },
          { target: "applying", actions: assign({ staged: ({ event }) => event.output }) }
        ],
        onError: {
          target: "discarding",
          actions: { type: "fail", params: ({ event }) => ({ phase: "downloading", reason: "error", error: event.error }) }
        }
      }
    },
    discarding: {
      invoke: { src: "discard", onDone: "failed", onError: "failed" }
    },
    applying: {
      entry: { type: "announce", params: "applying" },
      invoke: {
        src: "apply",
        input: ({ context }) => ({ target: context.target, staged: context.staged }),
        onDone: { target: "retaining", actions: assign({ applied: ({ event }) => event.output }) },
        onError: {
          target: "rollingBack",
          actions: { type: "fail", params: ({ event }) => ({ phase: "applying", reason: "error", error: event.error }) }
        }
      }
    },
    rollingBack: {
      invoke: {
        src: "undo",
        onDone: "rolledBack",
        // The journal stays: the next command on the working copy finishes the recovery.
        onError: { target: "failed", actions: assign({ warnings: ({ context, event }) => [...context.warnings, String(event.error?.message ?? event.error)] }) }
      }
    },
    retaining: {
      entry: { type: "announce", params: "retaining" },
      invoke: {
        src: "retain",
        input: ({ context }) => ({ request: context.request, target: context.target }),
        onDone: { target: "done", actions: assign({ warnings: ({ context, event }) => [...context.warnings, ...event.output] }) },
        onError: { target: "done", actions: assign({ warnings: ({ context, event }) => [...context.warnings, String(event.error?.message ?? event.error)] }) }
      }
    },
    done: { type: "final", entry: assign({ outcome: "done" }) },
    failed: { type: "final", entry: assign({ outcome: "failed" }) },
    rolledBack: { type: "final", entry: assign({ outcome: "rolledBack" }) }
  },
  output: ({ context }) => ({
    outcome: context.outcome,
    ...context.target ? { target: context.target } : {},
    ...context.plan ? { plan: context.plan } : {},
    ...context.staged ? { staged: context.staged } : {},
    ...context.applied ? { applied: context.applied } : {},
    warnings: context.warnings,
    ...context.failure ? { failure: context.failure } : {}
  })
});

// actors/updater/apply.ts
import { lstat as lstat3, rm as rm3 } from "node:fs/promises";

// infra/store/working-copy/tree.ts
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { lstat as lstat2, readFile as readFile2 } from "node:fs/promises";
import { setImmediate } from "node:timers/promises";
import { join as join2 } from "node:path";
async function walkTree(root) {
  const out = /* @__PURE__ */ new Map();
  const dirs = [{ abs: root, rel: "" }];
  while (dirs.length > 0) {
    const dir = dirs.pop();
    let names;
    try {
      names = readdirSync(dir.abs);
    } catch (err) {
      throw new UpswarmError("UPSWARM_E_IO", `cannot read directory ${dir.abs}: ${err.message}`, { cause: err });
    }
    for (const name of names) {
      if (dir.rel === "" && name === META_DIR) continue;
      const abs = join2(dir.abs, name);
      const e = diskEntrySync(abs);
      if (!e) continue;
      const rel = dir.rel ? `${dir.rel}/${name}` : name;
      out.set(rel, e);
      if (e.kind === "dir") dirs.push({ abs, rel });
    }
    await setImmediate();
  }
  return out;
}
function diskEntrySync(abs) {
  let st;
  try {
    st = lstatSync(abs, { bigint: true });
  } catch (err) {
    if (err.code === "ENOENT") return void 0;
    throw new UpswarmError("UPSWARM_E_IO", `cannot stat ${abs}: ${err.message}`, { cause: err });
  }
  if (st.isSymbolicLink()) return { kind: "symlink", st, target: readlinkSync(abs) };
  if (st.isDirectory()) return { kind: "dir", st };
  if (st.isFile()) return { kind: "file", st };
  return { kind: "other", st };
}
async function observeFile(abs, rel, st, cache) {
  const hit = cache.lookup(rel, st);
  if (hit) return { ...hit, cached: true };
  let h;
  try {
    h = await hashContent(abs, Number(st.size));
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_IO", `cannot read ${abs}: ${err.message}`, { cause: err });
  }
  const after = await lstat2(abs, { bigint: true }).catch(() => void 0);
  if (after && after.size === st.size && after.mtimeNs === st.mtimeNs && after.ctimeNs === st.ctimeNs && after.ino === st.ino) {
    cache.set(rel, st, h);
  }
  return { sha1: h.sha1, sha256: h.sha256, cached: false };
}
var SMALL_FILE = 256 * 1024;
async function hashContent(abs, sizeHint) {
  if (sizeHint <= SMALL_FILE) {
    const buf = await readFile2(abs);
    return { size: buf.length, sha1: sha1Hex(buf), sha256: sha256Hex(buf) };
  }
  const h = await hashFile(abs);
  return { size: h.size, sha1: h.sha1, sha256: h.sha256 };
}

// actors/updater/session.ts
import { join as join3 } from "node:path";

// infra/store/working-copy/lock.ts
import { readFile as readFile3, rm as rm2, writeFile } from "node:fs/promises";
var MAX_TAKEOVERS = 3;
async function acquireLock(layout) {
  for (let attempt = 0; attempt <= MAX_TAKEOVERS; attempt++) {
    try {
      await writeFile(layout.lock, `${process.pid}
`, { flag: "wx" });
      return { release: () => rm2(layout.lock, { force: true }) };
    } catch (err) {
      const code = err.code;
      if (code === "ENOENT") {
        throw new UpswarmError("UPSWARM_E_WORKING_COPY", `${layout.root} is not an upswarm working copy (no ${layout.meta}); create one with \`upswarm init\``);
      }
      if (code !== "EEXIST") throw new UpswarmError("UPSWARM_E_IO", `cannot create lock file ${layout.lock}: ${err.message}`, { cause: err });
    }
    const owner = Number.parseInt(await readFile3(layout.lock, "utf8").catch(() => ""), 10);
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      throw new UpswarmError(
        "UPSWARM_E_WORKING_COPY",
        `working copy ${layout.root} is in use by process ${owner}; wait for it to finish (if no upswarm process is running, delete ${layout.lock})`
      );
    }
    await rm2(layout.lock, { force: true });
  }
  throw new UpswarmError("UPSWARM_E_WORKING_COPY", `cannot take the lock ${layout.lock}: other processes keep taking it`);
}
function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

// actors/updater/session.ts
var silentLog = { info: () => void 0, warn: () => void 0 };
var CRASH_AFTER = Number.parseInt(process.env.UPSWARM_CRASH_AFTER_STEP ?? "", 10);
var TRACE = process.env.UPSWARM_TRACE_STEPS === "1";
var labels = [];
var stepCount = 0;
var step = (label) => {
  stepCount++;
  if (TRACE) labels.push(label);
  if (stepCount === CRASH_AFTER) process.kill(process.pid, "SIGKILL");
};
async function withWorkingCopy(dir, log, fn) {
  const layout = layoutOf(dir);
  const lock = await acquireLock(layout);
  try {
    const recovered = await recoverWorkingCopy(layout, step, join3(layout.history, "tmp"));
    if (recovered !== "none") log.warn({ dir, recovered }, `recovered the working copy after an interrupted update (${recovered})`);
    return await fn(await WorkingCopy.open(dir), recovered);
  } finally {
    await lock.release();
  }
}

// actors/updater/apply.ts
function buildOps(tasks, staged, disk) {
  const byPath = new Map(tasks.map((t) => [t.path, t]));
  const puts = /* @__PURE__ */ new Map();
  const deletes = /* @__PURE__ */ new Map();
  for (const out of staged.files) {
    const task = byPath.get(out.path);
    if (out.outcome !== "staged" || !task) continue;
    if (out.action === "put") puts.set(out.path, { entry: task.facts.target, task });
    else if (task.facts.local) deletes.set(out.path, task.facts.local);
  }
  const implicitDirs = /* @__PURE__ */ new Set();
  const willBeDir = (p) => {
    const put = puts.get(p);
    if (put) return put.entry.kind === "dir";
    if (deletes.has(p)) return false;
    const d = disk.get(p);
    if (d) return d.kind === "dir";
    implicitDirs.add(p);
    return true;
  };
  const blocked = [];
  for (const path of [...puts.keys()].sort()) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      if (!willBeDir(parts.slice(0, i).join("/"))) {
        blocked.push(path);
        puts.delete(path);
        break;
      }
    }
  }
  let backup = 0;
  const unlinks = [];
  const rmdirs = [];
  const mkdirs = [];
  const writes = [];
  const summary = { updated: 0, checkedOut: 0, removed: 0 };
  for (const [path, local] of deletes) {
    if (local.kind === "dir") rmdirs.push({ op: "rmdir", path, mode: local.mode, required: false });
    else {
      unlinks.push({ op: "unlink", path, backup: `old/${backup++}` });
      summary.removed++;
    }
  }
  for (const [path, { entry, task }] of puts) {
    const local = task.facts.local;
    if (entry.kind === "dir") {
      if (local && local.kind !== "dir") unlinks.push({ op: "unlink", path, backup: `old/${backup++}` });
      mkdirs.push({ op: "mkdir", path, mode: entry.mode });
      continue;
    }
    if (local?.kind === "dir") rmdirs.push({ op: "rmdir", path, mode: local.mode, required: true });
    writes.push({ op: "put", path, staged: task.slot, backup: `old/${backup++}` });
    if (task.status === "missing") summary.checkedOut++;
    else summary.updated++;
  }
  for (const path of implicitDirs) mkdirs.push({ op: "mkdir", path, mode: 493 });
  rmdirs.sort((a, b) => a.path < b.path ? 1 : a.path > b.path ? -1 : 0);
  mkdirs.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return { ops: [...unlinks, ...rmdirs, ...mkdirs, ...writes], blocked, summary };
}
async function applyStaged(session, target, staged) {
  const { wc } = session;
  const { ops, blocked, summary } = buildOps(session.plan?.tasks ?? [], staged, session.disk);
  for (const path of blocked) session.opts.log.warn({ path }, `${path} is not installed: a file or symlink kept by the user is in the way above it`);
  if (ops.length > 0) {
    const journal = newJournal(target.from, target.to, ops);
    session.journal = journal;
    await writeJournal(wc.layout, journal, step);
    await runJournal(wc.layout, journal, step);
  }
  const request = session.request;
  const state = wc.state;
  wc.state = {
    ...state,
    current: target.to,
    topInstalled: Math.max(state.topInstalled, target.to),
    ...session.journal ? { lastJournal: session.journal.id } : {}
  };
  if (request?.kind === "rollback") wc.state.hold = Math.max(state.hold ?? 0, state.newestVerified);
  else if (request?.rev !== void 0 || target.to > (state.hold ?? 0)) delete wc.state.hold;
  await wc.saveState();
  step("committed");
  try {
    await keepReplacedVersions(session, ops);
    await refreshStatCache(session, ops);
    if (session.journal) await finishJournal(wc.layout, step);
    else await rm3(wc.layout.staging, { recursive: true, force: true });
  } catch (err) {
    session.opts.log.warn({ err: errorMessage(err) }, "cleanup after the commit failed; the next command finishes it");
  }
  return summary;
}
async function keepReplacedVersions(session, ops) {
  const { wc } = session;
  for (const op of ops) {
    if (op.op !== "put" && op.op !== "unlink") continue;
    const old = session.base.get(op.path);
    if (old?.kind !== "file" || await wc.history.has(old.sha256)) continue;
    const file = stagingPath(wc.layout, op.backup);
    const h = await hashContent(file, old.size).catch(() => void 0);
    if (h && h.sha1 === old.sha1 && h.sha256 === old.sha256) await wc.history.adoptVerifiedFile(old.sha256, file);
  }
}
async function refreshStatCache(session, ops) {
  const { wc, cache } = session;
  for (const op of ops) {
    if (op.op === "put") {
      const entry = session.target.get(op.path);
      const st = await lstat3(treePath(wc.layout, op.path), { bigint: true }).catch(() => void 0);
      if (entry?.kind === "file" && st?.isFile()) cache.set(op.path, st, entry);
      else cache.delete(op.path);
    } else if (op.op === "unlink") cache.delete(op.path);
  }
  await cache.save(wc.layout.statCache, wc.layout.tmp);
}
async function undoApply(session) {
  const { layout } = session.wc;
  const journal = session.journal ?? await readJournal(layout);
  if (!journal) {
    await discardStaging(session);
    return;
  }
  if ((await readState(layout)).lastJournal === journal.id) return;
  await undoJournal(layout, journal, step);
  await finishJournal(layout, step);
}
async function discardStaging(session) {
  await rm3(session.wc.layout.staging, { recursive: true, force: true });
  step("staging.discarded");
}

// actors/updater/downloads.ts
import { constants } from "node:fs";
import { chmod as chmod2, copyFile, mkdir as mkdir2, symlink } from "node:fs/promises";
import { join as join4 } from "node:path";
import { createActor, fromPromise as fromPromise4, toPromise } from "xstate";

// machines/download.machine.ts
import { assign as assign2, fromPromise as fromPromise2, setup as setup2 } from "xstate";
var DEFAULT_MAX_ATTEMPTS = 3;
var notProvided2 = (name) => async () => {
  throw new Error(`download machine: actor ${name} is not provided`);
};
function describe(err) {
  return err instanceof Error ? err.message : String(err);
}
var downloadMachine = setup2({
  types: {
    context: {},
    input: {},
    output: {}
  },
  actors: {
    /** True when the blob is in the local history store (already verified when stored). */
    findLocal: fromPromise2(notProvided2("findLocal")),
    fetch: fromPromise2(notProvided2("fetch")),
    /** Re-hashes what was fetched; throws (and drops it) when SHA-1 or SHA-256 differ. */
    verify: fromPromise2(notProvided2("verify")),
    stage: fromPromise2(notProvided2("stage"))
  },
  guards: {
    needsBlob: ({ context }) => context.entry.kind === "file",
    foundLocally: (_, found) => found,
    attemptsLeft: ({ context }) => context.attempt < context.maxAttempts,
    hasSlot: ({ context }) => context.slot !== void 0
  },
  actions: {
    countAttempt: assign2({ attempt: ({ context }) => context.attempt + 1 }),
    recordError: assign2({ errors: ({ context }, params) => [...context.errors, describe(params.error)] })
  }
}).createMachine({
  id: "download",
  context: ({ input }) => ({
    entry: input.entry,
    slot: input.slot,
    maxAttempts: input.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    attempt: 0,
    source: "none",
    bytesFromServers: 0,
    bytesFromPeers: 0,
    errors: [],
    ok: false
  }),
  initial: "start",
  states: {
    start: {
      always: [{ guard: "needsBlob", target: "checkingLocal" }, { target: "verified" }]
    },
    checkingLocal: {
      invoke: {
        src: "findLocal",
        input: ({ context }) => context.entry,
        onDone: [
          { guard: { type: "foundLocally", params: ({ event }) => event.output }, target: "verified", actions: assign2({ source: "local" }) },
          { target: "fetching" }
        ],
        onError: { target: "fetching" }
      }
    },
    fetching: {
      entry: "countAttempt",
      invoke: {
        src: "fetch",
        input: ({ context }) => ({ entry: context.entry, attempt: context.attempt }),
        onDone: {
          target: "verifying",
          actions: assign2({
            source: "remote",
            bytesFromServers: ({ context, event }) => context.bytesFromServers + event.output.bytesFromServers,
            bytesFromPeers: ({ context, event }) => context.bytesFromPeers + event.output.bytesFromPeers
          })
        },
        onError: { target: "retrying", actions: { type: "recordError", params: ({ event }) => ({ error: event.error }) } }
      }
    },
    verifying: {
      invoke: {
        src: "verify",
        input: ({ context }) => context.entry,
        onDone: { target: "verified" },
        onError: { target: "retrying", actions: { type: "recordError", params: ({ event }) => ({ error: event.error }) } }
      }
    },
    retrying: {
      // R-VERIFY: a failed or bad transfer is retried (another server or peer), never installed.
      always: [{ guard: "attemptsLeft", target: "fetching" }, { target: "failed" }]
    },
    verified: {
      always: [{ guard: "hasSlot", target: "staging" }, { target: "done" }]
    },
    staging: {
      invoke: {
        src: "stage",
        input: ({ context }) => ({ entry: context.entry, slot: context.slot }),
        onDone: { target: "done" },
        onError: { target: "failed", actions: { type: "recordError", params: ({ event }) => ({ error: event.error }) } }
      }
    },
    done: { type: "final", entry: assign2({ ok: true }) },
    failed: { type: "final" }
  },
  output: ({ context }) => ({
    ok: context.ok,
    source: context.source,
    attempts: context.attempt,
    bytesFromServers: context.bytesFromServers,
    bytesFromPeers: context.bytesFromPeers,
    errors: context.errors
  })
});

// machines/file-status.machine.ts
import { assign as assign3, fromPromise as fromPromise3, setup as setup3 } from "xstate";
function sameEntry(a, b) {
  switch (b.kind) {
    case "file":
      return a.kind === "file" && a.sha1 === b.sha1 && a.sha256 === b.sha256 && (a.mode & 4095) === (b.mode & 4095);
    case "symlink":
      return a.kind === "symlink" && a.target === b.target;
    case "dir":
      return a.kind === "dir";
  }
}
var STATUS_TESTS = {
  ignored: (f) => f.ignored,
  unversioned: (f) => !f.base && !f.target,
  current: (f) => !!f.target && !!f.local && sameEntry(f.local, f.target),
  removed: (f) => !!f.base && !f.target && (!f.local || sameEntry(f.local, f.base)),
  missing: (f) => !!f.target && !f.local,
  outdated: (f) => !!f.base && !!f.target && !sameEntry(f.base, f.target) && !!f.local && sameEntry(f.local, f.base),
  modified: (f) => !!f.base && !!f.target && sameEntry(f.base, f.target),
  // Changed by hand AND out of date: differs from both the installed and the new version.
  conflict: () => true
};
var STATUS_ORDER = ["ignored", "unversioned", "current", "removed", "missing", "outdated", "modified", "conflict"];
function classifyFile(facts) {
  return STATUS_ORDER.find((s) => STATUS_TESTS[s](facts));
}
function needsAction(status2) {
  return status2 === "outdated" || status2 === "missing" || status2 === "removed" || status2 === "conflict";
}
var test = (status2) => ({ context }) => STATUS_TESTS[status2](context.facts);
var fileStatusMachine = setup3({
  types: {
    context: {},
    input: {},
    output: {}
  },
  actors: {
    /** Publishes the administrators' alert (R-STATUS-3). */
    alert: fromPromise3(async () => {
      throw new Error("file-status machine: actor alert is not provided");
    }),
    download: downloadMachine
  },
  guards: {
    isIgnored: test("ignored"),
    isUnversioned: test("unversioned"),
    isCurrent: test("current"),
    isRemoved: test("removed"),
    isMissing: test("missing"),
    isOutdated: test("outdated"),
    isModified: test("modified"),
    presentLocally: ({ context }) => context.facts.local !== void 0,
    overwriteWithTarget: ({ context }) => context.onConflict === "overwrite" && context.facts.target !== void 0,
    overwriteByRemoval: ({ context }) => context.onConflict === "overwrite",
    downloaded: (_, output) => output.ok
  },
  actions: {
    setStatus: assign3((_, status2) => ({ status: status2 }))
  }
}).createMachine({
  id: "fileStatus",
  context: ({ input }) => ({
    ...input,
    status: void 0,
    outcome: "noop",
    action: void 0,
    download: void 0,
    alerted: false,
    alertError: void 0,
    error: void 0
  }),
  initial: "classify",
  states: {
    classify: {
      always: [
        { guard: "isIgnored", target: "ignored" },
        { guard: "isUnversioned", target: "unversioned" },
        { guard: "isCurrent", target: "current" },
        { guard: "isRemoved", target: "removed" },
        { guard: "isMissing", target: "missing" },
        { guard: "isOutdated", target: "outdated" },
        { guard: "isModified", target: "modified" },
        { target: "conflict" }
      ]
    },
    // R-STATUS-1 and the other no-ops.
    current: { type: "final", entry: { type: "setStatus", params: "current" } },
    // R-STATUS-2: takes no part in the update.
    ignored: { type: "final", entry: { type: "setStatus", params: "ignored" } },
    modified: { type: "final", entry: { type: "setStatus", params: "modified" } },
    unversioned: { type: "final", entry: { type: "setStatus", params: "unversioned" } },
    // R-STATUS-3: never overwritten silently; the administrators are told.
    conflict: {
      entry: { type: "setStatus", params: "conflict" },
      always: { target: "alerting" }
    },
    alerting: {
      invoke: {
        src: "alert",
        input: ({ context }) => ({ path: context.path, facts: context.facts }),
        onDone: { target: "alerted", actions: assign3({ alerted: true }) },
        onError: { target: "alerted", actions: assign3({ alertError: ({ event }) => String(event.error?.message ?? event.error) }) }
      }
    },
    alerted: {
      always: [
        { guard: "overwriteWithTarget", target: "downloading" },
        { guard: "overwriteByRemoval", target: "staged", actions: assign3({ action: "delete" }) },
        { target: "kept" }
      ]
    },
    // R-STATUS-4: update.
    outdated: {
      entry: { type: "setStatus", params: "outdated" },
      always: { target: "downloading" }
    },
    // R-STATUS-5: checkout.
    missing: {
      entry: { type: "setStatus", params: "missing" },
      always: { target: "downloading" }
    },
    removed: {
      entry: { type: "setStatus", params: "removed" },
      always: [{ guard: "presentLocally", target: "staged", actions: assign3({ action: "delete" }) }, { target: "gone" }]
    },
    downloading: {
      invoke: {
        src: "download",
        input: ({ context }) => ({ entry: context.facts.target, slot: context.slot, maxAttempts: context.maxAttempts }),
        onDone: [
          {
            guard: { type: "downloaded", params: ({ event }) => event.output },
            target: "staged",
            actions: assign3({ action: "put", download: ({ event }) => event.output })
          },
          {
            target: "failed",
            actions: assign3({
              download: ({ event }) => event.output,
              error: ({ context, event }) => `cannot download ${context.path}: ${event.output.errors.join("; ") || "no attempt succeeded"}`
            })
          }
        ],
        onError: { target: "failed", actions: assign3({ error: ({ event }) => String(event.error?.message ?? event.error) }) }
      }
    },
    staged: { type: "final", entry: assign3({ outcome: "staged" }) },
    kept: { type: "final", entry: assign3({ outcome: "kept" }) },
    gone: { type: "final" },
    failed: { type: "final", entry: assign3({ outcome: "failed" }) }
  },
  output: ({ context }) => ({
    path: context.path,
    status: context.status,
    outcome: context.outcome,
    ...context.action ? { action: context.action } : {},
    ...context.download ? { download: context.download } : {},
    alerted: context.alerted,
    ...context.alertError ? { alertError: context.alertError } : {},
    ...context.error ? { error: context.error } : {}
  })
});

// actors/updater/downloads.ts
var FILE_CONCURRENCY = 4;
function wiredDownloadMachine(session) {
  return downloadMachine.provide({
    actors: {
      findLocal: fromPromise4(async ({ input }) => {
        const found = await session.wc.history.has(input.sha256);
        if (found) session.verified.add(input.sha256);
        return found;
      }),
      fetch: fromPromise4(({ input, signal }) => fetchBlob(session, input.entry, signal)),
      verify: fromPromise4(({ input }) => verifyBlob(session, input)),
      stage: fromPromise4(({ input }) => stageEntry(session, input.entry, input.slot))
    }
  });
}
async function fetchBlob(session, entry, signal) {
  const running = session.inflight.get(entry.sha256);
  if (running) {
    await running;
    return { bytesFromServers: 0, bytesFromPeers: 0 };
  }
  const source = session.opts.source;
  if (!source) {
    throw session.noteError(new UpswarmError(
      "UPSWARM_E_NO_SERVER",
      `${entry.path} (blob ${entry.sha256}) is not in the local history store of ${session.wc.layout.root} and no release source (network) was given; connect to the servers and try again`
    ));
  }
  session.markNetworkUsed();
  const p = source.fetchBlob(entry, session.wc.history, { signal, threads: session.opts.threads });
  session.inflight.set(entry.sha256, p);
  try {
    const got = await p;
    if (got.verified) session.verified.add(entry.sha256);
    return { bytesFromServers: got.bytesFromServers, bytesFromPeers: got.bytesFromPeers };
  } catch (err) {
    session.noteError(err);
    throw err;
  } finally {
    session.inflight.delete(entry.sha256);
  }
}
async function verifyBlob(session, entry) {
  if (session.verified.has(entry.sha256)) return;
  const history2 = session.wc.history;
  const h = await hashContent(history2.path(entry.sha256), entry.size).catch((err) => {
    throw session.noteError(new UpswarmError("UPSWARM_E_NOT_FOUND", `the source reported ${entry.path} fetched, but blob ${entry.sha256} is not in the history store`, { cause: err }));
  });
  if (h.sha1 !== entry.sha1 || h.sha256 !== entry.sha256 || h.size !== entry.size) {
    await history2.remove(entry.sha256);
    throw session.noteError(new UpswarmError(
      "UPSWARM_E_HASH_MISMATCH",
      `${entry.path}: downloaded ${h.size} bytes with SHA-1 ${h.sha1} / SHA-256 ${h.sha256}, but the signed manifest says ${entry.size} bytes, SHA-1 ${entry.sha1} / SHA-256 ${entry.sha256}; discarded`
    ));
  }
  session.verified.add(entry.sha256);
}
async function stageEntry(session, entry, slot) {
  const dest = stagingPath(session.wc.layout, slot);
  try {
    if (entry.kind === "file") {
      await copyFile(session.wc.history.path(entry.sha256), dest, constants.COPYFILE_FICLONE);
      await chmod2(dest, entry.mode);
      await fsyncFile(dest);
    } else if (entry.kind === "symlink") {
      await symlink(entry.target, dest);
    }
  } catch (err) {
    throw session.noteError(new UpswarmError(
      "UPSWARM_E_IO",
      `cannot stage ${entry.path} in ${dest}: ${errorMessage(err)}. Nothing in the tree was changed; free space or fix permissions and run the update again`,
      { cause: err, details: { path: entry.path } }
    ));
  }
  step(`stage ${entry.path}`);
}
function scheduled(session, tasks) {
  const schedule = session.opts.source?.schedule?.();
  if (!schedule) return { concurrency: FILE_CONCURRENCY, order: tasks };
  const rank = new Map(tasks.map((t) => [t, t.facts.target?.kind === "file" ? schedule.rank(t.facts.target) : -Infinity]));
  return { concurrency: Math.max(1, schedule.concurrency), order: [...tasks].sort((a, b) => rank.get(a) - rank.get(b)) };
}
async function downloadPlanned(session, request, target, plan) {
  await mkdir2(join4(session.wc.layout.staging, "new"), { recursive: true });
  const machine = fileStatusMachine.provide({
    actors: {
      alert: fromPromise4(({ input }) => publishAlert(session, input, target)),
      download: wiredDownloadMachine(session)
    }
  });
  const files = [];
  let next = 0;
  let bytes = 0;
  const tasks = scheduled(session, plan.tasks);
  await Promise.all(Array.from({ length: tasks.concurrency }, async () => {
    while (next < tasks.order.length) {
      const task = tasks.order[next++];
      const actor = createActor(machine, {
        input: { path: task.path, facts: task.facts, onConflict: request.onConflict, ...task.slot ? { slot: task.slot } : {} }
      });
      actor.start();
      const out = await toPromise(actor);
      files.push(out);
      bytes += (out.download?.bytesFromServers ?? 0) + (out.download?.bytesFromPeers ?? 0);
      session.progress({ phase: "downloading", done: files.length, total: tasks.order.length, bytes, path: task.path });
    }
  }));
  return {
    files,
    failed: files.filter((f) => f.outcome === "failed").map((f) => f.path),
    bytesFromServers: files.reduce((n, f) => n + (f.download?.bytesFromServers ?? 0), 0),
    bytesFromPeers: files.reduce((n, f) => n + (f.download?.bytesFromPeers ?? 0), 0)
  };
}
async function prefetchBlobs(session, entries) {
  const machine = wiredDownloadMachine(session);
  const problems = [];
  let next = 0;
  await Promise.all(Array.from({ length: FILE_CONCURRENCY }, async () => {
    while (next < entries.length) {
      const entry = entries[next++];
      const actor = createActor(machine, { input: { entry } });
      actor.start();
      const out = await toPromise(actor);
      if (!out.ok) problems.push(`cannot keep ${entry.path} (${entry.sha256}) in the history store: ${out.errors.join("; ")}`);
    }
  }));
  return problems;
}
async function publishAlert(session, input, target) {
  const wc = session.wc;
  const alert = {
    type: "conflict",
    product: wc.config.product,
    clientId: wc.config.clientId,
    path: input.path,
    rev: target.from,
    targetRev: target.to,
    expected: input.facts.target ? summarize(input.facts.target) : null,
    found: input.facts.local ? summarize(input.facts.local) : null,
    at: (/* @__PURE__ */ new Date()).toISOString()
  };
  session.opts.log.warn({ alert }, `${input.path} was changed by hand and is out of date: left alone, administrators alerted`);
  if (!session.opts.alerts) throw new Error("no alert sink is configured");
  await session.opts.alerts.publish(alert);
}
function summarize(e) {
  switch (e.kind) {
    case "file":
      return { kind: "file", size: e.size, mode: e.mode, sha1: e.sha1, sha256: e.sha256 };
    case "symlink":
      return { kind: "symlink", target: e.target };
    case "dir":
      return { kind: "dir" };
    case "other":
      return { kind: "other" };
  }
}

// infra/store/working-copy/history.ts
import { readdir, stat } from "node:fs/promises";
import { join as join5 } from "node:path";
var HEX2 = /^[0-9a-f]{2}$/;
var HEX642 = /^[0-9a-f]{64}$/;
async function listBlobs(store) {
  const out = [];
  for (const a of await readdirOrEmpty(store.root)) {
    if (!HEX2.test(a)) continue;
    for (const b of await readdirOrEmpty(join5(store.root, a))) {
      if (!HEX2.test(b)) continue;
      for (const name of await readdirOrEmpty(join5(store.root, a, b))) if (HEX642.test(name)) out.push(name);
    }
  }
  return out;
}
async function collectGarbage(store, keep) {
  let removed = 0;
  let bytes = 0;
  for (const sha of await listBlobs(store)) {
    if (keep.has(sha)) continue;
    bytes += await stat(store.path(sha)).then((s) => s.size, () => 0);
    await store.remove(sha);
    removed++;
  }
  return { removed, bytes };
}
async function readdirOrEmpty(dir) {
  return readdir(dir).catch(() => []);
}

// infra/store/working-copy/stat-cache.ts
import { readFile as readFile4, stat as stat2 } from "node:fs/promises";
var HEADER = JSON.stringify({ format: 1, kind: "upswarm-stat-cache" });
var StatCache = class _StatCache {
  entries;
  /** mtime of the cache file when loaded; entries at or after it are racy. */
  writtenAtNs;
  dirty = false;
  constructor(entries, writtenAtNs) {
    this.entries = entries;
    this.writtenAtNs = writtenAtNs;
  }
  static empty() {
    return new _StatCache(/* @__PURE__ */ new Map(), 0n);
  }
  /** Loads the cache; a missing or unreadable cache is an empty one (it is only a cache). */
  static async load(file) {
    let raw;
    let writtenAtNs;
    try {
      writtenAtNs = (await stat2(file, { bigint: true })).mtimeNs;
      raw = await readFile4(file, "utf8");
    } catch {
      return _StatCache.empty();
    }
    const lines = raw.split("\n");
    if (lines[0] !== HEADER) return _StatCache.empty();
    const entries = /* @__PURE__ */ new Map();
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      if (!line) continue;
      try {
        const [path, size, mtimeNs, ctimeNs, ino, sha1, sha256] = JSON.parse(line);
        entries.set(path, { size: BigInt(size), mtimeNs: BigInt(mtimeNs), ctimeNs: BigInt(ctimeNs), ino: BigInt(ino), sha1, sha256 });
      } catch {
        return _StatCache.empty();
      }
    }
    return new _StatCache(entries, writtenAtNs);
  }
  get size() {
    return this.entries.size;
  }
  /** The cached hashes of `path` if its stat data still matches and the entry is not racy. */
  lookup(path, st) {
    const e = this.entries.get(path);
    if (!e) return void 0;
    if (e.size !== st.size || e.mtimeNs !== st.mtimeNs || e.ctimeNs !== st.ctimeNs || e.ino !== st.ino) return void 0;
    if (e.mtimeNs >= this.writtenAtNs) return void 0;
    return { sha1: e.sha1, sha256: e.sha256 };
  }
  /** Records hashes computed from the file whose lstat (taken before reading it) is `st`. */
  set(path, st, hashes) {
    this.entries.set(path, { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, sha1: hashes.sha1, sha256: hashes.sha256 });
    this.dirty = true;
  }
  delete(path) {
    if (this.entries.delete(path)) this.dirty = true;
  }
  /** Drops every entry whose path is not in `keep`. */
  retain(keep) {
    for (const path of this.entries.keys()) {
      if (!keep.has(path)) {
        this.entries.delete(path);
        this.dirty = true;
      }
    }
  }
  async save(file, tmpDir) {
    if (!this.dirty) return;
    const parts = [HEADER];
    for (const [path, e] of this.entries) {
      parts.push(JSON.stringify([path, String(e.size), String(e.mtimeNs), String(e.ctimeNs), String(e.ino), e.sha1, e.sha256]));
    }
    parts.push("");
    await writeFileAtomic(file, parts.join("\n"), tmpDir);
    this.dirty = false;
  }
};

// actors/updater/status.ts
var HASH_CONCURRENCY = 4;
async function classifyWorkingCopy(wc, base, target) {
  const cache = await StatCache.load(wc.layout.statCache);
  const tree = await classifyTree(wc.layout, base, target, await IgnoreRules.load(wc.layout), cache);
  await cache.save(wc.layout.statCache, wc.layout.tmp);
  return { tree, cache };
}
async function classifyTree(layout, base, target, rules, cache) {
  const disk = await walkTree(layout.root);
  const all = /* @__PURE__ */ new Set([...disk.keys(), ...base.keys(), ...target.keys()]);
  const facts = /* @__PURE__ */ new Map();
  const toHash = [];
  for (const path of all) {
    const d = disk.get(path);
    const b = base.get(path);
    const t = target.get(path);
    const isDir = d ? d.kind === "dir" : (t ?? b)?.kind === "dir";
    const f = { ignored: rules.ignores(path, isDir) };
    if (b) f.base = b;
    if (t) f.target = t;
    if (d) {
      f.local = shallowLocal(d);
      if (d.kind === "file" && !f.ignored && (b?.kind === "file" || t?.kind === "file")) toHash.push({ path, d, facts: f });
    }
    facts.set(path, f);
  }
  let hashed = 0;
  let cached = 0;
  let next = 0;
  await Promise.all(Array.from({ length: HASH_CONCURRENCY }, async () => {
    while (next < toHash.length) {
      const job = toHash[next++];
      const h = await observeFile(treePath(layout, job.path), job.path, job.d.st, cache);
      if (h.cached) cached++;
      else hashed++;
      job.facts.local = { kind: "file", mode: Number(job.d.st.mode) & 4095, size: Number(job.d.st.size), sha1: h.sha1, sha256: h.sha256 };
    }
  }));
  cache.retain(new Set(toHash.map((j) => j.path)));
  const paths = [...facts].map(([path, f]) => ({ path, status: classifyFile(f), facts: f }));
  paths.sort((a, b) => comparePaths(a.path, b.path));
  return { paths, disk, hashed, cached };
}
function shallowLocal(d) {
  switch (d.kind) {
    case "dir":
      return { kind: "dir", mode: Number(d.st.mode) & 4095 };
    case "symlink":
      return { kind: "symlink", target: d.target };
    case "other":
      return { kind: "other" };
    case "file":
      return { kind: "file", mode: Number(d.st.mode) & 4095, size: Number(d.st.size), sha1: "", sha256: "" };
  }
}

// actors/updater/run-session.ts
function automaticTarget(state) {
  return state.hold !== void 0 && state.newestVerified <= state.hold ? state.current : state.newestVerified;
}
var RunSession = class {
  wc;
  opts;
  releases;
  request;
  base = /* @__PURE__ */ new Map();
  target = /* @__PURE__ */ new Map();
  disk = /* @__PURE__ */ new Map();
  cache = StatCache.empty();
  plan;
  journal;
  /** Blobs known to be in the history store with verified hashes. */
  verified = /* @__PURE__ */ new Set();
  inflight = /* @__PURE__ */ new Map();
  downloadsUsedNetwork = false;
  firstError;
  constructor(wc, opts) {
    this.wc = wc;
    this.opts = opts;
    this.releases = new ReleaseHistory(wc, opts.source, opts.log);
  }
  /** Whether anything of this run reached the network (a rollback reports local vs remote). */
  get usedNetwork() {
    return this.downloadsUsedNetwork || this.releases.usedNetwork;
  }
  markNetworkUsed() {
    this.downloadsUsedNetwork = true;
  }
  /** Remembers the first coded error of the downloads, whose code the failed run reports. */
  noteError(err) {
    if (!this.firstError && isUpswarmError(err)) this.firstError = err;
    return err;
  }
  get downloadError() {
    return this.firstError;
  }
  progress(p) {
    this.opts.onProgress?.(p);
  }
  async check(request) {
    this.request = request;
    const state = this.wc.state;
    let to;
    if (request.kind === "rollback") {
      const rev = request.rev;
      if (rev === void 0 || !Number.isInteger(rev) || rev < 1 || rev >= state.current) {
        throw new UpswarmError("UPSWARM_E_ROLLBACK", `cannot roll back ${this.wc.layout.root} to revision ${rev}: it must be a revision from 1 to ${state.current - 1} (the current revision is ${state.current})`);
      }
      to = rev;
    } else if (request.rev !== void 0) {
      if (this.opts.source) await this.releases.refresh();
      to = request.rev;
    } else {
      await this.releases.refresh();
      to = request.kind === "checkout" ? this.wc.state.newestVerified : automaticTarget(this.wc.state);
      if (to === 0) {
        throw new UpswarmError(
          "UPSWARM_E_UNKNOWN_REVISION",
          `no repository server holds a release of product ${this.wc.config.product} yet: publish one first, or, if you just did, retry once the servers have synced it (upswarm stats shows each server's synced revision)`
        );
      }
    }
    await this.releases.resolve(to);
    this.base = await this.wc.entries(state.current);
    this.target = await this.wc.entries(to);
    return { from: state.current, to };
  }
  async planRun(target) {
    const { tree, cache } = await classifyWorkingCopy(this.wc, this.base, this.target);
    this.cache = cache;
    this.disk = tree.disk;
    let slot = 0;
    const tasks = tree.paths.filter((p) => needsAction(p.status)).map((p) => {
      const kind = p.facts.target?.kind;
      return kind === "file" || kind === "symlink" ? { ...p, slot: `new/${slot++}` } : p;
    });
    this.plan = { tasks, conflicts: tasks.filter((t) => t.status === "conflict").map((t) => t.path) };
    this.progress({ phase: "planning", done: tree.paths.length, total: tree.paths.length, bytes: 0 });
    this.opts.log.info({ from: target.from, to: target.to, paths: tree.paths.length, tasks: tasks.length, hashed: tree.hashed }, "planned update");
    return this.plan;
  }
  /**
   * Keeps the history store at the last K revisions (R-ROLLBACK): fetches their manifests and
   * blobs when a source is at hand (never on a rollback, which must not need the network),
   * then removes every blob no kept revision uses. Returns warnings; never fails the run.
   */
  async retain(request) {
    const { config, state } = this.wc;
    const warnings = [];
    const online = request.kind !== "rollback" && this.opts.source !== void 0;
    const revs = /* @__PURE__ */ new Set([state.current]);
    for (let r = Math.max(1, state.topInstalled - config.historyDepth + 1); r <= state.topInstalled; r++) revs.add(r);
    const kept = [];
    for (const rev of revs) {
      try {
        const release = await this.wc.manifests.get(rev) ?? (online ? await this.releases.resolve(rev) : void 0);
        if (release) kept.push(release);
      } catch (err) {
        warnings.push(`revision ${rev} is not kept in the history store: ${toUpswarmError(err, "UPSWARM_E_IO", "manifest").message}`);
      }
    }
    const keep = /* @__PURE__ */ new Map();
    const older = /* @__PURE__ */ new Map();
    for (const release of kept) {
      for (const e of fileEntries(release.manifest)) {
        keep.set(e.sha256, e);
        if (release.manifest.rev !== state.current) older.set(e.sha256, e);
      }
    }
    if (online) {
      const missing = [];
      for (const e of older.values()) if (!await this.wc.history.has(e.sha256)) missing.push(e);
      warnings.push(...await prefetchBlobs(this, missing));
    }
    const gc = await collectGarbage(this.wc.history, new Set(keep.keys()));
    this.opts.log.info({ revisions: [...revs], removed: gc.removed, bytes: gc.bytes }, "history store garbage-collected");
    for (const w of warnings) this.opts.log.warn({}, w);
    return warnings;
  }
};

// actors/updater/run.ts
function wiredRunMachine(session) {
  return updateRunMachine.provide({
    actors: {
      check: fromPromise5(({ input }) => session.check(input)),
      plan: fromPromise5(({ input }) => session.planRun(input.target)),
      download: fromPromise5(({ input }) => downloadPlanned(session, input.request, input.target, input.plan)),
      discard: fromPromise5(() => discardStaging(session)),
      apply: fromPromise5(({ input }) => applyStaged(session, input.target, input.staged)),
      undo: fromPromise5(() => undoApply(session)),
      retain: fromPromise5(({ input }) => session.retain(input.request))
    }
  });
}
async function runUpdate(wc, request, opts) {
  const session = new RunSession(wc, opts);
  const actor = createActor2(wiredRunMachine(session), { input: request });
  actor.on("run.phase", (e) => session.progress({ phase: e.phase, done: 0, total: 0, bytes: 0 }));
  actor.start();
  actor.send({ type: "run.start" });
  const output = await toPromise2(actor);
  if (output.outcome !== "done") throw failureError(wc, output, session);
  return { output, session };
}
function failureError(wc, output, session) {
  const f = output.failure;
  const where = wc.layout.root;
  if (!f) return new UpswarmError("UPSWARM_E_IO", `the update of ${where} failed: ${output.warnings.join("; ") || "unknown cause"}`);
  if (f.reason === "conflicts") {
    const paths = f.paths ?? [];
    return new UpswarmError(
      "UPSWARM_E_CONFLICT",
      `${paths.length} file(s) of ${where} were changed by hand and are out of date: ${paths.slice(0, 10).join(", ")}${paths.length > 10 ? ", \u2026" : ""}. Nothing was changed (--on-conflict=abort); move them away, ignore them, or run with --on-conflict=alert|overwrite`,
      { details: { paths } }
    );
  }
  if (f.reason === "downloads") {
    const paths = f.paths ?? [];
    const first = output.staged?.files.find((x) => x.outcome === "failed");
    const cause = session.downloadError;
    return new UpswarmError(
      cause?.code ?? "UPSWARM_E_IO",
      `${paths.length} file(s) could not be fetched and verified for ${where}; nothing in the tree was changed. First: ${first?.error ?? paths[0]}`,
      { cause, details: { paths } }
    );
  }
  const err = toUpswarmError(f.error, "UPSWARM_E_IO", `the update of ${where} failed while ${f.phase}`);
  if (output.outcome === "failed" && f.phase === "applying") {
    return new UpswarmError(err.code, `${err.message}. Rolling back failed too (${output.warnings.join("; ")}); the next upswarm command on ${where} finishes the recovery`, { cause: err });
  }
  return err;
}

// actors/updater/index.ts
var DEFAULT_THREADS = 4;
async function run(wc, kind, rev, o) {
  const log = o.log ?? silentLog;
  const { output, session } = await runUpdate(wc, { kind, ...rev !== void 0 ? { rev } : {}, onConflict: o.onConflict ?? "alert" }, {
    ...o.source ? { source: o.source } : {},
    ...o.alerts ? { alerts: o.alerts } : {},
    threads: o.threads ?? DEFAULT_THREADS,
    log,
    ...o.onProgress ? { onProgress: o.onProgress } : {}
  });
  const applied = output.applied ?? { updated: 0, checkedOut: 0, removed: 0 };
  return {
    usedNetwork: session.usedNetwork,
    result: {
      from: output.target?.from ?? wc.state.current,
      to: output.target?.to ?? wc.state.current,
      ...applied,
      conflicts: output.plan?.conflicts ?? [],
      bytesFromServers: output.staged?.bytesFromServers ?? 0,
      bytesFromPeers: output.staged?.bytesFromPeers ?? 0,
      warnings: output.warnings
    }
  };
}
async function init(dir, opts) {
  const product = opts.product.toLowerCase();
  if (!UUID_RE.test(product)) throw new UpswarmError("UPSWARM_E_CONFIG", `--product must be a UUID (got ${JSON.stringify(opts.product)})`);
  if (!/^[0-9a-f]{64}$/.test(opts.publicKey)) throw new UpswarmError("UPSWARM_E_CONFIG", `--pubkey must be the publisher's public key, 64 hex characters (got ${JSON.stringify(opts.publicKey.slice(0, 80))})`);
  const existing = await readdir2(dir).catch((err) => {
    if (err.code === "ENOENT") return [];
    throw new UpswarmError("UPSWARM_E_IO", `cannot read ${dir}: ${err.message}`, { cause: err });
  });
  if (existing.includes(META_DIR)) throw new UpswarmError("UPSWARM_E_WORKING_COPY", `${dir} is already an upswarm working copy; use \`upswarm update\``);
  if (existing.length > 0 && !opts.adopt) {
    throw new UpswarmError("UPSWARM_E_WORKING_COPY", `${dir} is not empty; use --adopt to take over its files (they are classified, never overwritten) or choose an empty directory`);
  }
  await mkdir3(dir, { recursive: true });
  await WorkingCopy.create(dir, {
    format: 1,
    product,
    publicKey: opts.publicKey,
    clientId: opts.clientId ?? randomUUID2(),
    historyDepth: opts.historyDepth ?? DEFAULT_HISTORY_DEPTH
  });
  try {
    if (opts.checkout) return await opts.checkout(dir);
    return await withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => (await run(wc, "checkout", opts.rev, opts)).result);
  } catch (err) {
    const layout = layoutOf(dir);
    if (!await readJournal(layout).catch(() => true)) await rm4(layout.meta, { recursive: true, force: true });
    throw err;
  }
}
async function status(dir, opts = {}) {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => {
    if (opts.source) await new ReleaseHistory(wc, opts.source, opts.log ?? silentLog).refresh();
    const target = automaticTarget(wc.state);
    const { tree } = await classifyWorkingCopy(wc, await wc.entries(wc.state.current), await wc.entries(target));
    return {
      product: wc.config.product,
      rev: wc.state.current,
      latest: wc.state.newestVerified,
      target,
      files: tree.paths.map((p) => ({ path: p.path, status: p.status })),
      hashed: tree.hashed,
      cached: tree.cached
    };
  });
}
async function update(dir, opts) {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => (await run(wc, "update", opts.rev, opts)).result);
}
async function rollback(dir, opts) {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => {
    const { result, usedNetwork } = await run(wc, "rollback", opts.rev, opts);
    return { from: result.from, to: result.to, source: usedNetwork ? "remote" : "local" };
  });
}
async function ignore2(dir, pattern, opts = {}) {
  return withWorkingCopy(dir, opts.log ?? silentLog, (wc) => addIgnorePattern(wc.layout, pattern));
}
async function history(dir, opts = {}) {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (wc) => {
    const stored = new Set(await wc.manifests.revisions());
    const revs = /* @__PURE__ */ new Set([...stored, ...Object.keys(wc.state.record).map(Number)]);
    const revisions = [];
    for (const rev of [...revs].sort((a, b) => a - b)) {
      const release = stored.has(rev) ? await wc.manifests.get(rev) : void 0;
      let local = false;
      if (release) {
        local = true;
        for (const sha of blobsOf(release.manifest).keys()) {
          if (!await wc.history.has(sha)) {
            local = false;
            break;
          }
        }
      }
      revisions.push({
        rev,
        manifestSha256: wc.state.record[String(rev)] ?? "",
        ...release?.manifest.label ? { label: release.manifest.label } : {},
        current: rev === wc.state.current,
        manifest: release !== void 0,
        local
      });
    }
    return { product: wc.config.product, current: wc.state.current, latest: wc.state.newestVerified, historyDepth: wc.config.historyDepth, revisions };
  });
}
async function recover(dir, opts = {}) {
  return withWorkingCopy(dir, opts.log ?? silentLog, async (_wc, recovered) => recovered);
}

export {
  listBlobs,
  StatCache,
  init,
  status,
  update,
  rollback,
  ignore2 as ignore,
  history,
  recover
};
