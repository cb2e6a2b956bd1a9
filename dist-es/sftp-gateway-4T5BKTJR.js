import {
  loadOrCreateHostKey,
  parseAuthorizedKeys,
  startSftpGateway
} from "./chunk-UVFE6XQU.js";
import "./chunk-W5VBZNBS.js";
import "./chunk-TI5YD5TO.js";
import "./chunk-4NZCUDRR.js";
import "./chunk-5DMJPWEV.js";
export {
  loadOrCreateHostKey,
  parseAuthorizedKeys,
  startSftpGateway
};
