import {
  generatePublisherKey,
  privateKeyObject,
  publicKeyObject,
  readKeyFile,
  signBytes,
  sodiumKeyPair,
  verifyBytes,
  writeKeyFile
} from "./chunk-4I46HHR5.js";
import "./chunk-RP33VEIV.js";
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
