import {
  WorkingCopy
} from "./chunk-BK3BBXD5.js";
import "./chunk-GZTDGJDJ.js";
import "./chunk-W5VBZNBS.js";
import "./chunk-TI5YD5TO.js";
import "./chunk-4NZCUDRR.js";
import "./chunk-5DMJPWEV.js";
export {
  WorkingCopy
};
