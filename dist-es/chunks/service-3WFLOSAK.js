import {
  endpoint,
  request,
  requestJson,
  startService
} from "./chunk-LL5LKXZC.js";
import "./chunk-RP33VEIV.js";
export {
  endpoint,
  request,
  requestJson,
  startService
};
