// The embedded default: an N-node nats-server cluster with JetStream on 127.0.0.1.
// Config files and data live under the given directory; ports are chosen free unless given.
// Issue 17 item 1: the same nodes on a host of a cluster across hosts: bound to a given address,
// advertising the one clients and other hosts reach, routing to other hosts' nodes as well.
import { createWriteStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import type { Authority } from '../auth/authority.ts'
import { UpswarmError } from '../errors.ts'
import { spawnGuarded, stopChild } from './children.ts'
import { natsServerBinary } from './nats-server-bin.ts'
import { freePorts } from './ports.ts'
import { advertisedMismatch, unreachableRoutes } from './reach.ts'

const CLUSTER_NAME = 'upswarm'
const READY_TIMEOUT_MS = 30_000
/** How long `up --cluster-size N` waits for the JetStream peers of other hosts. */
const PEERS_TIMEOUT_MS = 180_000
/** How often a host waiting for other hosts' peers says what it waits for. */
const PROGRESS_EVERY_MS = 10_000
/** How long a starting node may stay outside the JetStream meta group before it is restarted. */
const HEAL_AFTER_MS = 8_000

export interface NatsNodeOptions {
  name: string
  port: number
  clusterPort: number
  monitorPort: number
  /** Address the listeners bind (default 127.0.0.1). */
  host?: string
  /** Address clients and other hosts' nodes reach this node at (default: `host`). */
  advertise?: string
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]'])

/** An address as it goes into a URL (IPv6 in brackets). */
const urlHost = (h: string): string => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h)

export class NatsNode {
  readonly name: string
  readonly port: number
  readonly clusterPort: number
  readonly monitorPort: number
  readonly configFile: string
  readonly logFile: string
  /** What clients dial: the advertised address, else the bound one. */
  readonly advertise: string
  /** Where this process reads the node's monitoring endpoint: the bound address (loopback for a wildcard). */
  readonly monitorHost: string
  private child: ChildProcess | undefined

  constructor(opts: NatsNodeOptions, configFile: string, logFile: string) {
    this.name = opts.name
    const host = opts.host ?? '127.0.0.1'
    this.advertise = opts.advertise ?? host
    this.monitorHost = WILDCARD.has(host) ? '127.0.0.1' : host
    this.port = opts.port
    this.clusterPort = opts.clusterPort
    this.monitorPort = opts.monitorPort
    this.configFile = configFile
    this.logFile = logFile
  }

  get url(): string {
    return `nats://${urlHost(this.advertise)}:${this.port}`
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null
  }

