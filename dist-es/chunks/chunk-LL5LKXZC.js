import {
  UpswarmError,
  isUpswarmError
} from "./chunk-RP33VEIV.js";

// infra/nats/service.ts
import { Svcm } from "@nats-io/services";
function endpoint(subject, schema, handle) {
  return { subject, schema, handle };
}
var STATUS_OF = {
  UPSWARM_E_BAD_REQUEST: 400,
  UPSWARM_E_NOT_FOUND: 404,
  UPSWARM_E_UNKNOWN_REVISION: 404,
  UPSWARM_E_NO_SERVER: 503
};
async function startService(nc, spec) {
  const svcm = new Svcm(nc);
  const svc = await svcm.add({
    name: spec.name,
    version: spec.version,
    description: spec.description,
    metadata: spec.metadata,
    ...spec.queue ? { queue: spec.queue } : {}
  });
  for (const [name, ep] of Object.entries(spec.endpoints)) {
    svc.addEndpoint(name, {
      subject: ep.subject,
      ...spec.queue ? { queue: spec.queue } : {},
      handler: (err, msg) => {
        if (err) return;
        void answer(ep, msg);
      }
    });
  }
  return svc;
}
async function answer(ep, msg) {
  try {
    let body;
    try {
      body = msg.data.length ? JSON.parse(new TextDecoder().decode(msg.data)) : {};
    } catch {
      throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `request on ${msg.subject} is not JSON`);
    }
    const parsed = ep.schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UpswarmError("UPSWARM_E_BAD_REQUEST", `bad request on ${msg.subject}: ${issue?.path.join(".") || "(root)"} ${issue?.message}`);
    }
    const out = await ep.handle(parsed.data, msg);
    msg.respond(out instanceof Uint8Array ? out : JSON.stringify(out));
  } catch (err) {
    const code = isUpswarmError(err) ? err.code : "UPSWARM_E_IO";
    const message = err instanceof Error ? err.message : String(err);
    msg.respondError(STATUS_OF[code] ?? 500, `${code}: ${message}`);
  }
}
async function request(nc, subject, payload, timeoutMs = 5e3) {
  let reply;
  try {
    reply = await nc.request(subject, JSON.stringify(payload), { timeout: timeoutMs });
  } catch (err) {
    const msg = err.message;
    const code = /no responders/i.test(msg) || err.name === "NoRespondersError" ? "UPSWARM_E_NO_SERVER" : "UPSWARM_E_TIMEOUT";
    throw new UpswarmError(code, `request to ${subject} failed: ${msg}`, { cause: err });
  }
  const desc = reply.headers?.get("Nats-Service-Error");
  if (desc) {
    const m = /^(UPSWARM_E_[A-Z_]+): ([\s\S]*)$/.exec(desc);
    throw new UpswarmError(m?.[1] ?? "UPSWARM_E_NATS", m?.[2] ?? desc, {
      details: { subject, status: reply.headers?.get("Nats-Service-Error-Code") }
    });
  }
  return reply.data;
}
async function requestJson(nc, subject, payload, timeoutMs = 5e3) {
  const data = await request(nc, subject, payload, timeoutMs);
  return JSON.parse(new TextDecoder().decode(data));
}

export {
  endpoint,
  startService,
  request,
  requestJson
};
