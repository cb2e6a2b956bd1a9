import {
  endpoint,
  request,
  requestJson,
  startService
} from "./chunk-UNO7TY7C.js";
import "./chunk-5DMJPWEV.js";
export {
  endpoint,
  request,
  requestJson,
  startService
};