  /** Starts the process and resolves once it accepts client connections. */
  async start(): Promise<void> {
    const bin = natsServerBinary()
    const child = spawnGuarded(bin.path, ['-c', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.child = child
    // The whole log on disk too (logFile): what another process reads while this one waits.
    const file = createWriteStream(this.logFile, { flags: 'a' })
    // Ended with stderr itself (its last output may arrive after the process exited); a log that
    // cannot be written is not a reason to stop the node.
    file.on('error', () => {})
    child.stderr?.once('close', () => file.end())
    let log = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.startError(`not ready after ${READY_TIMEOUT_MS} ms`, log)), READY_TIMEOUT_MS)
      child.stderr?.on('data', (chunk: Buffer) => {
        file.write(chunk)
        if (log.length < 64_000) log += chunk.toString()
        if (log.includes('Server is ready')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(this.startError(`exited early (code ${code}, signal ${signal})`, log))
      })
      child.once('error', (err) => {
        clearTimeout(timer)
        reject(this.startError(err.message, log))
      })
    })
    // Keep the tail of the log for diagnostics.
    this.log = log
    child.stderr?.removeAllListeners('data')
    child.stderr?.on('data', (chunk: Buffer) => {
      file.write(chunk)
      this.log = (this.log + chunk.toString()).slice(-16_000)
    })
  }

  /** The tail of this node's log (stderr). */
  log = ''

  private startError(what: string, log: string): UpswarmError {
    return new UpswarmError('UPSWARM_E_CLUSTER_START',
      `nats-server ${this.name} (config ${this.configFile}) ${what}. Last output:\n${log.slice(-2000)}`)
  }

  /** A JSON endpoint of the node's monitoring port (`jsz`, `routez`, …). */
  async monitor<T>(endpoint: string): Promise<T> {
    return (await fetch(`http://${urlHost(this.monitorHost)}:${this.monitorPort}/${endpoint}`)).json() as Promise<T>
  }

  /** Sends a signal (SIGKILL simulates a crash) and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    if (!child || !this.running) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill(signal)
    await exited
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child)
  }
}

export interface NatsClusterOptions {
  dir: string
  nodes?: number
  /** First client port; consecutive ports are used. Free ports are chosen when absent. */
  basePort?: number
  /** Identities and TLS (issue 10): without it the cluster is anonymous and in clear (development only). */
  authority?: Authority
  /** Issue 17 item 1: the address every listener binds (default 127.0.0.1). */
  host?: string
  /** The address clients and other hosts reach (default `host`; required when `host` is 0.0.0.0 or ::). */
  advertise?: string
  /** Route URLs of other hosts' nodes (nats-route://ADDR:PORT): one cluster across hosts. */
  routes?: string[]
  /** Fixed first ports (node i uses port + i - 1); unset: free ports. Other hosts route to `cluster`. */
  ports?: { client?: number; cluster?: number; monitor?: number }
  /** Prefix of the node names (server_name must be unique across the whole cluster): NAME-n1, … */
  namePrefix?: string
  /** JetStream peers the meta group must have before the cluster is ready (default: the nodes started here). */
  expectPeers?: number
  /** Issue 17 item 2: this cluster's JetStream domain (the core's, or a site's own). */
  domain?: string
  /** The core: where leaf nodes of sites connect (TLS with this host's certificate). */
  leafListen?: { host: string; port: number }
  /** A site: the core's leaf node URLs this node connects to, bound to a local account each. */
  leafRemotes?: LeafRemote[]
  /** Issue 17 item 5: told, every PROGRESS_EVERY_MS while waiting for other hosts' peers, what is missing and which routes do not answer. */
  onWait?: (line: string) => void
  /** How long to wait for other hosts' JetStream peers (default PEERS_TIMEOUT_MS). */
  peersTimeoutMs?: number
}

export interface LeafRemote {
  /** tls://ADDR:PORT of core nodes' leaf listeners. */
  urls: string[]
  /** Creds of a core identity of the account. */
  credentials: string
  /** The local account (public key) the link carries. */
  account: string
  /** CA of the core's certificates. */
  caFile: string
  /** Subjects that do not cross the link in either direction (a site's heartbeats and proxy stay its own). */
  deny?: string[]
}

export class NatsCluster {
  readonly nodes: NatsNode[]
  readonly dir: string

  private constructor(dir: string, nodes: NatsNode[]) {
    this.dir = dir
    this.nodes = nodes
  }

  /** Nodes restarted because they had not joined the JetStream meta group (waitForJetStream). */
  readonly restarted: string[] = []

  get urls(): string[] {
    return this.nodes.map((n) => n.url)
  }

  /**
   * Starts the cluster. Free ports are chosen just before the servers bind them, so another
   * process may take one in between: a cluster that does not form is started again on fresh ports.
   */
  static async start(opts: NatsClusterOptions): Promise<NatsCluster> {
    // Only a fresh cluster is retried: its data directories can be wiped between attempts.
    const fresh = !existsSync(join(opts.dir, nodeName(opts, 1), 'jetstream', 'jetstream'))
    const attempts = fresh && !opts.basePort && !opts.ports ? 3 : 1
    for (let attempt = 1; ; attempt++) {
      try {
        return await NatsCluster.startOnce(opts)
      } catch (err) {
        if (attempt >= attempts) throw err
        rmSync(opts.dir, { recursive: true, force: true })
      }
    }
  }

