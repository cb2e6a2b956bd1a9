import {
  parseBootstrap,
  startLocalDht
} from "./chunk-KR3YWSO7.js";
export {
  parseBootstrap,
  startLocalDht
};
