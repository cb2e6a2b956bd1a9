// The identities of one deployment (issue 10, item 1; ARCHITECTURE §6b): NATS's decentralized
// JWT model. An operator signs three accounts — SYS (the servers' own), UPSWARM (every role) and
// CLIENTS (every client machine, importing from UPSWARM only what clients use: accounts.ts) —
// and each account's signing key signs its users. The cluster loads the accounts at start
// (resolver `full`); a revocation is a new account JWT pushed to the running cluster, so no
// repository server restarts and no other creds change.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds, fromSeed, type KeyPair } from '@nats-io/jwt'
import { UpswarmError } from '../errors.ts'
import { writeFileAtomic } from '../store/working-copy/atomic.ts'
import { CLIENTS_ACCOUNT_TAG, IDENTITY_RE, kindTag, type Identity } from '../nats/identity.ts'
import { withLock } from '../store/lock-file.ts'
import { createCa, issueServerCert } from './tls.ts'
import { createFleetKey, createSwarmIdentity, fleetPublicKeyOf, writeSwarmIdentity } from '../swarm/fleet.ts'
import { permissionsFor } from './permissions.ts'
import { CLIENTS_ACCOUNT, CLIENT_ACCOUNT_LIMITS, CLIENT_USER_LIMITS, UPSWARM_ACCOUNT, clientsClaims, upswarmClaims, type ClientAccountLimits } from './accounts.ts'

export const AUTHORITY_FORMAT = 1
/** Client credentials live long enough for a machine that is offline for weeks (renewed by re-issue). */
export const CLIENT_CREDS_TTL_S = 180 * 24 * 60 * 60

interface Issued {
  kind: Identity['kind']
  name: string
  publicKey: string
  issuedAt: number
  expires?: number
  /** The account the user is in (its public key); absent in files written before CLIENTS: UPSWARM. */
  account?: string
}

interface AccountState { seed: string; signingSeed: string; jwt: string; revocations: Record<string, number> }

interface AuthorityFile {
  format: number
  operator: { seed: string; jwt: string }
  system: { seed: string; jwt: string; userSeed: string; userJwt: string }
  /** UPSWARM: the roles. */
  account: AccountState
  /** CLIENTS: the client machines; added on open to a file written before it existed. */
  clients?: AccountState & { limits: ClientAccountLimits }
  issued: Issued[]
  /** The fleet key and topic secret of private swarms (hex); made on first use, so older files keep working. */
  fleet?: { seed: string; topicSecret: string }
}

const dec = new TextDecoder()
const seedOf = (kp: KeyPair): string => dec.decode(kp.getSeed())
const kp = (seed: string): KeyPair => fromSeed(new TextEncoder().encode(seed))

export interface AuthorityPaths {
  dir: string
  file: string
  caFile: string
  certFile: string
  keyFile: string
  credsDir: string
}

/** Where an identity's creds file is kept in a deployment: `creds/<kind>-<name>.creds`. */
export const credsFileOf = (credsDir: string, identity: Identity): string => join(credsDir, `${identity.kind}-${identity.name}.creds`)

export const authorityPaths = (dir: string): AuthorityPaths => ({
  dir,
  file: join(dir, 'authority.json'),
  caFile: join(dir, 'ca.pem'),
  certFile: join(dir, 'nats-server-cert.pem'),
  keyFile: join(dir, 'nats-server-key.pem'),
  credsDir: join(dir, 'creds'),
})

/** Keys and creds: written atomically, readable by their owner only. */
async function writePrivate(file: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomic(file, data, dirname(file), 0o600)
}

type WithClients = AuthorityFile & { clients: NonNullable<AuthorityFile['clients']> }

const newAccount = (): AccountState => ({ seed: seedOf(createAccount()), signingSeed: seedOf(createAccount()), jwt: '', revocations: {} })
const publicKeyOf = (account: AccountState): string => kp(account.seed).getPublicKey()

