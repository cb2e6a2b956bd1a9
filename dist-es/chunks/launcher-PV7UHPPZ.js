import {
  spawnRole,
  up
} from "./chunk-JKHJDDBQ.js";
import "./chunk-2A6R4MPD.js";
import "./chunk-OI7SFTYE.js";
import {
  ALL_ROLES
} from "./chunk-PZNCKHRN.js";
import "./chunk-OB7OCPB5.js";
import "./chunk-ZEBQZC7Y.js";
import "./chunk-RP33VEIV.js";
export {
  ALL_ROLES,
  spawnRole,
  up
};
