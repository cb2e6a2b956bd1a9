import {
  jetStreamAlertSink
} from "./chunk-X4YIDBLL.js";
import "./chunk-OI7SFTYE.js";
import "./chunk-ZEBQZC7Y.js";
import "./chunk-6PH2J2O4.js";
export {
  jetStreamAlertSink
};
