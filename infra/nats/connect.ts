// NATS connection settings shared by every role: servers from flags or UPSWARM_NATS.
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'

export type { NatsConnection }

/** Parses "nats://a:1,nats://b:2" (or an array of such) into a list of URLs. */
export function parseServers(value: string | string[] | undefined): string[] {
  const raw = Array.isArray(value) ? value.join(',') : value ?? process.env.UPSWARM_NATS ?? ''
  return raw.split(',').map((s) => s.trim()).filter(Boolean)
}

export async function connectNats(servers: string | string[] | undefined, name: string): Promise<NatsConnection> {
  const list = parseServers(servers)
  if (list.length === 0) {
    throw new UpswarmError('UPSWARM_E_CONFIG', 'no NATS servers given: pass --nats URLS or set UPSWARM_NATS (e.g. nats://127.0.0.1:4222)')
  }
  try {
    return await connect({
      servers: list,
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 5_000,
    })
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_NATS', `cannot connect to NATS at ${list.join(',')}: ${(err as Error).message}`, { cause: err })
  }
}
