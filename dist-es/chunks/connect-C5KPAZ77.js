import {
  connectNats,
  parseServers
} from "./chunk-OB7OCPB5.js";
import "./chunk-RP33VEIV.js";
export {
  connectNats,
  parseServers
};
