import {
  UpswarmError
} from "./chunk-5DMJPWEV.js";

// infra/release/keys.ts
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { z } from "zod";
var PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
var SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
var HEX32 = /^[0-9a-f]{64}$/;
var KeyFileSchema = z.object({
  type: z.literal("upswarm-ed25519"),
  publicKey: z.string().regex(HEX32),
  seed: z.string().regex(HEX32)
});
function generatePublisherKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(SPKI_ED25519_PREFIX.length);
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_ED25519_PREFIX.length);
  return { publicKey: pub.toString("hex"), seed: seed.toString("hex") };
}
async function writeKeyFile(path, key) {
  await writeFile(path, JSON.stringify({ type: "upswarm-ed25519", ...key }, null, 2) + "\n", { mode: 384, flag: "wx" }).catch((err) => {
    if (err.code === "EEXIST") throw new UpswarmError("UPSWARM_E_CONFIG", `key file ${path} already exists; refusing to overwrite it`);
    throw new UpswarmError("UPSWARM_E_IO", `cannot write key file ${path}: ${err.message}`, { cause: err });
  });
}
async function readKeyFile(path) {
  let raw;
  try {
    raw = await readFile(path, "utf8");
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_CONFIG", `cannot read key file ${path}: ${err.message}`, { cause: err });
  }
  const parsed = KeyFileSchema.safeParse(safeJson(raw));
  if (!parsed.success) throw new UpswarmError("UPSWARM_E_CONFIG", `${path} is not an upswarm key file (make one with \`upswarm keygen --out FILE\`)`);
  return { publicKey: parsed.data.publicKey, seed: parsed.data.seed };
}
function safeJson(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return void 0;
  }
}
function privateKeyObject(key) {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(key.seed, "hex")]), format: "der", type: "pkcs8" });
}
function publicKeyObject(publicKeyHex) {
  if (!HEX32.test(publicKeyHex)) {
    throw new UpswarmError("UPSWARM_E_CONFIG", `publisher public key must be 64 hex characters (got ${JSON.stringify(publicKeyHex.slice(0, 80))})`);
  }
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(publicKeyHex, "hex")]), format: "der", type: "spki" });
}
function signBytes(key, data) {
  return sign(null, data, privateKeyObject(key)).toString("hex");
}
function verifyBytes(publicKeyHex, data, signatureHex) {
  if (!/^[0-9a-f]{128}$/.test(signatureHex)) return false;
  return verify(null, data, publicKeyObject(publicKeyHex), Buffer.from(signatureHex, "hex"));
}
function sodiumKeyPair(key) {
  const publicKey = Buffer.from(key.publicKey, "hex");
  return { publicKey, secretKey: Buffer.concat([Buffer.from(key.seed, "hex"), publicKey]) };
}

export {
  generatePublisherKey,
  writeKeyFile,
  readKeyFile,
  privateKeyObject,
  publicKeyObject,
  signBytes,
  verifyBytes,
  sodiumKeyPair
};
