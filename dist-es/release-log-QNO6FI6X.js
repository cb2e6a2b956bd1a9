import {
  REV_HEADER,
  followReleases,
  lastRelease,
  releaseManager
} from "./chunk-WQWQP4HQ.js";
import "./chunk-M4ACGP5U.js";
import "./chunk-W5VBZNBS.js";
import "./chunk-TI5YD5TO.js";
import "./chunk-4NZCUDRR.js";
import "./chunk-5DMJPWEV.js";
export {
  REV_HEADER,
  followReleases,
  lastRelease,
  releaseManager
};
