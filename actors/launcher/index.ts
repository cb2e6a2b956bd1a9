// `upswarm up`: the embedded default on one machine. Starts the NATS cluster, the DHT bootstrap
// and every server-side role, each in its own process, writes endpoints.json once all are
// ready, and stops them all on shutdown. The watchdog in infra/cluster/children.ts kills the
// children if this process dies without cleaning up. The sequence, its ready timeout and the
// stop are the statechart machines/launcher.machine.ts.
import type { ChildProcess } from 'node:child_process'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
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
import { ensureSiteMirrors } from '../../infra/nats/site-mirrors.ts'
import { ensureDeploymentRoot } from '../../infra/formats/deployment-root.ts'
import { createActor, fromPromise, waitFor, type ActorOptions, type AnyActorLogic } from 'xstate'
import { launcherMachine, READY_TIMEOUT_MS, type LauncherFailure } from '../../machines/launcher.machine.ts'

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
  /** The fleet console's port on 127.0.0.1 (issue 16 item 4); 0 or unset: any free port. */
  consolePort?: number
  /** With `natsUrls` (an existing cluster): the admin creds and CA to use there; default UPSWARM_CREDS / UPSWARM_TLS_CA. */
  creds?: string
  tlsCa?: string
  /** Upload limit of each repository server in bytes/s (`server --max-upload-rate`); unset: the environment's UPSWARM_SERVER_MAX_UPLOAD_RATE, else unlimited. */
  serverMaxUploadRate?: number
  /** An XState inspection observer for the launcher's actor (live inspection, issue 12). */
  inspect?: ActorOptions<AnyActorLogic>['inspect']
  log?: (msg: string) => void
  /**
   * Issue 17 item 1, one role set per host: the address every listener binds (NATS client, route
   * and monitoring ports, servers' swarm listeners, the proxy's doors, the tracker, the DHT node).
   * Default 127.0.0.1.
   */
  listen?: string
  /** The address clients and other hosts reach this host at (default `listen`; required with 0.0.0.0). */
  advertise?: string
  /** Other hosts' NATS route URLs (nats-route://ADDR:6222): the nodes here join their cluster. */
  routes?: string[]
  /** Fixed first ports of the NATS nodes here (other hosts route to `cluster`); unset: free ports. */
  natsPorts?: { client?: number; cluster?: number; monitor?: number }
  /** This host's name: prefixes its NATS node names and server ids (unique across the cluster). */
  name?: string
  /** JetStream peers across all hosts to wait for before the resources are made (default: the nodes here). */
  clusterSize?: number
  /** Issue 17 item 2: this NATS's JetStream domain (the core's, or a site's own). */
  domain?: string
  /** The core: where sites' leaf nodes connect (node i on port + i). */
  leafListen?: { host: string; port: number }
  /** A site: the core's leaf URLs (tls://ADDR:PORT); the NATS here is a leaf node with mirrors of the core's streams. */
  leafRemotes?: string[]
  /** A site: the core's JetStream domain, where the mirrors source from. */
  coreDomain?: string
  /** The trust file servers and the proxy read (default D/trust.json, made empty when missing). */
  trust?: string
  /** The deployment's identities made elsewhere (a copy of the first host's D/auth); default D/auth, made when missing. */
  authDir?: string
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
  /** Issue 17 item 5: what `up` found wrong with the addresses it was given (also logged). */
  warnings?: string[]
  nats?: string[]
  /** PEM of the CA that signed the NATS nodes' certificates (`--tls-ca`). */
  tlsCa?: string
  creds?: CredsFiles
  /** Swarm identity files (private swarms, docs/protocol.md §5): each server's, and the sample client's (`--swarm-identity`). */
  swarmIdentities?: { servers: Record<string, string>; client: string }
  /** Where the identities are kept: `upswarm creds issue|revoke --dir` of this directory. */
  authDir?: string
  /** Issue 17 item 2: this NATS's JetStream domain (the core's, or a site's own). */
  domain?: string
  /** The core: where sites' leaf nodes connect (node i on port + i). */
  leafListen?: { host: string; port: number }
  /** A site: the core's leaf URLs (tls://ADDR:PORT); the NATS here is a leaf node with mirrors of the core's streams. */
  leafRemotes?: string[]
  /** A site: the core's JetStream domain, where the mirrors source from. */
  coreDomain?: string
  /** The trust file servers and the proxy read (issue 10 item 4): `publish --trust` pins a new product's key in it. */
  trust?: string
  /** The deployment's root of trust (issue 10 item 7): root version 1 is made by `up`; `root edit --dir` makes the next. */
  root?: string
  /** The root key that signs D/root.json's next versions, and the notary's fresh key (0600, made once). */
  rootKey?: string
  freshKey?: string
  /** The notary's halt key (issue 16 item 2): it halts a release that fails on enough clients of a product whose root names it. */
  haltKey?: string
  /** Issue 16 item 4: the console's rollout key; `root edit --dir D --add-product` names it (with the publish key) as the product's rollout role. */
  rolloutKey?: string
  /** Issue 16 item 4: the fleet console on 127.0.0.1 and the file holding this run's token (0600): open URL?token=TOKEN. */
  console?: { url: string; tokenFile: string }
  /** The inspection page (`upswarm inspect`'s, served by the console's process): every actor of the processes started with --inspect. */
  inspect?: string
  dhtBootstrap?: string
  http?: string
  /** sftp://host:port: the proxy's read-only SSH view of every release. */
  ssh?: string
  trackerHttp?: string
  trackerUdp?: string
  /** Issue 16 item 5: each role's Prometheus metrics, http://127.0.0.1:PORT/metrics (docs/ops.md, "Metrics"). */
  metrics?: { proxy?: string; tracker?: string; notary?: string; servers?: Record<string, string> }
}

