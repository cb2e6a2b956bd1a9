// The accounts users live in (docs/decisions.md, "Client machines in an account of their own"):
// UPSWARM holds every role and every stream; CLIENTS holds the client machines, has no JetStream
// and limits of its own, and reaches UPSWARM only through what UPSWARM exports and CLIENTS
// imports. Whatever a client makes anything publish (a reply subject it names included) stays in
// CLIENTS, where nothing is stored and no role listens.
import type { Account, Export, Import } from '@nats-io/jwt'
import { clientJsApiSubject } from '../nats/names.ts'
import { CLIENT_EVENTS, CLIENT_INSPECTION, CLIENT_SERVICES, CLIENT_STREAMS } from './permissions.ts'

export const UPSWARM_ACCOUNT = 'UPSWARM'
export const CLIENTS_ACCOUNT = 'CLIENTS'

/** What the whole fleet of client machines may hold at once; per connection, CLIENT_USER_LIMITS. */
export interface ClientAccountLimits {
  /** Connections. */
  conn: number
  /** Subscriptions over all connections. */
  subs: number
  /** Largest message a client may publish, bytes. */
  payload: number
  /** Bytes (-1: no limit). */
  data: number
}
export const CLIENT_ACCOUNT_LIMITS: ClientAccountLimits = { conn: 50_000, subs: 50_000 * 64, payload: 1024 * 1024, data: -1 }
/** What one client connection may use of its account's limits. */
export const CLIENT_USER_LIMITS = { subs: 256, payload: 1024 * 1024, data: -1 }

const NO_JETSTREAM = { mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0 }

const exported = (type: Export['type']) => (subject: string): Export =>
  ({ name: subject, subject, type, ...(type === 'service' ? { response_type: 'Singleton' as const } : {}) })
/** Same subject on both sides, but for the JetStream API, which clients name under CLIENT_JS_API_PREFIX. */
const imported = (type: Import['type'], account: string) => (subject: string): Import => {
  const local = clientJsApiSubject(subject)
  return { name: subject, subject, account, type, ...(local !== subject ? { local_subject: local } : {}) }
}

export function upswarmClaims(signingKey: string, revocations: Record<string, number>, clients: string): Partial<Account> {
  return {
    limits: { subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, payload: -1, wildcards: true,
      mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
    signing_keys: [signingKey],
    revocations,
    exports: [...CLIENT_SERVICES.map(exported('service')), ...CLIENT_STREAMS.map(exported('stream'))],
    imports: [CLIENT_EVENTS, ...CLIENT_INSPECTION].map(imported('stream', clients)),
  }
}

export function clientsClaims(signingKey: string, revocations: Record<string, number>, upswarm: string, limits: ClientAccountLimits): Partial<Account> {
  return {
    // No leaf nodes, no JetStream: nothing in CLIENTS can store a message.
    limits: { ...limits, leaf: 0, imports: -1, exports: -1, wildcards: true, ...NO_JETSTREAM },
    signing_keys: [signingKey],
    revocations,
    imports: [...CLIENT_SERVICES.map(imported('service', upswarm)), ...CLIENT_STREAMS.map(imported('stream', upswarm))],
    exports: [CLIENT_EVENTS, ...CLIENT_INSPECTION].map(exported('stream')),
  }
}
