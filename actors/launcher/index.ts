// `upswarm up`: the embedded default on one machine. Starts the NATS cluster, the DHT bootstrap
// and every server-side role, each in its own process, writes endpoints.json once all are
// ready, and stops them all on shutdown. The watchdog in infra/cluster/children.ts kills the
// children if this process dies without cleaning up.
import type { ChildProcess } from 'node:child_process'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { existsSync } from 'node:fs'
import { Authority, authorityPaths, credsFileOf } from '../../infra/auth/authority.ts'
import { emptyTrust, writeTrust } from '../../infra/release/trust.ts'
import { UpswarmError } from '../../infra/errors.ts'
import type { Identity } from '../../infra/nats/identity.ts'
import { spawnGuarded, stopChild } from '../../infra/cluster/children.ts'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { connectNats } from '../../infra/nats/connect.ts'
import { ensureResources } from '../../infra/nats/resources.ts'
import { ensureDeploymentRoot } from '../root-holder/deployment.ts'

import type { Role } from './roles.ts'
export { ALL_ROLES, type Role } from './roles.ts'

export interface UpOptions {
  dir: string
  roles: Role[]
  natsNodes: number
  servers: number
  weights?: number[]
  natsUrls?: string[]
  bootstrap?: string
  httpPort?: number
  /** The proxy's SFTP door (host key kept in DIR/proxy/ssh-host-key); 0 or unset: any free port. */
  sshPort?: number
  trackerHttpPort?: number
  trackerUdpPort?: number
  dhtPort?: number
  /** With `natsUrls` (an existing cluster): the admin creds and CA to use there; default UPSWARM_CREDS / UPSWARM_TLS_CA. */
  creds?: string
  tlsCa?: string
  /** Upload limit of each repository server in bytes/s (`server --max-upload-rate`); unset: the environment's UPSWARM_SERVER_MAX_UPLOAD_RATE, else unlimited. */
  serverMaxUploadRate?: number
  log?: (msg: string) => void
}

/** Creds files of the identities `up` made (issue 10): one per role, and one sample client. */
export interface CredsFiles {
  admin: string
  publisher: string
  proxy: string
  tracker: string
  notary: string
  servers: Record<string, string>
  client: string
}

export interface Endpoints {
  nats?: string[]
  /** PEM of the CA that signed the NATS nodes' certificates (`--tls-ca`). */
  tlsCa?: string
  creds?: CredsFiles
  /** Swarm identity files (private swarms, docs/protocol.md §5): each server's, and the sample client's (`--swarm-identity`). */
  swarmIdentities?: { servers: Record<string, string>; client: string }
  /** Where the identities are kept: `upswarm creds issue|revoke --dir` of this directory. */
  authDir?: string
  /** The trust file servers and the proxy read (issue 10 item 4): `publish --trust` pins a new product's key in it. */
  trust?: string
  /** The deployment's root of trust (issue 10 item 7): root version 1 is made by `up`; `root edit --dir` makes the next. */
  root?: string
  /** The root key that signs D/root.json's next versions, and the notary's fresh key (0600, made once). */
  rootKey?: string
  freshKey?: string
  dhtBootstrap?: string
  http?: string
  /** sftp://host:port: the proxy's read-only SSH view of every release. */
  ssh?: string
  trackerHttp?: string
  trackerUdp?: string
}

export interface Launched {
  endpoints: Endpoints
  endpointsFile: string
  children: Map<string, ChildProcess>
  cluster: NatsCluster | undefined
  stop(): Promise<void>
}

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.mjs')
const READY_TIMEOUT_MS = 60_000