export interface Launched {
  endpoints: Endpoints
  endpointsFile: string
  children: Map<string, ChildProcess>
  cluster: NatsCluster | undefined
  stop(): Promise<void>
}

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

/**
 * Spawns `upswarm <args>` and resolves with its READY payload; `signal` (the launcher machine
 * leaving the step: its ready timeout, a stop) kills the process and rejects.
 */
export async function spawnRole(name: string, args: string[], env: NodeJS.ProcessEnv, log: (m: string) => void, signal?: AbortSignal): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const child = spawnGuarded(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
  child.stderr?.on('data', (d: Buffer) => log(`[${name}] ${d.toString().trimEnd()}`))
  const lines = createInterface({ input: child.stdout! })
  const ready = await new Promise<Record<string, unknown>>((resolvePromise, reject) => {
    const abort = (): void => {
      void stopChild(child)
      reject(new UpswarmError('UPSWARM_E_CLUSTER_START', `${name} was stopped before it was ready`))
    }
    if (signal?.aborted) return abort()
    signal?.addEventListener('abort', abort, { once: true })
    lines.on('line', (line) => {
      if (!line.startsWith('READY ')) return log(`[${name}] ${line}`)
      signal?.removeEventListener('abort', abort)
      resolvePromise(JSON.parse(line.slice(6)) as Record<string, unknown>)
    })
    child.once('exit', (code, signalName) => {
      signal?.removeEventListener('abort', abort)
      reject(new UpswarmError('UPSWARM_E_CLUSTER_START', `${name} exited before it was ready (code ${code}, signal ${signalName}); see its output above`))
    })
  })
  child.on('exit', (code, signalName) => log(`[${name}] exited (code ${code}, signal ${signalName})`))
  return { child, ready }
}

