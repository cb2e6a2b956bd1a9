// NATS micro services (`nats micro ls` lists them) with JSON requests validated at the boundary.
// Errors travel in the Nats-Service-Error(-Code) headers; the description starts with our
// stable error code so callers can match on it.
import { Svcm, type Service, type ServiceMsg } from '@nats-io/services'
import type { NatsConnection } from '@nats-io/transport-node'
import type { z } from 'zod'
import { UpswarmError, isUpswarmError, type ErrorCode } from '../errors.ts'

// The callers' side lives apart, so that a client (the sharing daemon) loads no service code.
export { request, requestJson } from './request.ts'

export interface EndpointSpec<S extends z.ZodType> {
  subject: string
  schema: S
  /** Returns the reply payload: bytes as-is, anything else as JSON. */
  handle: (req: z.infer<S>, msg: ServiceMsg) => Promise<Uint8Array | unknown>
}

/** Builds a typed endpoint; the handler sees the request as the schema parsed it. */
export function endpoint<S extends z.ZodType>(
  subject: string,
  schema: S,
  handle: (req: z.infer<S>, msg: ServiceMsg) => Promise<Uint8Array | unknown>,
): EndpointSpec<z.ZodType> {
  return { subject, schema, handle: handle as EndpointSpec<z.ZodType>['handle'] }
}

export interface ServiceSpec {
  name: string
  version: string
  description: string
  metadata?: Record<string, string>
  /** Queue group: instances in the same group share the requests. */
  queue?: string
  endpoints: Record<string, EndpointSpec<z.ZodType>>
}

/**
 * Where answers may go: a requester's inbox, or the `_R_.` subject the server puts in place of
 * the reply of a request that came through a service import (a client machine's, from CLIENTS).
 */
const REPLY_PREFIXES = ['_INBOX.', '_R_.']

/** The HTTP-like status a service error carries (and the bulk port answers with, issue 14 item 2). */
export const STATUS_OF: Partial<Record<ErrorCode, number>> = {
  UPSWARM_E_BAD_REQUEST: 400,
  UPSWARM_E_NOT_FOUND: 404,
  UPSWARM_E_UNKNOWN_REVISION: 404,
  UPSWARM_E_NO_SERVER: 503,
  UPSWARM_E_BUSY: 503,
}

export async function startService(nc: NatsConnection, spec: ServiceSpec): Promise<Service> {
  // @nats-io/services is built against an older nats-core; the connection is compatible at runtime.
  const svcm = new Svcm(nc as never)
  const svc = await svcm.add({
    name: spec.name,
    version: spec.version,
    description: spec.description,
    metadata: spec.metadata,
    ...(spec.queue ? { queue: spec.queue } : {}),
  })
  for (const [name, ep] of Object.entries(spec.endpoints)) {
    svc.addEndpoint(name, {
      subject: ep.subject,
      ...(spec.queue ? { queue: spec.queue } : {}),
      handler: (err, msg) => {
        if (err) return
        // Answers go to an inbox (or back through an import) only: a request naming any other
        // reply subject (a stream operation, someone's heartbeat) would have this service publish
        // there with its own permissions (issue 10; the security suite tries it). Such a request
        // gets no answer.
        const reply = msg.reply
        if (!reply || !REPLY_PREFIXES.some((p) => reply.startsWith(p))) return
        void answer(ep, msg)
      },
    })
  }
  return svc
}

async function answer(ep: EndpointSpec<z.ZodType>, msg: ServiceMsg): Promise<void> {
  try {
    let body: unknown
    try {
      body = msg.data.length ? JSON.parse(new TextDecoder().decode(msg.data)) : {}
    } catch {
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `request on ${msg.subject} is not JSON`)
    }
    const parsed = ep.schema.safeParse(body)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `bad request on ${msg.subject}: ${issue?.path.join('.') || '(root)'} ${issue?.message}`)
    }
    const out = await ep.handle(parsed.data, msg)
    msg.respond(out instanceof Uint8Array ? out : JSON.stringify(out))
  } catch (err) {
    const code: ErrorCode = isUpswarmError(err) ? err.code : 'UPSWARM_E_IO'
    const message = err instanceof Error ? err.message : String(err)
    // A designed refusal names its own status (a tracker's rate limit: 429); 500 is for what nobody expected.
    const own = isUpswarmError(err) ? err.details?.status : undefined
    msg.respondError(typeof own === 'number' ? own : (STATUS_OF[code] ?? 500), `${code}: ${message}`)
  }
}
