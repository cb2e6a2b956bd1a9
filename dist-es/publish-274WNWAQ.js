import {
  publish
} from "./chunk-EVFMMDEE.js";
import "./chunk-B65YCFFG.js";
import "./chunk-XN3RHCU7.js";
import "./chunk-ZCUDO6HQ.js";
import "./chunk-PEHDTYHQ.js";
import "./chunk-4WGPO4AC.js";
import "./chunk-O2WH55TW.js";
import "./chunk-GZTDGJDJ.js";
import "./chunk-WQWQP4HQ.js";
import "./chunk-M4ACGP5U.js";
import "./chunk-W5VBZNBS.js";
import "./chunk-TI5YD5TO.js";
import "./chunk-4NZCUDRR.js";
import "./chunk-UNO7TY7C.js";
import "./chunk-5DMJPWEV.js";
export {
  publish
};
