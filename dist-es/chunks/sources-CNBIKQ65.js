import {
  serverSource,
  swarmSchedule,
  swarmSource
} from "./chunk-YAVUDVTB.js";
import "./chunk-IAH3INNS.js";
import "./chunk-ZEBQZC7Y.js";
import "./chunk-27MN4SFY.js";
import "./chunk-6PH2J2O4.js";
import "./chunk-4I46HHR5.js";
import "./chunk-LL5LKXZC.js";
import "./chunk-RP33VEIV.js";
export {
  serverSource,
  swarmSchedule,
  swarmSource
};
