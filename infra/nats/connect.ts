// NATS connection settings shared by every role: servers from flags or UPSWARM_NATS, the
// identity from a creds file (--creds / UPSWARM_CREDS) and the cluster's CA for TLS
// (--tls-ca / UPSWARM_TLS_CA). Issue 10: nothing connects anonymously once identities exist.
import { readFileSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, findCause, permissionViolation } from '../errors.ts'
import { mark } from '../timings.ts'
import { credsAuth } from './creds-auth.ts'
import { credsClaims, credsJwt, setIdentity } from './identity.ts'

export type { NatsConnection }

export interface NatsAuth {
  /** A NATS creds file (user JWT + seed); default UPSWARM_CREDS; '' for none. */
  creds?: string | undefined
  /** PEM file of the CA that signed the servers' certificates; default UPSWARM_TLS_CA. */
  tlsCa?: string | undefined
  /**
   * How long the first connect may take over all the servers (each gets its share); default
   * nats.js's 20 s per server. A server that accepts TCP and never answers costs its share.
   */
  timeoutMs?: number | undefined
  /**
   * How often the client pings the server it is connected to (default 5 s: a silent server is
   * noticed within 15 s). The idle sharing daemon pings every 30 s (issue 13 item 5); a server
   * that stops is noticed at once all the same, its socket closing.
   */
  pingIntervalMs?: number | undefined
}

/** Parses "nats://a:1,nats://b:2" (or an array of such) into a list of URLs. */
export function parseServers(value: string | string[] | undefined): string[] {
  const raw = Array.isArray(value) ? value.join(',') : value ?? process.env.UPSWARM_NATS ?? ''
  return raw.split(',').map((s) => s.trim()).filter(Boolean)
}

function readConfigFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read the ${what} ${file}: ${(err as Error).message}`, { cause: err })
  }
}

export async function connectNats(servers: string | string[] | undefined, name: string, auth: NatsAuth = {}): Promise<NatsConnection> {
  const list = parseServers(servers)
  if (list.length === 0) {
    throw new UpswarmError('UPSWARM_E_CONFIG', 'no NATS servers given: pass --nats URLS or set UPSWARM_NATS (e.g. nats://127.0.0.1:4222)')
  }
  // Given (even empty: none) wins over the environment.
  const credsFile = (auth.creds ?? process.env.UPSWARM_CREDS) || undefined
  const caFile = (auth.tlsCa ?? process.env.UPSWARM_TLS_CA) || undefined
  const creds = credsFile ? readConfigFile(credsFile, 'creds file') : undefined
  const claims = creds ? credsClaims(creds, credsFile!) : undefined
  if (caFile) readConfigFile(caFile, 'TLS CA file')
  warnIfExpiring(claims?.exp, credsFile)
  // nats.js leaks the socket of a dial that times out before the server's INFO (the process
  // cannot exit, a retrying daemon gains a descriptor per attempt): a bounded connect first
  // asks which servers speak at all, and dials only those.
  const speaking = auth.timeoutMs ? await answering(list, auth.timeoutMs) : { urls: list }
  if (speaking.urls.length === 0) throw connectError(speaking.failure, list, credsFile, caFile, creds)
  let nc: NatsConnection
  mark('connect: dialling')
  try {
    nc = await connect({
      servers: speaking.urls,
      name,
      maxReconnectAttempts: -1,
      ...(auth.timeoutMs ? { timeout: Math.max(MIN_DIAL_MS, Math.floor(auth.timeoutMs / speaking.urls.length)) } : {}),
      reconnectTimeWait: 250,
      pingInterval: auth.pingIntervalMs ?? 5_000,
      ...(creds ? { authenticator: credsAuth(creds, credsFile!) } : {}),
      ...(claims?.inbox ? { inboxPrefix: claims.inbox } : {}),
      ...(caFile ? { tls: { caFile } } : {}),
    })
  } catch (err) {
    throw connectError(err, list, credsFile, caFile, creds)
  }
  if (claims) setIdentity(nc, { name: claims.name, key: claims.sub, ...(claims.jsApiPrefix ? { jsApiPrefix: claims.jsApiPrefix } : {}), ...(claims.inbox ? { inbox: claims.inbox } : {}) })
  reportRefusals(nc, claims?.name ?? 'anonymous')
  return nc
}

/** The servers of `list` that send their first bytes (a NATS server's INFO) within `ms`, in order. */
async function answering(list: string[], ms: number): Promise<{ urls: string[]; failure?: Error }> {
  const failures = await Promise.all(list.map((url) => new Promise<Error | undefined>((resolve) => {
    const { hostname, port } = new URL(url.includes('://') ? url : `nats://${url}`)
    const socket = tcpConnect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 4222) })
    const done = (failure?: Error): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(failure)
    }
    const timer = setTimeout(() => done(new Error(`no answer within ${ms} ms`)), ms)
    socket.once('data', () => done())
    socket.once('error', (err) => done(err))
    socket.once('close', () => done(new Error('closed before a word')))
  })))
  return { urls: list.filter((_, i) => !failures[i]), ...(failures.find(Boolean) ? { failure: failures.find(Boolean)! } : {}) }
}

