import {
  generatePublisherKey,
  privateKeyObject,
  publicKeyObject,
  readKeyFile,
  signBytes,
  sodiumKeyPair,
  verifyBytes,
  writeKeyFile
} from "./chunk-4NZCUDRR.js";
import "./chunk-5DMJPWEV.js";
export {
  generatePublisherKey,
  privateKeyObject,
  publicKeyObject,
  readKeyFile,
  signBytes,
  sodiumKeyPair,
  verifyBytes,
  writeKeyFile
};
