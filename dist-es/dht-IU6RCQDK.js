import {
  parseBootstrap,
  startLocalDht
} from "./chunk-OZ2UNRGN.js";
export {
  parseBootstrap,
  startLocalDht
};
