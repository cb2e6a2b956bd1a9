import {
  MANIFEST_FORMAT,
  META_DIR,
  ManifestSchema,
  SignedReleaseSchema,
  UUID_RE,
  blobsOf,
  canonicalJson,
  canonicalManifestBytes,
  comparePaths,
  decodeRelease,
  encodeRelease,
  fileEntries,
  isSafeRelPath,
  manifestSha256,
  signManifest
} from "./chunk-W5VBZNBS.js";
import "./chunk-TI5YD5TO.js";
import "./chunk-4NZCUDRR.js";
import "./chunk-5DMJPWEV.js";
export {
  MANIFEST_FORMAT,
  META_DIR,
  ManifestSchema,
  SignedReleaseSchema,
  UUID_RE,
  blobsOf,
  canonicalJson,
  canonicalManifestBytes,
  comparePaths,
  decodeRelease,
  encodeRelease,
  fileEntries,
  isSafeRelPath,
  manifestSha256,
  signManifest
};
