// The callers' side of the NATS micro services of service.ts: a JSON request whose service error
// (Nats-Service-Error(-Code) headers, the description starting with our code) becomes an
// UpswarmError with that code. Apart from service.ts so that clients load no service code.
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, type ErrorCode } from '../errors.ts'

/** Sends a request to a service endpoint; service errors become UpswarmErrors with their code. */
export async function request(nc: NatsConnection, subject: string, payload: unknown, timeoutMs = 5000): Promise<Uint8Array> {
  let reply
  try {
    reply = await nc.request(subject, JSON.stringify(payload), { timeout: timeoutMs })
  } catch (err) {
    const msg = (err as Error).message
    const code: ErrorCode = /no responders/i.test(msg) || (err as { name?: string }).name === 'NoRespondersError' ? 'UPSWARM_E_NO_SERVER' : 'UPSWARM_E_TIMEOUT'
    throw new UpswarmError(code, `request to ${subject} failed: ${msg}`, { cause: err })
  }
  const desc = reply.headers?.get('Nats-Service-Error')
  if (desc) {
    const m = /^(UPSWARM_E_[A-Z_]+): ([\s\S]*)$/.exec(desc)
    throw new UpswarmError((m?.[1] as ErrorCode) ?? 'UPSWARM_E_NATS', m?.[2] ?? desc, {
      details: { subject, status: reply.headers?.get('Nats-Service-Error-Code') },
    })
  }
  return reply.data
}

export async function requestJson<T>(nc: NatsConnection, subject: string, payload: unknown, timeoutMs = 5000): Promise<T> {
  const data = await request(nc, subject, payload, timeoutMs)
  return JSON.parse(new TextDecoder().decode(data)) as T
}