/** Spawns `upswarm <args>` and resolves with its READY payload. */
export async function spawnRole(name: string, args: string[], env: NodeJS.ProcessEnv, log: (m: string) => void): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const child = spawnGuarded(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
  child.stderr?.on('data', (d: Buffer) => log(`[${name}] ${d.toString().trimEnd()}`))
  const lines = createInterface({ input: child.stdout! })
  const ready = await new Promise<Record<string, unknown>>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new UpswarmError('UPSWARM_E_CLUSTER_START', `${name} not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
    lines.on('line', (line) => {
      if (!line.startsWith('READY ')) return log(`[${name}] ${line}`)
      clearTimeout(timer)
      resolvePromise(JSON.parse(line.slice(6)) as Record<string, unknown>)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new UpswarmError('UPSWARM_E_CLUSTER_START', `${name} exited before it was ready (code ${code}, signal ${signal}); see its output above`))
    })
  })
  child.on('exit', (code, signal) => log(`[${name}] exited (code ${code}, signal ${signal})`))
  return { child, ready }
}

export async function up(opts: UpOptions): Promise<Launched> {
  const dir = resolve(opts.dir)
  const log = opts.log ?? (() => {})
  await mkdir(dir, { recursive: true })
  const endpointsFile = join(dir, 'endpoints.json')
  await rm(endpointsFile, { force: true })
  const children = new Map<string, ChildProcess>()
  const endpoints: Endpoints = {}
  let cluster: NatsCluster | undefined

  const stop = async (): Promise<void> => {
    await rm(endpointsFile, { force: true })
    // Clients of NATS first, then the DHT, then the cluster itself.
    await Promise.all([...children.entries()].filter(([n]) => n !== 'dht').map(([, c]) => stopChild(c)))
    const dht = children.get('dht')
    if (dht) await stopChild(dht)
    await cluster?.stop()
  }

  try {
    const has = (r: Role): boolean => opts.roles.includes(r)
    let adminAuth = { creds: opts.creds, tlsCa: opts.tlsCa }
    const roleCreds = new Map<string, string>()
    if (has('nats')) {
      // Issue 10: the embedded cluster has identities and TLS from the start; nothing anonymous.
      const authority = await Authority.open(join(dir, 'auth'))
      cluster = await NatsCluster.start({ dir: join(dir, 'nats'), nodes: opts.natsNodes, authority })
      endpoints.nats = cluster.urls
      endpoints.tlsCa = authority.paths.caFile
      endpoints.authDir = authority.paths.dir
      const issue = async (kind: Identity['kind'], name: string): Promise<string> =>
        (await authority.issue({ kind, name })).file
      const servers: Record<string, string> = {}
      for (let i = 1; i <= opts.servers; i++) servers[`s${i}`] = await issue('server', `s${i}`)
      endpoints.creds = {
        admin: await issue('admin', 'admin'), publisher: await issue('publisher', 'publisher'), proxy: await issue('proxy', 'proxy'),
        tracker: await issue('tracker', 'tracker'), notary: await issue('notary', 'notary'), servers, client: await issue('client', 'sample-client'),
      }
      for (const [id, file] of Object.entries(servers)) roleCreds.set(`server-${id}`, file)
      // Fleet identities (private swarms): every server and the sample client hold a certified Noise key.
      const swarmIdentity = async (kind: 'server' | 'client', name: string): Promise<string> => (await authority.issueSwarmIdentity({ kind, name })).file
      const swarmServers: Record<string, string> = {}
      for (const id of Object.keys(servers)) swarmServers[id] = await swarmIdentity('server', id)
      endpoints.swarmIdentities = { servers: swarmServers, client: await swarmIdentity('client', 'sample-client') }
      roleCreds.set('proxy', endpoints.creds.proxy).set('tracker', endpoints.creds.tracker).set('notary', endpoints.creds.notary)
      adminAuth = { creds: endpoints.creds.admin, tlsCa: authority.paths.caFile }
      log(`nats: ${cluster.nodes.length} nodes with JetStream at ${cluster.urls.join(', ')} (TLS, credentials in ${authority.paths.credsDir})`)
    } else if (opts.natsUrls?.length) {
      endpoints.nats = opts.natsUrls
    }
    const natsArg = endpoints.nats?.join(',')
    const needsNats = has('servers') || has('proxy') || has('tracker') || has('notary')
    if (needsNats && !natsArg) {
      throw new UpswarmError('UPSWARM_E_CONFIG', 'roles servers/proxy/tracker/notary need NATS: include the nats role or pass --nats URLS')
    }
    if (natsArg) {
      const nc = await connectNats(natsArg, 'upswarm-up', adminAuth)
      try {
        await ensureResources(nc)
        // Issue 10 item 7: the deployment's root of trust, made once, on the stream from the start.
        const root = await ensureDeploymentRoot(dir, nc)
        Object.assign(endpoints, { root: root.rootFile, rootKey: root.rootKeyFile, freshKey: root.freshKeyFile })
        log(`root: version ${root.version} in ${root.rootFile}${root.pushed ? ', pushed to UPSWARM_META' : ''}`)
      } finally {
        await nc.close()
      }
    }
    const env: NodeJS.ProcessEnv = {
      ...process.env, ...(natsArg ? { UPSWARM_NATS: natsArg } : {}), ...(adminAuth.tlsCa ? { UPSWARM_TLS_CA: adminAuth.tlsCa } : {}),
    }
    // No trust on first use: servers and the proxy believe only the keys this file pins; a
    // publish with `--trust` pins a new product's key into it (the embedded default).
    endpoints.trust = join(dir, 'trust.json')
    if (!existsSync(endpoints.trust)) await writeTrust(endpoints.trust, emptyTrust())
    // Each role runs with its own identity, never the admin's nor the caller's: on a cluster `up`
    // did not make, each role's creds file must be in D/auth/creds/ (`upswarm creds issue --role`).
    delete env.UPSWARM_CREDS
    const credsArgs = (role: string): string[] => {
      const [kind, name] = role.startsWith('server-') ? ['server', role.slice('server-'.length)] : [role, role]
      const file = roleCreds.get(role) ?? credsFileOf(authorityPaths(join(dir, 'auth')).credsDir, { kind: kind as Identity['kind'], name })
      if (!roleCreds.has(role) && !existsSync(file)) {
        throw new UpswarmError('UPSWARM_E_CONFIG', `${role} needs its own identity on this cluster: ${file} is missing (upswarm creds issue --dir ${dir} --role ${kind} --name ${name})`)
      }
      return ['--creds', file]
    }

    if (has('dht')) {
      const { child, ready } = await spawnRole('dht', ['dht', ...(opts.dhtPort ? ['--port', String(opts.dhtPort)] : [])], env, log)
      children.set('dht', child)
      endpoints.dhtBootstrap = String(ready.dhtBootstrap)
      log(`dht: bootstrap ${endpoints.dhtBootstrap}`)
    }
    const bootstrap = endpoints.dhtBootstrap ?? opts.bootstrap
    const roleEnv = { ...env, ...(bootstrap ? { UPSWARM_BOOTSTRAP: bootstrap } : {}) }

    const starts: Promise<void>[] = []
    if (has('servers')) {
      for (let i = 1; i <= opts.servers; i++) {
        const id = `s${i}`
        const weight = opts.weights?.[i - 1] ?? 1
        const args = ['server', '--id', id, '--data', join(dir, 'servers', id), '--weight', String(weight), '--trust', endpoints.trust, ...credsArgs(`server-${id}`)]
        if (opts.serverMaxUploadRate !== undefined) args.push('--max-upload-rate', String(opts.serverMaxUploadRate))
        const swarmIdentity = endpoints.swarmIdentities?.servers[id]
        if (swarmIdentity) args.push('--swarm-identity', swarmIdentity)
        starts.push(spawnRole(`server ${id}`, args, roleEnv, log)
          .then(({ child }) => {
            children.set(`server-${id}`, child)
            log(`server ${id}: weight ${weight}`)
          }))
      }
    }
    if (has('proxy')) {
      const args = ['proxy', '--http-port', String(opts.httpPort ?? 0), '--ssh-port', String(opts.sshPort ?? 0), '--ssh-host-key', join(dir, 'proxy', 'ssh-host-key'), '--trust', endpoints.trust, ...credsArgs('proxy')]
      starts.push(spawnRole('proxy', args, roleEnv, log).then(({ child, ready }) => {
        children.set('proxy', child)
        endpoints.http = String(ready.http)
        endpoints.ssh = String(ready.ssh)
        log(`proxy: gateway ${endpoints.http}, ${endpoints.ssh}`)
      }))
    }
    if (has('tracker')) {
      const args = ['tracker', '--http-port', String(opts.trackerHttpPort ?? 0), '--udp-port', String(opts.trackerUdpPort ?? 0), ...credsArgs('tracker')]
      starts.push(spawnRole('tracker', args, roleEnv, log).then(({ child, ready }) => {
        children.set('tracker', child)
        endpoints.trackerHttp = String(ready.trackerHttp)
        endpoints.trackerUdp = String(ready.trackerUdp)
        log(`tracker: ${endpoints.trackerHttp} ${endpoints.trackerUdp}`)
      }))
    }
    if (has('notary') && endpoints.root && endpoints.freshKey) {
      const args = ['notary', '--fresh-key', endpoints.freshKey, '--root', endpoints.root, '--data', join(dir, 'notary'), ...credsArgs('notary')]
      starts.push(spawnRole('notary', args, roleEnv, log).then(({ child, ready }) => {
        children.set('notary', child)
        log(`notary: root version ${String(ready.root)}`)
      }))
    }
    const results = await Promise.allSettled(starts)
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  } catch (err) {
    await stop()
    throw err
  }

  // Written atomically and only now: its presence means everything is ready.
  await writeFile(`${endpointsFile}.tmp`, `${JSON.stringify(endpoints, null, 2)}\n`)
  await rename(`${endpointsFile}.tmp`, endpointsFile)
  return { endpoints, endpointsFile, children, cluster, stop }
}

/** The environment of an `upswarm` command run against these endpoints with the given creds (default: the sample client's). */
export function deploymentEnv(endpoints: Endpoints, creds = endpoints.creds?.client): Record<string, string> {
  return {
    ...(endpoints.nats ? { UPSWARM_NATS: endpoints.nats.join(',') } : {}),
    ...(endpoints.tlsCa ? { UPSWARM_TLS_CA: endpoints.tlsCa } : {}),
    ...(creds ? { UPSWARM_CREDS: creds } : {}),
    ...(endpoints.trust ? { UPSWARM_TRUST: endpoints.trust } : {}),
    ...(creds && creds === endpoints.creds?.client && endpoints.swarmIdentities ? { UPSWARM_SWARM_IDENTITY: endpoints.swarmIdentities.client } : {}),
  }
}

/** Mints a client machine's own identity in this deployment (what `upswarm creds issue --client NAME` does). */
export async function issueClientCreds(endpoints: Endpoints, name: string): Promise<string | undefined> {
  if (!endpoints.authDir) return undefined
  const authority = await Authority.load(endpoints.authDir)
  return (await authority.issue({ kind: 'client', name })).file
}
