import {
  UpswarmError
} from "./chunk-5DMJPWEV.js";

// infra/nats/connect.ts
import { connect } from "@nats-io/transport-node";
function parseServers(value) {
  const raw = Array.isArray(value) ? value.join(",") : value ?? process.env.UPSWARM_NATS ?? "";
  return raw.split(",").map((s) => s.trim()).filter(Boolean);
}
async function connectNats(servers, name) {
  const list = parseServers(servers);
  if (list.length === 0) {
    throw new UpswarmError("UPSWARM_E_CONFIG", "no NATS servers given: pass --nats URLS or set UPSWARM_NATS (e.g. nats://127.0.0.1:4222)");
  }
  try {
    return await connect({
      servers: list,
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 5e3
    });
  } catch (err) {
    throw new UpswarmError("UPSWARM_E_NATS", `cannot connect to NATS at ${list.join(",")}: ${err.message}`, { cause: err });
  }
}

export {
  parseServers,
  connectNats
};
