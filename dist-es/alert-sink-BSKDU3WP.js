import {
  jetStreamAlertSink
} from "./chunk-YDFMZNKU.js";
import "./chunk-O2WH55TW.js";
import "./chunk-M4ACGP5U.js";
import "./chunk-TI5YD5TO.js";
export {
  jetStreamAlertSink
};
