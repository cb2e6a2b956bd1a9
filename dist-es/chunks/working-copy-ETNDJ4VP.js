import {
  WorkingCopy
} from "./chunk-JUR675O3.js";
import "./chunk-4DN6M2O5.js";
import "./chunk-27MN4SFY.js";
import "./chunk-6PH2J2O4.js";
import "./chunk-4I46HHR5.js";
import "./chunk-RP33VEIV.js";
export {
  WorkingCopy
};
