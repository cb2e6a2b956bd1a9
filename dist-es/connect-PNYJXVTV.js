import {
  connectNats,
  parseServers
} from "./chunk-LW4KT72T.js";
import "./chunk-5DMJPWEV.js";
export {
  connectNats,
  parseServers
};
