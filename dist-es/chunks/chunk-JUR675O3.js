import {
  BlobStore,
  readJsonFile,
  writeFileAtomic
} from "./chunk-4DN6M2O5.js";
import {
  META_DIR,
  UUID_RE,
  decodeRelease,
  encodeRelease
} from "./chunk-27MN4SFY.js";
import {
  verifyBytes
} from "./chunk-4I46HHR5.js";
import {
  UpswarmError
} from "./chunk-RP33VEIV.js";

// infra/store/working-copy/working-copy.ts
import { mkdir as mkdir2 } from "node:fs/promises";

// infra/store/working-copy/layout.ts
import { join } from "node:path";
function layoutOf(root) {
  const meta = join(root, META_DIR);
  return {
    root,
    meta,
    config: join(meta, "config.json"),
    state: join(meta, "state.json"),
    manifests: join(meta, "manifests"),
    ignore: join(meta, "ignore"),
    statCache: join(meta, "stat-cache.jsonl"),
    history: join(meta, "history"),
    staging: join(meta, "staging"),
    journal: join(meta, "journal.json"),
    lock: join(meta, "lock"),
    tmp: join(meta, "tmp")
  };
}
function treePath(layout, rel) {
  return join(layout.root, ...rel.split("/"));
}

// infra/store/working-copy/manifest-store.ts
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join as join2 } from "node:path";
var MANIFEST_FIELD = Buffer.from('{"manifest":');
var PUBLIC_KEY_FIELD = Buffer.from(',"publicKey":"');
function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return void 0;
  }
}
var ManifestStore = class {
  layout;
  publicKey;
  cache = /* @__PURE__ */ new Map();
  constructor(layout, publicKey) {
    this.layout = layout;
    this.publicKey = publicKey;
  }
  file(rev) {
    return join2(this.layout.manifests, `${rev}.json`);
  }
  async get(rev) {
    const hit = this.cache.get(rev);
    if (hit) return hit;
    let bytes;
    try {
      bytes = await readFile(this.file(rev));
    } catch (err) {
      if (err.code === "ENOENT") return void 0;
      throw new UpswarmError("UPSWARM_E_IO", `cannot read ${this.file(rev)}: ${err.message}`, { cause: err });
    }
    const release = this.decodeStored(bytes, this.file(rev));
    if (release.manifest.rev !== rev) {
      throw new UpswarmError("UPSWARM_E_WORKING_COPY", `${this.file(rev)} holds revision ${release.manifest.rev}, not ${rev}; delete it and run the command again`);
    }
    this.cache.set(rev, release);
    return release;
  }
  /**
   * A stored file is `encodeRelease` output: canonical JSON whose `manifest` value is exactly
   * the signed bytes. Verifying the signature over that slice skips re-canonicalising (the
   * costly part for 100 000 entries); anything else takes the full decodeRelease path.
   */
  decodeStored(bytes, file) {
    const at = bytes.lastIndexOf(PUBLIC_KEY_FIELD);
    if (bytes.subarray(0, MANIFEST_FIELD.length).equals(MANIFEST_FIELD) && at > MANIFEST_FIELD.length) {
      const signed = bytes.subarray(MANIFEST_FIELD.length, at);
      const tail = safeParse(`{${bytes.subarray(at + 1).toString("utf8")}`);
      if (tail?.publicKey === this.publicKey && typeof tail.signature === "string" && verifyBytes(this.publicKey, signed, tail.signature)) {
        return { manifest: JSON.parse(signed.toString("utf8")), publicKey: this.publicKey, signature: tail.signature };
      }
    }
    return decodeRelease(bytes, this.publicKey, file);
  }
  /** Stores a release the caller has verified (signature, product, revision, history record). */
  async put(release) {
    await mkdir(this.layout.manifests, { recursive: true });
    await writeFileAtomic(this.file(release.manifest.rev), encodeRelease(release), this.layout.tmp);
    this.cache.set(release.manifest.rev, release);
  }
  async revisions() {
    let names;
    try {
      names = await readdir(this.layout.manifests);
    } catch {
      return [];
    }
    return names.map((n) => /^([1-9][0-9]*)\.json$/.exec(n)?.[1]).filter((r) => r !== void 0).map(Number).sort((a, b) => a - b);
  }
};

