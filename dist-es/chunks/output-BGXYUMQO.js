import {
  formatBytes,
  printEvent,
  printResult,
  progressLine,
  reportError
} from "./chunk-S4SU3TXI.js";
import "./chunk-RP33VEIV.js";
export {
  formatBytes,
  printEvent,
  printResult,
  progressLine,
  reportError
};