  private static async startOnce(opts: NatsClusterOptions): Promise<NatsCluster> {
    const count = opts.nodes ?? 3
    if (count < 1) throw new UpswarmError('UPSWARM_E_CONFIG', `--nats-nodes must be at least 1 (got ${count})`)
    const host = opts.host ?? '127.0.0.1'
    if (WILDCARD.has(host) && !opts.advertise) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `NATS listens on ${host} (every address): give the address clients reach with --advertise ADDR`)
    }
    const ports = opts.basePort
      ? Array.from({ length: count * 3 }, (_, i) => opts.basePort! + i)
      : await freePorts(count * 3, WILDCARD.has(host) ? '127.0.0.1' : host)
    const fixed = (kind: 'client' | 'cluster' | 'monitor', i: number, free: number): number => {
      const first = opts.ports?.[kind]
      return first ? first + i : free
    }
    const specs: NatsNodeOptions[] = Array.from({ length: count }, (_, i) => ({
      name: nodeName(opts, i + 1),
      port: fixed('client', i, ports[i]!),
      clusterPort: fixed('cluster', i, ports[count + i]!),
      monitorPort: fixed('monitor', i, ports[2 * count + i]!),
      host,
      ...(opts.advertise ? { advertise: opts.advertise } : {}),
    }))
    const bin = natsServerBinary()
    // Issue 17: routes in mutual TLS under the deployment's CA (one certificate for this host's
    // nodes): a node that does not hold a certificate of the CA cannot join the cluster.
    const routed = count > 1 || (opts.routes?.length ?? 0) > 0
    mkdirSync(opts.dir, { recursive: true })
    const routeTls = opts.authority && routed
      ? opts.authority.writeRouteCert(opts.dir, [...new Set([...(opts.advertise ? [opts.advertise] : []), ...(WILDCARD.has(host) ? [] : [host]), '127.0.0.1', 'localhost'])])
      : undefined
    const nodes = specs.map((spec) => {
      const nodeDir = join(opts.dir, spec.name)
      mkdirSync(join(nodeDir, 'jetstream'), { recursive: true })
      const configFile = join(nodeDir, 'nats-server.conf')
      // A node bound or advertised beyond loopback gets a certificate of its own naming those
      // addresses (SANs), so clients that dial the advertised address verify it (issue 17 item 1).
      const ownCert = opts.authority && (opts.host || opts.advertise || opts.leafListen)
        ? opts.authority.writeNodeCert(nodeDir, [...new Set([spec.advertise ?? host, ...(WILDCARD.has(host) ? [] : [host]),
          ...(opts.leafListen && !WILDCARD.has(opts.leafListen.host) ? [opts.leafListen.host] : []), '127.0.0.1', 'localhost'])])
        : undefined
      const auth = opts.authority?.serverConfig(join(nodeDir, 'jwt'), ownCert) ?? []
      const leaf = renderLeaf(opts, specs.indexOf(spec), ownCert)
      writeFileSync(configFile, renderConfig(spec, specs, nodeDir, bin.supportsSyncAlways, [...auth, ...leaf], opts.routes ?? [], opts.domain, routeTls))
      return new NatsNode(spec, configFile, join(nodeDir, 'nats-server.log'))
    })
    const cluster = new NatsCluster(opts.dir, nodes)
    try {
      await Promise.all(nodes.map((n) => n.start()))
      // Peers on other hosts start when their operators (or tests) start them: wait longer for them.
      const remote = opts.expectPeers !== undefined && opts.expectPeers > count
      await cluster.waitForJetStream(remote ? opts.peersTimeoutMs ?? PEERS_TIMEOUT_MS : READY_TIMEOUT_MS, opts.expectPeers, remote ? { routes: opts.routes ?? [], ...(opts.onWait ? { onWait: opts.onWait } : {}) } : undefined)
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  /**
   * Resolves once the JetStream meta group has a leader and every running node is a current
   * member of it: before that, R3 assets cannot be placed ("no suitable peers for placement").
   */
  async waitForJetStream(timeoutMs = READY_TIMEOUT_MS, expectPeers?: number, remote?: { routes: string[]; onWait?: (line: string) => void }): Promise<void> {
    const deadline = Date.now() + timeoutMs
    const running = this.nodes.filter((n) => n.running)
    let last = ''
    let healAt = Date.now() + HEAL_AFTER_MS
    let tellAt = Date.now() + PROGRESS_EVERY_MS
    let group = ''
    /** What a host waiting for other hosts can see: the group so far and the routes that do not answer. */
    const waitingFor = async (): Promise<string> => {
      const dead = await unreachableRoutes(remote?.routes ?? [])
      return `waiting for ${expectPeers} JetStream peers (the meta group so far: ${group || 'none'})${dead.length ? `; ${dead.join('; ')}` : '; every route answers'}`
    }
    for (;;) {
      if (remote?.onWait && Date.now() > tellAt) {
        tellAt = Date.now() + PROGRESS_EVERY_MS
        remote.onWait(await waitingFor())
      }
      try {
        type Jsz = { meta_cluster?: { leader?: string; cluster_size?: number; replicas?: { name: string; current: boolean }[] } }
        const jsz = (node: NatsNode): Promise<Jsz> => node.monitor<Jsz>('jsz')
        if (expectPeers !== undefined && expectPeers > running.length) {
          // Peers on other hosts: every node knows the group's leader and size, only the leader its replicas.
          const meta = (await jsz(running[0]!)).meta_cluster
          last = JSON.stringify(meta ?? {})
          group = meta?.leader ? `leader ${meta.leader}, ${meta.cluster_size ?? '?'} peers` : 'no leader yet'
          if (meta?.leader && (meta.cluster_size ?? 0) >= expectPeers) return
          if (meta?.leader && Date.now() > healAt && !running.some((n) => n.name === meta.leader)) {
            // The same start-up race across hosts: every peer is routed to, yet the group counts
            // fewer. Which follower it left out cannot be seen from here: each host whose nodes
            // follow restarts them once per interval (only while starting, so no data is at stake).
            healAt = Date.now() + HEAL_AFTER_MS
            const routez = await running[0]!.monitor<{ routes?: { remote_id: string }[] }>('routez')
            if (new Set((routez.routes ?? []).map((r) => r.remote_id)).size + 1 >= expectPeers) await this.restart(running)
          }
          throw new Error(`waiting for ${expectPeers} JetStream peers: ${last}`)
        }
        if (running.length === 1) {
          // Standalone JetStream: ready once the server answers JetStream monitoring.
          await jsz(running[0]!)
          return
        }
        const leaderName = (await jsz(running[0]!)).meta_cluster?.leader
        const leader = running.find((n) => n.name === leaderName)
        // Only the leader lists the group's replicas and whether each is current.
        const meta = leader ? (await jsz(leader)).meta_cluster : undefined
        const current = (meta?.replicas ?? []).filter((r) => r.current).length + 1
        last = JSON.stringify(meta ?? { leader: leaderName })
        if (leader && current >= running.length) return
        if (leader && meta && Date.now() > healAt) {
          // A fresh nats-server 2.10 cluster whose nodes start together sometimes elects a leader
          // among two of them and never adds the third (about 1 start in 20 here under load): its
          // routes are up and it follows the leader, yet the leader never counts it. Restarting
          // that node (its data kept) makes it join; waiting longer does not.
          const members = new Set([leader.name, ...(meta.replicas ?? []).filter((r) => r.current).map((r) => r.name)])
          await this.restart(running.filter((n) => !members.has(n.name)))
          healAt = Date.now() + HEAL_AFTER_MS
        }
      } catch (err) {
        last = (err as Error).message
      }
      if (Date.now() > deadline) {
        // The routes that do not answer, beside the last thing the monitoring endpoint said.
        if (remote) last = `${await waitingFor()}; last: ${last}`
        // Each node's warnings and what it said of the meta group; not the route TLS handshakes that
        // the reachability probe (unreachableRoutes) breaks off, which would hide them.
        const told = (l: string): boolean => (/\[(ERR|WRN)\]/.test(l) || /JetStream cluster|meta leader|RAFT/i.test(l)) && !/TLS route handshake error: EOF/.test(l)
        const logs = running.map((n) => `--- ${n.name}\n${n.log.split('\n').filter(told).slice(-8).join('\n')}`).join('\n')
        const restarts = this.restarted.length ? `; restarted to heal: ${this.restarted.join(', ')}` : ''
        throw new UpswarmError('UPSWARM_E_CLUSTER_START', `JetStream meta group not formed after ${timeoutMs} ms in ${this.dir}: ${last}${restarts}\n${logs}`)
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /**
   * Issue 17 item 5: each node whose advertised address does not reach it from here (refused,
   * silent, or another server answers): clients and other hosts told that address would fail.
   */
  async checkAdvertised(): Promise<string[]> {
    const out = await Promise.all(this.nodes.map(async (n) => {
      const why = await advertisedMismatch(n.advertise, n.port, n.name)
      return why ? `${n.name}: the advertised address, dialled from this host, ${why}; clients and other hosts are told to use it: check --advertise (behind NAT without hairpinning this host may not reach it)` : undefined
    }))
    return out.filter((l): l is string => l !== undefined)
  }

  /** Restarts nodes left out of the meta group (their data kept), noting them in `restarted`. */
  private async restart(nodes: NatsNode[]): Promise<void> {
    for (const node of nodes) {
      this.restarted.push(node.name)
      await node.stop()
      await node.start()
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()))
  }
}

function nodeName(opts: NatsClusterOptions, i: number): string {
  return opts.namePrefix ? `${opts.namePrefix}-n${i}` : `n${i}`
}

/** Issue 17 item 2: the leafnodes block: a core node's listener (node i on port + i) or a site node's remotes. */
function renderLeaf(opts: NatsClusterOptions, i: number, cert: { certFile: string; keyFile: string } | undefined): string[] {
  if (opts.leafListen) {
    return [
      'leafnodes {',
      `  listen: "${urlHost(opts.leafListen.host)}:${opts.leafListen.port + i}"`,
      ...(cert ? ['  tls {', `    cert_file: ${JSON.stringify(cert.certFile)}`, `    key_file: ${JSON.stringify(cert.keyFile)}`, '    timeout: 5', '  }'] : []),
      '}',
    ]
  }
  if (opts.leafRemotes?.length) {
    return [
      'leafnodes {',
      '  remotes: [',
      ...opts.leafRemotes.flatMap((r) => [
        '    {',
        `      urls: [${r.urls.map((u) => JSON.stringify(u)).join(', ')}]`,
        `      credentials: ${JSON.stringify(r.credentials)}`,
        `      account: ${r.account}`,
        `      tls { ca_file: ${JSON.stringify(r.caFile)} }`,
        ...(r.deny?.length ? [`      deny_imports: ${JSON.stringify(r.deny)}`, `      deny_exports: ${JSON.stringify(r.deny)}`] : []),
        '    }',
      ]),
      '  ]',
      '}',
    ]
  }
  return []
}

function renderConfig(
  self: NatsNodeOptions, all: NatsNodeOptions[], dir: string, syncAlways: boolean, auth: string[], extraRoutes: string[], domain?: string,
  routeTls?: { certFile: string; keyFile: string; caFile: string },
): string {
  const host = urlHost(self.host ?? '127.0.0.1')
  const advertise = self.advertise ? urlHost(self.advertise) : undefined
  const routes = [
    ...all.filter((n) => n !== self).map((n) => `nats://${urlHost(n.advertise ?? n.host ?? '127.0.0.1')}:${n.clusterPort}`),
    ...extraRoutes,
  ].map((r) => `    ${JSON.stringify(r)}`)
  return [
    `server_name: ${self.name}`,
    `listen: "${host}:${self.port}"`,
    // Issue 17 item 1: what the INFO tells clients (connect_urls) and other nodes.
    advertise ? `client_advertise: "${advertise}:${self.port}"` : '',
    `http: "${host}:${self.monitorPort}"`,
    'max_payload: 8MB',
    // A user's JWT rides in its CONNECT line with its permissions, which name the identity several
    // times: a server id of 14 characters or more passed the default 4 KiB, and its connect was
    // refused ("maximum control line exceeded"), which the client saw as a dial timeout (docs/ops.md, "Production").
    'max_control_line: 32KB',
    ...auth,
    'jetstream {',
    `  store_dir: ${JSON.stringify(join(dir, 'jetstream'))}`,
    domain ? `  domain: ${domain}` : '',
    '  max_memory_store: 256MB',
    '  max_file_store: 16GB',
    // Acknowledged writes are on disk before the ack (kill -9 and power loss safe).
    syncAlways ? '  sync_interval: always' : '',
    '}',
    // A single node runs JetStream standalone: a cluster block needs routes.
    ...(routes.length > 0 ? [
      'cluster {',
      `  name: ${CLUSTER_NAME}`,
      `  listen: "${host}:${self.clusterPort}"`,
      advertise ? `  advertise: "${advertise}:${self.clusterPort}"` : '',
      ...(routeTls ? [
        '  tls {',
        `    cert_file: ${JSON.stringify(routeTls.certFile)}`,
        `    key_file: ${JSON.stringify(routeTls.keyFile)}`,
        `    ca_file: ${JSON.stringify(routeTls.caFile)}`,
        '    verify: true',
        '    timeout: 5',
        '  }',
      ] : []),
      '  routes: [',
      ...routes,
      '  ]',
      '}',
    ] : []),
    '',
  ].filter((l) => l !== '').join('\n') + '\n'
}