// infra/store/working-copy/meta.ts
import { z } from "zod";
var HEX64 = /^[0-9a-f]{64}$/;
var DEFAULT_HISTORY_DEPTH = 3;
var WorkingCopyConfigSchema = z.object({
  format: z.literal(1),
  product: z.string().regex(UUID_RE),
  /** The pinned publisher key: no manifest signed by another key is ever accepted. */
  publicKey: z.string().regex(HEX64),
  clientId: z.string().min(1).max(200),
  /** K: the history store keeps the file versions of the last K revisions. */
  historyDepth: z.number().int().min(1).max(1e3)
});
var WorkingCopyStateSchema = z.object({
  format: z.literal(1),
  /** The installed revision; 0 before the first checkout. */
  current: z.number().int().min(0),
  /** The newest revision whose signed manifest this client verified; never decreases. */
  newestVerified: z.number().int().min(0),
  /** The highest revision ever installed: the history window ends there. */
  topInstalled: z.number().int().min(0),
  /**
   * Set by a rollback: automatic updates skip revisions up to this one, so the rolled-back
   * release is not reinstalled until a newer one is published. Cleared by an explicit --rev.
   */
  hold: z.number().int().min(1).optional(),
  /** Id of the last committed apply journal (tells recovery whether a journal committed). */
  lastJournal: z.string().optional(),
  /**
   * The client's own record of the release history, rev → manifest SHA-256, from verified
   * manifests and their `parent` links. Entries are written once and never changed.
   */
  record: z.record(z.string().regex(/^[1-9][0-9]*$/), z.string().regex(HEX64))
});
function initialState() {
  return { format: 1, current: 0, newestVerified: 0, topInstalled: 0, record: {} };
}
async function readConfig(layout) {
  const config = await readJsonFile(layout.config, WorkingCopyConfigSchema, "working copy config");
  if (!config) {
    throw new UpswarmError(
      "UPSWARM_E_WORKING_COPY",
      `${layout.root} is not an upswarm working copy (no ${layout.config}); create one with \`upswarm init\``
    );
  }
  return config;
}
async function writeConfig(layout, config) {
  await writeFileAtomic(layout.config, JSON.stringify(WorkingCopyConfigSchema.parse(config), null, 2) + "\n", layout.tmp);
}
async function readState(layout) {
  return await readJsonFile(layout.state, WorkingCopyStateSchema, "working copy state") ?? initialState();
}
async function writeState(layout, state) {
  await writeFileAtomic(layout.state, JSON.stringify(state) + "\n", layout.tmp);
}

// infra/store/working-copy/working-copy.ts
var WorkingCopy = class _WorkingCopy {
  layout;
  config;
  state;
  manifests;
  history;
  constructor(layout, config, state) {
    this.layout = layout;
    this.config = config;
    this.state = state;
    this.manifests = new ManifestStore(layout, config.publicKey);
    this.history = new BlobStore(layout.history);
  }
  static async open(root) {
    const layout = layoutOf(root);
    return new _WorkingCopy(layout, await readConfig(layout), await readState(layout));
  }
  /** Writes the metadata folder of a new working copy at revision 0 (nothing installed). */
  static async create(root, config) {
    const layout = layoutOf(root);
    await mkdir2(layout.meta, { recursive: true });
    await writeConfig(layout, config);
    const state = initialState();
    await writeState(layout, state);
    return new _WorkingCopy(layout, config, state);
  }
  async saveState() {
    await writeState(this.layout, this.state);
  }
  /** The verified release of `rev`; refuses when it is not stored locally. */
  async release(rev) {
    const release = await this.manifests.get(rev);
    if (!release) {
      throw new UpswarmError("UPSWARM_E_UNKNOWN_REVISION", `revision ${rev} of product ${this.config.product} is not known to the working copy ${this.layout.root}`);
    }
    return release;
  }
  /** Entries of a revision by path; revision 0 is the empty tree. */
  async entries(rev) {
    if (rev === 0) return /* @__PURE__ */ new Map();
    return new Map((await this.release(rev)).manifest.entries.map((e) => [e.path, e]));
  }
};

export {
  layoutOf,
  treePath,
  DEFAULT_HISTORY_DEPTH,
  readState,
  WorkingCopy
};
