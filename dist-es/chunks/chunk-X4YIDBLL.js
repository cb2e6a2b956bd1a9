import {
  withRetry
} from "./chunk-OI7SFTYE.js";
import {
  alertSubject
} from "./chunk-ZEBQZC7Y.js";
import {
  sha256Hex
} from "./chunk-6PH2J2O4.js";

// infra/nats/alert-sink.ts
import { jetstream } from "@nats-io/jetstream";
function jetStreamAlertSink(nc) {
  const js = jetstream(nc);
  return {
    async publish(alert) {
      const body = JSON.stringify(alert);
      const id = sha256Hex(`${alert.product}:${alert.clientId}:${alert.path}:${alert.rev}:${alert.targetRev}`);
      await withRetry(() => js.publish(alertSubject(alert.product), body, { msgID: id }), { attempts: 10 });
    }
  };
}

export {
  jetStreamAlertSink
};