/** The least time one server's dial is given when a bounded connect is shared among many. */
const MIN_DIAL_MS = 100

const EXPIRY_WARNING_S = 14 * 24 * 60 * 60

/** Creds that expire soon say so on every connect: re-issue them while the machine is reachable. */
function warnIfExpiring(exp: number | undefined, file: string | undefined): void {
  const left = exp === undefined ? Infinity : exp - Date.now() / 1000
  if (left > EXPIRY_WARNING_S || left <= 0) return
  process.stderr.write(`upswarm: the credentials in ${file} expire on ${new Date(exp! * 1000).toISOString()}; ask the operator to re-issue them (upswarm creds issue --client NAME)\n`)
}

/**
 * A plain publish the cluster refuses fails silently on the sender's side (nats.js reports it on
 * the status stream): say so on stderr, once per subject, so a missing permission never hides.
 */
function reportRefusals(nc: NatsConnection, identity: string): void {
  const seen = new Set<string>()
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type !== 'error') continue
      const denied = permissionViolation(s.error)
      if (!denied || seen.has(`${denied.operation} ${denied.subject}`)) continue
      seen.add(`${denied.operation} ${denied.subject}`)
      process.stderr.write(`upswarm: NATS refused ${identity} to ${denied.operation ?? 'publish'} ${denied.subject ?? ''} [UPSWARM_E_PERMISSION]\n`)
    }
  })()
}

/**
 * JWT bytes past which a CONNECT line may pass a server's default `max_control_line` (4 KiB): the
 * server answers with an -ERR that nats.js drops, and the dial looks like a timeout.
 */
export const LONG_JWT_BYTES = 3_000

export function connectError(err: unknown, list: string[], credsFile: string | undefined, caFile: string | undefined, creds?: string): UpswarmError {
  const where = `NATS at ${list.join(',')}`
  const msg = (err as Error).message
  const jwt = creds ? credsJwt(creds) : undefined
  if (findCause(err, 'UserAuthenticationExpiredError')) {
    return new UpswarmError('UPSWARM_E_AUTH', `${where} refused the credentials in ${credsFile}: they have expired; ask the operator to renew them (upswarm creds issue --client NAME)`, { cause: err })
  }
  if (findCause(err, 'AuthorizationError')) {
    return new UpswarmError('UPSWARM_E_AUTH', credsFile
      ? `${where} refused the credentials in ${credsFile} (${msg}): they are unknown to this cluster or revoked`
      : `${where} requires credentials: pass --creds FILE or set UPSWARM_CREDS (upswarm up names each role's creds in endpoints.json)`, { cause: err })
  }
  if (!caFile && /tls|certificate/i.test(msg)) {
    return new UpswarmError('UPSWARM_E_CONFIG', `${where} requires TLS: pass --tls-ca FILE or set UPSWARM_TLS_CA (endpoints.json names the cluster's CA): ${msg}`, { cause: err })
  }
  if (jwt && jwt.length > LONG_JWT_BYTES && /timeout|timed out/i.test(msg)) {
    return new UpswarmError('UPSWARM_E_NATS', `cannot connect to ${where}: ${msg}. The JWT in ${credsFile} is ${jwt.length} bytes: its CONNECT line may pass the servers' max_control_line (4 KiB by default), which a server refuses in a way that looks like this timeout; raise max_control_line in their configuration (docs/ops.md)`, { cause: err })
  }
  return new UpswarmError('UPSWARM_E_NATS', `cannot connect to ${where}: ${msg}`, { cause: err })
}