/** Signs UPSWARM's JWT again from the state (exports to and imports from CLIENTS, revocations). */
async function signUpswarm(state: WithClients): Promise<string> {
  const { account, clients } = state
  account.jwt = await encodeAccount(UPSWARM_ACCOUNT, kp(account.seed), upswarmClaims(kp(account.signingSeed).getPublicKey(), account.revocations, publicKeyOf(clients)),
    { signer: kp(state.operator.seed) })
  return account.jwt
}

/** Signs CLIENTS's JWT again from the state (imports from UPSWARM, limits, revocations). */
async function signClients(state: WithClients): Promise<string> {
  const { account, clients } = state
  clients.jwt = await encodeAccount(CLIENTS_ACCOUNT, kp(clients.seed), clientsClaims(kp(clients.signingSeed).getPublicKey(), clients.revocations, publicKeyOf(account), clients.limits),
    { signer: kp(state.operator.seed) })
  return clients.jwt
}

/** Adds CLIENTS to a file written before it existed: UPSWARM's JWT gains the exports clients import. */
async function addClients(state: AuthorityFile): Promise<WithClients> {
  if (state.clients) return state as WithClients
  const withClients = Object.assign(state, { clients: { ...newAccount(), limits: { ...CLIENT_ACCOUNT_LIMITS } } })
  await signUpswarm(withClients)
  await signClients(withClients)
  return withClients
}

/** Whether the accounts' JWTs export and import what this upswarm's claims name. */
function sharesCurrentSubjects(state: WithClients): boolean {
  const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { nats?: { imports?: { subject: string }[]; exports?: { subject: string }[] } }
  const subjects = (list: { subject: string }[] | undefined) => (list ?? []).map((x) => x.subject).sort().join(' ')
  const want = upswarmClaims('', {}, publicKeyOf(state.clients))
  const have = claims(state.account.jwt).nats
  return subjects(have?.imports) === subjects(want.imports) && subjects(have?.exports) === subjects(want.exports)
}

async function readState(paths: AuthorityPaths): Promise<AuthorityFile> {
  let state: AuthorityFile
  try {
    state = JSON.parse(await readFile(paths.file, 'utf8')) as AuthorityFile
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read the identities of this deployment from ${paths.file}: ${(err as Error).message} (upswarm up --dir D creates them)`, { cause: err })
  }
  if (state.format !== AUTHORITY_FORMAT) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${paths.file} has format ${state.format}; this upswarm reads format ${AUTHORITY_FORMAT}`)
  }
  return state
}

export class Authority {
  readonly paths: AuthorityPaths
  private state: AuthorityFile

  private constructor(paths: AuthorityPaths, state: AuthorityFile) {
    this.paths = paths
    this.state = state
  }

  /** Opens the authority kept in `dir`, creating it (keys, accounts, CA, server certificate) when missing. */
  static async open(dir: string, tlsHosts: string[] = ['127.0.0.1', 'localhost']): Promise<Authority> {
    const paths = authorityPaths(dir)
    if (existsSync(paths.file)) return Authority.load(dir)
    await mkdir(paths.credsDir, { recursive: true, mode: 0o700 })
    const operatorKp = createOperator()
    const systemKp = createAccount()
    const operatorJwt = await encodeOperator('upswarm', operatorKp, { system_account: systemKp.getPublicKey() })
    // The system account's JWT carries no limits by default, which means no connection at all.
    const systemJwt = await encodeAccount('SYS', systemKp, { limits: { conn: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, leaf: -1 } }, { signer: operatorKp })
    const sysUserKp = createUser()
    const sysUserJwt = await encodeUser('sys', sysUserKp, systemKp)
    const state: AuthorityFile = {
      format: AUTHORITY_FORMAT,
      operator: { seed: seedOf(operatorKp), jwt: operatorJwt },
      system: { seed: seedOf(systemKp), jwt: systemJwt, userSeed: seedOf(sysUserKp), userJwt: sysUserJwt },
      account: newAccount(),
      issued: [],
    }
    await addClients(state)
    const ca = createCa('upswarm cluster CA')
    const server = issueServerCert(ca, tlsHosts)
    await writeFile(paths.caFile, ca.cert)
    await writePrivate(join(dir, 'ca-key.pem'), ca.key)
    await writeFile(paths.certFile, server.cert)
    await writePrivate(paths.keyFile, server.key)
    const authority = new Authority(paths, state)
    await authority.save()
    return authority
  }

