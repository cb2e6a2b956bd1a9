import {
  serverSource,
  swarmSchedule,
  swarmSource
} from "./chunk-D4L5S4GF.js";
import "./chunk-PEHDTYHQ.js";
import "./chunk-M4ACGP5U.js";
import "./chunk-W5VBZNBS.js";
import "./chunk-TI5YD5TO.js";
import "./chunk-4NZCUDRR.js";
import "./chunk-UNO7TY7C.js";
import "./chunk-5DMJPWEV.js";
export {
  serverSource,
  swarmSchedule,
  swarmSource
};
