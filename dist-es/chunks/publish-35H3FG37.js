import {
  publish
} from "./chunk-NKDWGKFM.js";
import "./chunk-T5RVPTZM.js";
import "./chunk-WXI5373J.js";
import "./chunk-2C5K53AI.js";
import "./chunk-IAH3INNS.js";
import "./chunk-2A6R4MPD.js";
import "./chunk-OI7SFTYE.js";
import "./chunk-4DN6M2O5.js";
import "./chunk-DOGSJQR3.js";
import "./chunk-ZEBQZC7Y.js";
import "./chunk-27MN4SFY.js";
import "./chunk-6PH2J2O4.js";
import "./chunk-4I46HHR5.js";
import "./chunk-LL5LKXZC.js";
import "./chunk-RP33VEIV.js";
export {
  publish
};