  static async load(dir: string): Promise<Authority> {
    const paths = authorityPaths(dir)
    const authority = new Authority(paths, await readState(paths))
    if (!authority.state.clients) await authority.update(async () => {})
    // An account signed by an older upswarm lacks subjects clients export since (issue 12's
    // inspection): signed again, the cluster serves them from its next start.
    else if (!sharesCurrentSubjects(authority.full)) await authority.update(async (state) => { await signUpswarm(state); await signClients(state) })
    return authority
  }

  /** Re-reads the file under its lock, applies `change` and writes it back (adding CLIENTS to an older file). */
  private async update<T>(change: (state: WithClients) => Promise<T>): Promise<T> {
    return withLock(this.paths.file, async () => {
      const state = await addClients(await readState(this.paths))
      this.state = state
      const out = await change(state)
      await this.save()
      return out
    })
  }

  /** Loaded files always hold CLIENTS (load adds it). */
  private get full(): WithClients {
    return this.state as WithClients
  }

  private async save(): Promise<void> {
    await writePrivate(this.paths.file, `${JSON.stringify(this.state, null, 2)}\n`)
  }


  /** The account an identity's users are in: CLIENTS for client machines, UPSWARM for roles. */
  private accountOf(kind: Identity['kind']): AccountState {
    return kind === 'client' ? this.full.clients : this.full.account
  }

  /** UPSWARM's and CLIENTS's public keys: `nats server report connections --account KEY` (system user) lists either's connections. */
  get accountPublicKeys(): { upswarm: string; clients: string } {
    return { upswarm: publicKeyOf(this.full.account), clients: publicKeyOf(this.full.clients) }
  }

  /**
   * Issue 17 item 1: a certificate of one host's NATS node, signed by this deployment's CA, naming
   * the addresses clients dial it at (SANs); written as DIR/tls-cert.pem and DIR/tls-key.pem (0600).
   */
  writeNodeCert(dir: string, hosts: string[]): { certFile: string; keyFile: string } {
    return this.writeSignedCert(dir, 'tls', hosts, "a host's NATS certificate")
  }

  /**
   * Issue 17: the certificate a host's NATS nodes present on their routes, both ways (mutual TLS:
   * a route is accepted only from a node holding a certificate of this deployment's CA), naming
   * `hosts`. Written into `dir` at each start; needs the CA key, as writeNodeCert does.
   */
  writeRouteCert(dir: string, hosts: string[]): { certFile: string; keyFile: string; caFile: string } {
    return { ...this.writeSignedCert(dir, 'route', hosts, "the NATS routes' certificate", { client: true }), caFile: this.paths.caFile }
  }