/** Starts the deployment as an actor over machines/launcher.machine.ts; resolves once it is up. */
export async function up(opts: UpOptions): Promise<Launched> {
  const dir = resolve(opts.dir)
  const log = opts.log ?? (() => {})
  await mkdir(dir, { recursive: true })
  const endpointsFile = join(dir, 'endpoints.json')
  await rm(endpointsFile, { force: true })
  const has = (r: Role): boolean => opts.roles.includes(r)
  /** Server ids: s1, s2, … (with a host name, NAME-s1, …: unique across hosts). */
  const serverId = (i: number): string => (opts.name ? `${opts.name}-s${i}` : `s${i}`)
  const listen = opts.listen
  const advertise = opts.advertise ?? opts.listen
  /** A URL a role reported with the address it bound, as clients reach it (issue 17 item 1). */
  const advertised = (url: string): string => {
    if (!advertise || !listen || advertise === listen) return url
    const u = new URL(url)
    u.hostname = advertise.includes(':') ? `[${advertise}]` : advertise
    return u.toString().replace(/\/$/, '')
  }
  const needsNats = has('servers') || has('proxy') || has('tracker') || has('notary') || has('console')
  if (needsNats && !has('nats') && !opts.natsUrls?.length) {
    throw new UpswarmError('UPSWARM_E_CONFIG', 'roles servers/proxy/tracker/notary/console need NATS: include the nats role or pass --nats URLS')
  }
  const children = new Map<string, ChildProcess>()
  const endpoints: Endpoints = { ...(opts.natsUrls?.length && !has('nats') ? { nats: opts.natsUrls } : {}) }
  /** What the steps made: the cluster, the admin's auth, each role's creds, the roles' environment; and the role processes not ready yet. */
  const made = {
    cluster: undefined as NatsCluster | undefined,
    adminAuth: { creds: opts.creds, tlsCa: opts.tlsCa } as { creds?: string | undefined; tlsCa?: string | undefined },
    roleCreds: new Map<string, string>(),
    env: {} as NodeJS.ProcessEnv,
    pending: new Set<string>(),
  }
  // Each role runs with its own identity, never the admin's nor the caller's: on a cluster `up`
  // did not make, each role's creds file must be in D/auth/creds/ (`upswarm creds issue --role`).
  const credsArgs = (role: string): string[] => {
    // The console reads the whole fleet and appends rollout statements: an admin identity of its own (issue 16 item 4).
    const [kind, name] = role.startsWith('server-') ? ['server', role.slice('server-'.length)] : role === 'console' ? ['admin', 'console'] : [role, role]
    // With --auth (issue 17), the deployment's identities are in that directory, not D/auth.
    const authDir = opts.authDir ? resolve(opts.authDir) : join(dir, 'auth')
    const file = made.roleCreds.get(role) ?? credsFileOf(authorityPaths(authDir).credsDir, { kind: kind as Identity['kind'], name })
    if (!made.roleCreds.has(role) && !existsSync(file)) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `${role} needs its own identity on this cluster: ${file} is missing (upswarm creds issue --dir ${dirname(authDir)} --role ${kind} --name ${name})`)
    }
    return ['--creds', file]
  }
  const spawn = async (key: string, name: string, args: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<Record<string, unknown>> => {
    made.pending.add(name)
    try {
      const { child, ready } = await spawnRole(name, args, env, log, signal)
      children.set(key, child)
      return ready
    } finally {
      made.pending.delete(name)
    }
  }

  const machine = launcherMachine.provide({
    actors: {
      startNats: fromPromise(async () => {
        // Issue 10: the embedded cluster has identities and TLS from the start; nothing anonymous.
        const authority = opts.authDir ? await Authority.load(resolve(opts.authDir)) : await Authority.open(join(dir, 'auth'))
        // A site's link carries the UPSWARM account under a leaf identity named for the site's
        // domain: its mirrors and the core's sources of it, nothing else (infra/auth/permissions.ts).
        // Its heartbeats and proxy requests stay on their side, so each side's proxy assigns its
        // own servers (issue 17 item 2).
        const leafRemotes = opts.leafRemotes?.length ? [{
          urls: opts.leafRemotes, account: authority.accountPublicKeys.upswarm, caFile: authority.paths.caFile,
          credentials: (await authority.issue({ kind: 'leaf', name: opts.domain ?? opts.name ?? 'site' }, opts.coreDomain ? { coreDomain: opts.coreDomain } : {})).file,
          deny: ['upswarm.heartbeat.>', 'upswarm.proxy.>'],
        }] : undefined
        const cluster = await NatsCluster.start({
          ...(opts.domain ? { domain: opts.domain } : {}), ...(opts.leafListen ? { leafListen: opts.leafListen } : {}),
          ...(leafRemotes ? { leafRemotes } : {}),
          dir: join(dir, 'nats'), nodes: opts.natsNodes, authority,
          ...(opts.listen ? { host: opts.listen } : {}), ...(opts.advertise ? { advertise: opts.advertise } : {}),
          ...(opts.routes?.length ? { routes: opts.routes } : {}), ...(opts.natsPorts ? { ports: opts.natsPorts } : {}),
          ...(opts.name ? { namePrefix: opts.name } : {}), ...(opts.clusterSize ? { expectPeers: opts.clusterSize } : {}),
          onWait: (line) => log(`nats: ${line}`),
        })
        made.cluster = cluster
        // Issue 17 item 5: an advertised address that does not reach this host's nodes is said, not discovered by clients.
        if (opts.advertise || opts.listen) {
          const wrong = await cluster.checkAdvertised()
          for (const line of wrong) log(`nats: WARNING ${line}`)
          if (wrong.length) endpoints.warnings = [...(endpoints.warnings ?? []), ...wrong]
        }
        endpoints.nats = cluster.urls
        endpoints.tlsCa = authority.paths.caFile
        endpoints.authDir = authority.paths.dir
        const issue = async (kind: Identity['kind'], name: string): Promise<string> =>
          (await authority.issue({ kind, name })).file
        const servers: Record<string, string> = {}
        for (let i = 1; i <= opts.servers; i++) servers[serverId(i)] = await issue('server', serverId(i))
        endpoints.creds = {
          admin: await issue('admin', 'admin'), publisher: await issue('publisher', 'publisher'), proxy: await issue('proxy', 'proxy'),
          tracker: await issue('tracker', 'tracker'), notary: await issue('notary', 'notary'), servers, client: await issue('client', 'sample-client'),
        }
        for (const [id, file] of Object.entries(servers)) made.roleCreds.set(`server-${id}`, file)
        // Fleet identities (private swarms): every server and the sample client hold a certified Noise key.
        const swarmIdentity = async (kind: 'server' | 'client', name: string): Promise<string> => (await authority.issueSwarmIdentity({ kind, name })).file
        const swarmServers: Record<string, string> = {}
        for (const id of Object.keys(servers)) swarmServers[id] = await swarmIdentity('server', id)
        endpoints.swarmIdentities = { servers: swarmServers, client: await swarmIdentity('client', 'sample-client') }
        made.roleCreds.set('proxy', endpoints.creds.proxy).set('tracker', endpoints.creds.tracker).set('notary', endpoints.creds.notary)
        if (has('console')) made.roleCreds.set('console', await issue('admin', 'console'))
        made.adminAuth = { creds: endpoints.creds.admin, tlsCa: authority.paths.caFile }
        if (cluster.restarted.length) log(`nats: restarted ${cluster.restarted.join(', ')}: not in the JetStream meta group after start (a known nats-server start-up race)`)
        log(`nats: ${cluster.nodes.length} nodes with JetStream at ${cluster.urls.join(', ')} (TLS, credentials in ${authority.paths.credsDir})`)
      }),
      prepare: fromPromise(async () => {
        const natsArg = endpoints.nats?.join(',')
        if (natsArg) {
          const nc = await connectNats(natsArg, 'upswarm-up', made.adminAuth)
          try {
            if (opts.coreDomain) {
              // A site: mirrors of the core's streams in its own domain, nothing of record made here.
              const mirrors = await ensureSiteMirrors(nc, opts.coreDomain)
              log(`site: mirrors ${mirrors.join(', ')} of domain ${opts.coreDomain}; at the core, \`upswarm site add ${opts.domain ?? '<this site\'s --js-domain>'}\` sources this site's alerts and fleet reports`)
            } else await ensureResources(nc)
            // Issue 10 item 7: the deployment's root of trust, made once, on the stream from the start.
            // Issue 17: a host that joins with the first host's identities (--auth) makes none
            // unless it runs the notary: the root is the first host's, not one per host.
            if (!opts.coreDomain && (!opts.authDir || has('notary'))) {
              const root = await ensureDeploymentRoot(dir, nc)
              Object.assign(endpoints, { root: root.rootFile, rootKey: root.rootKeyFile, freshKey: root.freshKeyFile, haltKey: root.haltKeyFile, rolloutKey: root.rolloutKeyFile })
              log(`root: version ${root.version} in ${root.rootFile}${root.pushed ? ', pushed to UPSWARM_META' : ''}`)
            }
          } finally {
            await nc.close()
          }
        }
        made.env = {
          ...process.env, ...(natsArg ? { UPSWARM_NATS: natsArg } : {}), ...(made.adminAuth.tlsCa ? { UPSWARM_TLS_CA: made.adminAuth.tlsCa } : {}),
        }
        delete made.env.UPSWARM_CREDS
        // No trust on first use: servers and the proxy believe only the keys this file pins; a
        // publish with `--trust` pins a new product's key into it (the embedded default).
        endpoints.trust = opts.trust ? resolve(opts.trust) : join(dir, 'trust.json')
        if (!existsSync(endpoints.trust)) await writeTrust(endpoints.trust, emptyTrust())
      }),
      startDht: fromPromise(async ({ signal }) => {
        const ready = await spawn('dht', 'dht', ['dht', ...(opts.dhtPort ? ['--port', String(opts.dhtPort)] : []), ...(listen ? ['--host', listen] : [])], made.env, signal)
        endpoints.dhtBootstrap = String(ready.dhtBootstrap)
        log(`dht: bootstrap ${endpoints.dhtBootstrap}`)
      }),
      startRoles: fromPromise(async ({ signal }) => {
        const bootstrap = endpoints.dhtBootstrap ?? opts.bootstrap
        const roleEnv = { ...made.env, ...(bootstrap ? { UPSWARM_BOOTSTRAP: bootstrap } : {}) }
        const trust = endpoints.trust!
        const starts: Promise<void>[] = []
        // Issue 16 item 5: each role listens for scrapes on a free port of 127.0.0.1 and says where.
        const metrics: NonNullable<Endpoints['metrics']> = {}
        endpoints.metrics = metrics
        if (has('servers')) {
          for (let i = 1; i <= opts.servers; i++) {
            const id = serverId(i)
            const weight = opts.weights?.[i - 1] ?? 1
            const args = ['server', '--id', id, '--data', join(dir, 'servers', id), '--weight', String(weight), '--trust', trust, '--metrics-port', '0', ...credsArgs(`server-${id}`)]
            if (listen) args.push('--swarm-host', listen)
            if (advertise && advertise !== listen) args.push('--swarm-advertise', advertise)
            if (opts.serverMaxUploadRate !== undefined) args.push('--max-upload-rate', String(opts.serverMaxUploadRate))
            const swarmIdentity = endpoints.swarmIdentities?.servers[id]
            if (swarmIdentity) args.push('--swarm-identity', swarmIdentity)
            starts.push(spawn(`server-${id}`, `server ${id}`, args, roleEnv, signal).then((ready) => {
              metrics.servers = { ...metrics.servers, [id]: String(ready.metrics) }
              log(`server ${id}: weight ${weight}`)
            }))
          }
        }
        if (has('proxy')) {
          const args = ['proxy', '--http-port', String(opts.httpPort ?? 0), '--ssh-port', String(opts.sshPort ?? 0), '--ssh-host-key', join(dir, 'proxy', 'ssh-host-key'), '--trust', trust, '--metrics-port', '0', ...credsArgs('proxy'), ...(listen ? ['--host', listen] : [])]
          starts.push(spawn('proxy', 'proxy', args, roleEnv, signal).then((ready) => {
            metrics.proxy = String(ready.metrics)
            endpoints.http = advertised(String(ready.http))
            endpoints.ssh = advertised(String(ready.ssh))
            log(`proxy: gateway ${endpoints.http}, ${endpoints.ssh}`)
          }))
        }
        if (has('tracker')) {
          const args = ['tracker', '--http-port', String(opts.trackerHttpPort ?? 0), '--udp-port', String(opts.trackerUdpPort ?? 0), '--metrics-port', '0', ...credsArgs('tracker'), ...(listen ? ['--host', listen] : [])]
          starts.push(spawn('tracker', 'tracker', args, roleEnv, signal).then((ready) => {
            metrics.tracker = String(ready.metrics)
            endpoints.trackerHttp = advertised(String(ready.trackerHttp))
            endpoints.trackerUdp = advertised(String(ready.trackerUdp))
            log(`tracker: ${endpoints.trackerHttp} ${endpoints.trackerUdp}`)
          }))
        }
        if (has('notary') && endpoints.root && endpoints.freshKey) {
          const args = ['notary', '--fresh-key', endpoints.freshKey, '--root', endpoints.root, '--data', join(dir, 'notary'),
            ...(endpoints.haltKey ? ['--halt-key', endpoints.haltKey] : []), '--metrics-port', '0', ...credsArgs('notary')]
          starts.push(spawn('notary', 'notary', args, roleEnv, signal).then((ready) => {
            metrics.notary = String(ready.metrics)
            log(`notary: root version ${String(ready.root)}`)
          }))
        }
        if (has('console')) {
          // Issue 16 item 4: on 127.0.0.1 whatever --listen says; its controls sign with D's rollout key.
          const tokenFile = join(opts.authDir ? resolve(opts.authDir) : join(dir, 'auth'), 'console-token')
          // It serves the inspection page too (`upswarm inspect`'s), and links to it.
          const args = ['console', '--port', String(opts.consolePort ?? 0), '--token-file', tokenFile, '--inspect-port', '0',
            ...(endpoints.rolloutKey ? ['--rollout-key', endpoints.rolloutKey] : []), ...credsArgs('console')]
          starts.push(spawn('console', 'console', args, roleEnv, signal).then((ready) => {
            endpoints.console = { url: String(ready.origin), tokenFile }
            if (ready.inspect) endpoints.inspect = String(ready.inspect)
            log(`console: ${String(ready.url)}`)
          }))
        }
        const results = await Promise.allSettled(starts)
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
        if (failed) throw failed.reason
      }),
      // Written atomically and only now: its presence means everything is ready.
      writeEndpoints: fromPromise(async () => {
        await writeFile(`${endpointsFile}.tmp`, `${JSON.stringify(endpoints, null, 2)}\n`)
        await rename(`${endpointsFile}.tmp`, endpointsFile)
      }),
      stopAll: fromPromise(async () => {
        await rm(endpointsFile, { force: true })
        // Clients of NATS first, then the DHT, then the cluster itself.
        await Promise.all([...children.entries()].filter(([n]) => n !== 'dht').map(([, c]) => stopChild(c)))
        const dht = children.get('dht')
        if (dht) await stopChild(dht)
        await made.cluster?.stop()
      }),
    },
  })
  // The processes not ready when the step timed out, named (the machine knows only the step).
  let late: string[] = []
  const actor = createActor(machine, { input: { nats: has('nats'), dht: has('dht') }, ...(opts.inspect ? { inspect: opts.inspect } : {}) })
  actor.subscribe((s) => {
    if (s.matches('stopping') && late.length === 0) late = [...made.pending]
  })
  actor.start()
  const snapshot = await waitFor(actor, (s) => s.matches('up') || s.status === 'done', { timeout: Infinity })
  if (snapshot.status === 'done') throw launchError(snapshot.context.failure!, late)
  return {
    endpoints,
    endpointsFile,
    children,
    cluster: made.cluster,
    stop: async () => {
      actor.send({ type: 'stop' })
      await waitFor(actor, (s) => s.status === 'done', { timeout: Infinity })
    },
  }
}

/** The failed step's error as it was thrown, or, for a ready timeout, one naming the processes that were late. */
function launchError(f: LauncherFailure, late: string[]): UpswarmError {
  if (f.cause instanceof UpswarmError) return f.cause
  if (f.cause === undefined) {
    return new UpswarmError('UPSWARM_E_CLUSTER_START', late.length ? `${late.join(', ')} not ready after ${READY_TIMEOUT_MS} ms; see its output above` : f.message)
  }
  return new UpswarmError('UPSWARM_E_CLUSTER_START', `up: ${f.step} failed: ${f.message}`, { cause: f.cause })
}

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
