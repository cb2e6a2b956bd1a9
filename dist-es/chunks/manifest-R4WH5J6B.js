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
} from "./chunk-27MN4SFY.js";
import "./chunk-6PH2J2O4.js";
import "./chunk-4I46HHR5.js";
import "./chunk-RP33VEIV.js";
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