  /** A certificate naming `hosts`, signed with the CA key, written as `dir/<name>-cert.pem` and `-key.pem` (0600). */
  private writeSignedCert(dir: string, name: string, hosts: string[], what: string, opts: { client?: boolean } = {}): { certFile: string; keyFile: string } {
    const caKeyFile = join(this.paths.dir, 'ca-key.pem')
    if (!existsSync(caKeyFile)) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `the CA key ${caKeyFile} is missing: ${what} naming ${hosts.join(', ')} is signed with it (copy the first host's D/auth whole)`)
    }
    const pair = issueServerCert({ cert: readFileSync(this.paths.caFile, 'utf8'), key: readFileSync(caKeyFile, 'utf8') }, hosts, opts)
    const out = { certFile: join(dir, `${name}-cert.pem`), keyFile: join(dir, `${name}-key.pem`) }
    writeFileSync(out.certFile, pair.cert)
    writeFileSync(out.keyFile, pair.key, { mode: 0o600 })
    return out
  }

  /** The nats-server configuration lines that load this authority and require TLS on the client port (with `tls`: that certificate instead of the shared one). */
  serverConfig(jwtDir: string, tls?: { certFile: string; keyFile: string }): string[] {
    const sys = kp(this.state.system.seed).getPublicKey()
    return [
      `operator: ${JSON.stringify(this.state.operator.jwt)}`,
      `system_account: ${sys}`,
      'resolver: {',
      '  type: full',
      `  dir: ${JSON.stringify(jwtDir)}`,
      '  allow_delete: false',
      '  interval: "2m"',
      '}',
      'resolver_preload: {',
      `  ${sys}: ${JSON.stringify(this.state.system.jwt)}`,
      `  ${publicKeyOf(this.full.account)}: ${JSON.stringify(this.full.account.jwt)}`,
      `  ${publicKeyOf(this.full.clients)}: ${JSON.stringify(this.full.clients.jwt)}`,
      '}',
      'tls {',
      `  cert_file: ${JSON.stringify(tls?.certFile ?? this.paths.certFile)}`,
      `  key_file: ${JSON.stringify(tls?.keyFile ?? this.paths.keyFile)}`,
      '  timeout: 5',
      '}',
    ]
  }

  /** The creds file of the system account's user (written on first use), to push account updates to a running cluster. */
  async systemCredsFile(): Promise<string> {
    const file = join(this.paths.credsDir, 'system-sys.creds')
    if (!existsSync(file)) await writePrivate(file, fmtCreds(this.state.system.userJwt, kp(this.state.system.userSeed)))
    return file
  }

  /** Whether a user key issued at `issuedAt` is revoked by the account as it stands. */
  isRevoked(publicKey: string, issuedAt: number): boolean {
    const at = this.full.account.revocations[publicKey] ?? this.full.clients.revocations[publicKey]
    return at !== undefined && issuedAt <= at
  }

  /**
   * Mints a user for an identity and writes its creds file (mode 0600) under creds/. A client
   * identity expires after `ttlSeconds` (default CLIENT_CREDS_TTL_S); role identities do not.
   */
  async issue(identity: Identity, opts: { ttlSeconds?: number; file?: string; coreDomain?: string } = {}): Promise<{ file: string; publicKey: string; expires?: number }> {
    if (!IDENTITY_RE.test(identity.name)) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `identity name ${JSON.stringify(identity.name)}: use 1-64 of A-Z a-z 0-9 _ -`)
    }
    const userKp = createUser()
    const now = Math.floor(Date.now() / 1000)
    const ttl = opts.ttlSeconds ?? (identity.kind === 'client' ? CLIENT_CREDS_TTL_S : undefined)
    const expires = ttl ? now + ttl : undefined
    const perms = permissionsFor(identity, opts.coreDomain ? { coreDomain: opts.coreDomain } : {})
    const account = this.accountOf(identity.kind)
    const jwt = await encodeUser(identity.name, userKp, publicKeyOf(account), {
      pub: perms.pub, sub: perms.sub,
      ...(identity.kind === 'client' ? CLIENT_USER_LIMITS : {}),
      tags: [kindTag(identity.kind), ...(identity.kind === 'client' ? [CLIENTS_ACCOUNT_TAG] : [])],
    }, { signer: kp(account.signingSeed), ...(expires ? { exp: expires } : {}) })
    const file = opts.file ?? credsFileOf(this.paths.credsDir, identity)
    // Recorded before the file exists, so that no working creds escape `creds revoke`.
    await this.update(async (state) => {
      state.issued.push({ kind: identity.kind, name: identity.name, publicKey: userKp.getPublicKey(), issuedAt: now, ...(expires ? { expires } : {}), account: publicKeyOf(account) })
    })
    await writePrivate(file, fmtCreds(jwt, userKp))
    return { file, publicKey: userKp.getPublicKey(), ...(expires ? { expires } : {}) }
  }

  /**
   * Writes a member's swarm identity file (docs/protocol.md §5): a new Noise key pair, its
   * certificate signed by the fleet key, and the fleet's topic secret. A client's certificate
   * expires with its creds (CLIENT_CREDS_TTL_S by default); a role's never unless `ttlSeconds`.
   */
  async issueSwarmIdentity(identity: Identity, opts: { ttlSeconds?: number; file?: string } = {}): Promise<{ file: string; publicKey: string; expires: number }> {
    if (!IDENTITY_RE.test(identity.name)) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `identity name ${JSON.stringify(identity.name)}: use 1-64 of A-Z a-z 0-9 _ -`)
    }
    const fleet = await this.update(async (state) => {
      state.fleet ??= { seed: createFleetKey().seed.toString('hex'), topicSecret: randomBytes(32).toString('hex') }
      return state.fleet
    })
    const seed = Buffer.from(fleet.seed, 'hex')
    const ttl = opts.ttlSeconds ?? (identity.kind === 'client' ? CLIENT_CREDS_TTL_S : undefined)
    const expires = ttl ? Math.floor(Date.now() / 1000) + ttl : 0
    const id = createSwarmIdentity({ seed, publicKey: fleetPublicKeyOf(seed) }, Buffer.from(fleet.topicSecret, 'hex'), identity.name, expires)
    const file = opts.file ?? join(this.paths.credsDir, `swarm-${identity.kind}-${identity.name}.json`)
    await writeSwarmIdentity(file, id)
    return { file, publicKey: id.keyPair.publicKey.toString('hex'), expires }
  }

  /** The account a user was issued in, by name (`creds ls`). */
  accountNameOf(user: Issued): typeof UPSWARM_ACCOUNT | typeof CLIENTS_ACCOUNT {
    return user.account === publicKeyOf(this.full.clients) ? CLIENTS_ACCOUNT : UPSWARM_ACCOUNT
  }

  /** Every user ever issued (newest last). */
  get issued(): readonly Issued[] {
    return this.state.issued
  }

  /**
   * Revokes every user issued to `name` (of `kind`) up to now: the new JWT of each account they
   * are in lists their keys (a client issued before CLIENTS existed is in UPSWARM). Returns those
   * JWTs, to push to the running cluster (pushAccount in infra/auth/push.ts).
   */
  async revoke(kind: Identity['kind'], name: string): Promise<{ jwts: string[]; revoked: string[] }> {
    return this.update(async (state) => {
      const users = state.issued.filter((i) => i.kind === kind && i.name === name)
      if (users.length === 0) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `no ${kind} named ${name} was ever issued by ${this.paths.file}`)
      const now = Math.floor(Date.now() / 1000) + 1
      const inClients = (u: Issued): boolean => u.account === publicKeyOf(state.clients)
      for (const u of users) (inClients(u) ? state.clients : state.account).revocations[u.publicKey] = now
      const jwts = [
        ...(users.some((u) => !inClients(u)) ? [await signUpswarm(state)] : []),
        ...(users.some(inClients) ? [await signClients(state)] : []),
      ]
      return { jwts, revoked: users.map((u) => u.publicKey) }
    })
  }

  /** Sets the CLIENTS account's limits (what the whole fleet may hold). Returns its new JWT, to push. */
  async setClientLimits(limits: Partial<ClientAccountLimits>): Promise<{ jwt: string; limits: ClientAccountLimits }> {
    return this.update(async (state) => {
      state.clients.limits = { ...state.clients.limits, ...limits }
      return { jwt: await signClients(state), limits: state.clients.limits }
    })
  }
}
