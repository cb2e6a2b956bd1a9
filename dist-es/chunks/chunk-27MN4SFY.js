import {
  sha256Hex
} from "./chunk-6PH2J2O4.js";
import {
  signBytes,
  verifyBytes
} from "./chunk-4I46HHR5.js";
import {
  UpswarmError
} from "./chunk-RP33VEIV.js";

// infra/release/manifest.ts
import { z } from "zod";
var MANIFEST_FORMAT = 1;
var META_DIR = ".upswarm";
var HEX40 = /^[0-9a-f]{40}$/;
var HEX64 = /^[0-9a-f]{64}$/;
var UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
var RelPath = z.string().min(1).max(4096).refine((p) => isSafeRelPath(p), { message: "unsafe path" });
function isSafeRelPath(p) {
  if (p.startsWith("/") || p.endsWith("/") || p.includes("\0") || p.includes("\\")) return false;
  const parts = p.split("/");
  if (parts[0] === META_DIR) return false;
  return parts.every((s) => s !== "" && s !== "." && s !== "..");
}
var FileEntrySchema = z.object({
  path: RelPath,
  kind: z.literal("file"),
  mode: z.number().int().min(0).max(4095),
  size: z.number().int().min(0),
  sha1: z.string().regex(HEX40),
  sha256: z.string().regex(HEX64),
  pieces: z.array(z.string().regex(HEX64)).optional()
});
var DirEntrySchema = z.object({ path: RelPath, kind: z.literal("dir"), mode: z.number().int().min(0).max(4095) });
var SymlinkEntrySchema = z.object({ path: RelPath, kind: z.literal("symlink"), target: z.string().min(1).max(4096) });
var EntrySchema = z.discriminatedUnion("kind", [FileEntrySchema, DirEntrySchema, SymlinkEntrySchema]);
var ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  product: z.string().regex(UUID_RE),
  rev: z.number().int().min(1),
  label: z.string().max(200).optional(),
  createdAt: z.string().max(64),
  pieceSize: z.number().int().min(4096).max(64 * 1024 * 1024),
  /** SHA-256 of the previous revision's manifest: the release history is a hash chain. */
  parent: z.string().regex(HEX64).optional(),
  entries: z.array(EntrySchema)
});
var SignedReleaseSchema = z.object({
  manifest: ManifestSchema,
  publicKey: z.string().regex(HEX64),
  signature: z.string().regex(/^[0-9a-f]{128}$/)
});
function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const obj = value;
    const keys = Object.keys(obj).filter((k) => obj[k] !== void 0).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
function canonicalManifestBytes(manifest) {
  return Buffer.from(canonicalJson(manifest), "utf8");
}
function manifestSha256(manifest) {
  return sha256Hex(canonicalManifestBytes(manifest));
}
function signManifest(manifest, key) {
  const m = ManifestSchema.parse(manifest);
  m.entries.sort((a, b) => comparePaths(a.path, b.path));
  return { manifest: m, publicKey: key.publicKey, signature: signBytes(key, canonicalManifestBytes(m)) };
}
function encodeRelease(release) {
  return Buffer.from(canonicalJson(release), "utf8");
}
function decodeRelease(bytes, pinnedPublicKey, where) {
  let json;
  try {
    json = JSON.parse(typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_MANIFEST", `release manifest from ${where} is not valid JSON`, { cause: err });
  }
  const parsed = SignedReleaseSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UpswarmError(
      "UPSWARM_E_MANIFEST",
      `release manifest from ${where} is malformed at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`
    );
  }
  const release = parsed.data;
  if (release.publicKey !== pinnedPublicKey || !verifyBytes(pinnedPublicKey, canonicalManifestBytes(release.manifest), release.signature)) {
    throw new UpswarmError(
      "UPSWARM_E_SIGNATURE",
      `release manifest from ${where} (product ${release.manifest.product}, rev ${release.manifest.rev}) is not signed by the expected publisher key ${pinnedPublicKey}; it names key ${release.publicKey}. Refusing it.`
    );
  }
  const seen = /* @__PURE__ */ new Set();
  for (const e of release.manifest.entries) {
    if (seen.has(e.path)) throw new UpswarmError("UPSWARM_E_MANIFEST", `release manifest from ${where} lists ${e.path} twice`);
    seen.add(e.path);
  }
  return release;
}
function comparePaths(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}
function fileEntries(manifest) {
  return manifest.entries.filter((e) => e.kind === "file");
}
function blobsOf(manifest) {
  const out = /* @__PURE__ */ new Map();
  for (const e of fileEntries(manifest)) out.set(e.sha256, e.size);
  return out;
}

export {
  MANIFEST_FORMAT,
  META_DIR,
  UUID_RE,
  isSafeRelPath,
  ManifestSchema,
  SignedReleaseSchema,
  canonicalJson,
  canonicalManifestBytes,
  manifestSha256,
  signManifest,
  encodeRelease,
  decodeRelease,
  comparePaths,
  fileEntries,
  blobsOf
};
