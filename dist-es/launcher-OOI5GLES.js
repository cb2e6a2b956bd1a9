import {
  spawnRole,
  up
} from "./chunk-Y6HXYLSX.js";
import "./chunk-4WGPO4AC.js";
import "./chunk-O2WH55TW.js";
import {
  ALL_ROLES
} from "./chunk-B7YUUYMX.js";
import "./chunk-LW4KT72T.js";
import "./chunk-M4ACGP5U.js";
import "./chunk-5DMJPWEV.js";
export {
  ALL_ROLES,
  spawnRole,
  up
};
