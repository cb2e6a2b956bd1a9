// Who a connection is: the name in its user JWT (the creds file). Subjects that speak for an
// identity (alerts, tracker announces, heartbeats) carry this name, and the cluster's
// permissions let each identity publish only under its own (ARCHITECTURE §6b).
import { UpswarmError } from '../errors.ts'
import { CLIENT_JS_API_PREFIX } from './names.ts'

/** An identity name is one subject token. */
export const IDENTITY_RE = /^[A-Za-z0-9_-]{1,64}$/
/** The identity of a connection made without credentials (development only). */
export const ANONYMOUS = 'anonymous'

export const IDENTITY_KINDS = ['admin', 'publisher', 'server', 'proxy', 'tracker', 'client', 'notary', 'leaf'] as const
export type IdentityKind = (typeof IDENTITY_KINDS)[number]

export interface Identity {
  kind: IdentityKind
  /** One subject token: the server id, the client machine's name, … */
  name: string
}

/**
 * A connection's own inbox: replies to its requests and its consumers' deliveries go here only.
 * Under `_INBOX.` so that responders may answer any inbox (`_INBOX.>`) and nothing else.
 */
export const inboxPrefix = (id: Identity): string => `_INBOX.${id.kind}.${id.name}`
/** The user JWT tag that names the identity's kind. */
export const kindTag = (kind: IdentityKind): string => `upswarm-kind:${kind}`
/** The user JWT tag of a client machine in the CLIENTS account (creds issued before it have none). */
export const CLIENTS_ACCOUNT_TAG = 'upswarm-account:clients'

interface ConnectionIdentity { name: string; jsApiPrefix?: string; key?: string; inbox?: string }
const identities = new WeakMap<object, ConnectionIdentity>()

export function setIdentity(nc: object, id: ConnectionIdentity): void {
  identities.set(nc, id)
}

/** The identity name a connection was opened with (`anonymous` without credentials). */
export function identityOf(nc: object): string {
  return identities.get(nc)?.name ?? ANONYMOUS
}

/** The user's public nkey of a connection made with credentials (a client's stage key, issue 16 item 1). */
export function identityKeyOf(nc: object): string | undefined {
  return identities.get(nc)?.key
}

/** The inbox prefix a connection was opened with (an identity may subscribe under its own only); undefined: nats.js's default. */
export function inboxPrefixOf(nc: object): string | undefined {
  return identities.get(nc)?.inbox
}

/** The JetStream options of a connection: a client machine in CLIENTS reaches the API under CLIENT_JS_API_PREFIX. */
export function jetStreamOptionsOf(nc: object): { apiPrefix?: string } {
  const prefix = identities.get(nc)?.jsApiPrefix
  return prefix ? { apiPrefix: prefix } : {}
}

const JWT_RE = /-{3,}BEGIN NATS USER JWT-{3,}\s+([A-Za-z0-9_.-]+)\s+-{3,}END NATS USER JWT-{3,}/

/** The user JWT of a creds file's text, or undefined when it has no user JWT block. */
export function credsJwt(creds: string): string | undefined {
  return JWT_RE.exec(creds)?.[1]
}

/** The user JWT's claims from a creds file's text (not verified: the server does that). */
export function credsClaims(creds: string, where: string): { name: string; sub: string; exp?: number; identity?: Identity; inbox?: string; jsApiPrefix?: string } {
  const jwt = credsJwt(creds)
  const payload = jwt?.split('.')[1]
  if (!payload) throw new UpswarmError('UPSWARM_E_CONFIG', `${where} is not a NATS creds file (no user JWT block)`)
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { name?: unknown; sub?: unknown; exp?: unknown; nats?: { tags?: unknown } }
    if (typeof claims.name !== 'string' || typeof claims.sub !== 'string') throw new Error('name or sub missing')
    const tags = Array.isArray(claims.nats?.tags) ? claims.nats.tags : []
    const kind = IDENTITY_KINDS.find((k) => tags.includes(kindTag(k)))
    const identity = kind ? { kind, name: claims.name } : undefined
    return {
      name: claims.name, sub: claims.sub, ...(typeof claims.exp === 'number' ? { exp: claims.exp } : {}),
      ...(identity ? { identity, inbox: inboxPrefix(identity) } : {}),
      ...(tags.includes(CLIENTS_ACCOUNT_TAG) ? { jsApiPrefix: CLIENT_JS_API_PREFIX } : {}),
    }
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${where}: the user JWT cannot be read: ${(err as Error).message}`, { cause: err })
  }
}
