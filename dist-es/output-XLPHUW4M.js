import {
  formatBytes,
  printEvent,
  printResult,
  progressLine,
  reportError
} from "./chunk-EHBQHOMX.js";
import "./chunk-5DMJPWEV.js";
export {
  formatBytes,
  printEvent,
  printResult,
  progressLine,
  reportError
};
