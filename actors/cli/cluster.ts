// Commands that run the server side: up, dht, server, proxy, tracker.
import { Option, type Command } from 'commander'
import { once } from 'node:events'
import { UpswarmError } from '../../infra/errors.ts'
import { ALL_ROLES, type Role } from '../launcher/roles.ts'
import { action, intArg, natsOption, credsOption, tlsCaOption, trustOption, swarmIdentityOption, inspectOption, inspectIfAsked, metricsPortOption, serveMetricsIfAsked } from './common.ts'
import { runRole } from './role.ts'

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`)
}

export function registerClusterCommands(program: Command): void {
  program
    .command('up')
    .description('start the embedded default in the foreground: NATS cluster, DHT bootstrap, servers, proxy, tracker, notary (and the root of trust in DIR/root.json)')
    .requiredOption('--dir <dir>', 'where config files, data and endpoints.json go')
    .option('--roles <list>', `roles to start (default ${ALL_ROLES.join(',')}; with --join, all but nats)`)
    .option('--nats-nodes <n>', 'nats-server nodes in the cluster', intArg('--nats-nodes'), 3)
    .option('--servers <n>', 'repository servers', intArg('--servers'), 3)
    .option('--weights <list>', 'weight of each server, comma-separated (default 1 each)')
    .option('--http-port <port>', "the proxy's HTTP gateway port (0: any free port)", intArg('--http-port'))
    .option('--ssh-port <port>', "the proxy's SFTP door port (0: any free port)", intArg('--ssh-port'))
    .option('--tracker-http-port <port>', 'tracker HTTP port', intArg('--tracker-http-port'))
    .option('--tracker-udp-port <port>', 'tracker UDP port', intArg('--tracker-udp-port'))
    .option('--dht-port <port>', 'DHT bootstrap UDP port', intArg('--dht-port'))
    .option('--console-port <port>', 'the fleet console on 127.0.0.1 (role console; default: a free port, in endpoints.json)', intArg('--console-port'))
    .option('--bootstrap <host:port>', 'DHT bootstrap to use when the dht role is not started here')
    // Issue 17 item 1: one role set per host (docs/deploy.md).
    .option('--listen <addr>', 'address every listener binds: NATS client/route/monitor ports, servers, proxy, tracker, DHT (default 127.0.0.1)')
    .option('--advertise <addr>', 'address clients and other hosts reach this host at (default --listen; required with --listen 0.0.0.0); NATS certificates name it')
    .option('--routes <urls>', "other hosts' NATS route URLs, comma-separated (nats-route://ADDR:PORT): the nodes here join their cluster")
    .option('--nats-port <port>', 'client port of the first NATS node here (then +1, +2 …; default: free ports)', intArg('--nats-port'))
    .option('--cluster-port <port>', 'route port of the first NATS node here, the one other hosts list in --routes', intArg('--cluster-port'))
    .option('--monitor-port <port>', 'monitoring (HTTP) port of the first NATS node here', intArg('--monitor-port'))
    .option('--name <name>', "this host's name: NATS node names NAME-n1 … and server ids NAME-s1 … (unique across hosts)")
    .option('--cluster-size <n>', 'JetStream peers across all hosts to wait for before making the streams (default: the nodes here)', intArg('--cluster-size'))
    .option('--auth <dir>', "the deployment's identities made on the first host (a copy of its D/auth): this host joins that deployment")
    .option('--js-domain <name>', "this NATS's JetStream domain: the core's (e.g. core) or a site's own (sites, docs/deploy.md)")
    .option('--leaf-listen <addr:port>', "core hosts: where sites' leaf nodes connect (TLS; node i on port + i)")
    .option('--leaf-remote <urls>', "a site: the core's leaf URLs, comma-separated (tls://ADDR:PORT); the NATS here is a leaf node holding mirrors of the core's streams")
    .option('--core-domain <name>', "a site: the core's JetStream domain, where the mirrors source from (with --leaf-remote)")
    .option('--trust-file <file>', 'the trust file servers and the proxy read (default DIR/trust.json); one file distributed to every host')
    .option('--join <urls>', 'use an existing NATS deployment (its URLs, comma-separated; with --creds and --tls-ca) instead of starting nats-server here')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .action(action(async (o) => {
      const roles = String(o.roles ?? (o.join ? ALL_ROLES.filter((r) => r !== 'nats') : ALL_ROLES).join(',')).split(',').map((r) => r.trim()).filter(Boolean)
      const { hostArg, routeList, domainArg, hostPort, leafUrls } = await import('../launcher/hosts.ts')
      if (!!o.leafRemote !== !!o.coreDomain) throw new UpswarmError('UPSWARM_E_CONFIG', 'a site needs both --leaf-remote URLS (the core\'s leaf listeners) and --core-domain NAME (the core\'s --js-domain)')
      if (o.leafRemote && !o.jsDomain) throw new UpswarmError('UPSWARM_E_CONFIG', 'a site needs a JetStream domain of its own: --js-domain NAME (not the core\'s)')
      const unknown = roles.filter((r) => !(ALL_ROLES as readonly string[]).includes(r))
      if (unknown.length) throw new Error(`unknown role(s) ${unknown.join(', ')}; choose from ${ALL_ROLES.join(', ')}`)
      const { up } = await import('../launcher/index.ts')
      if (o.advertise) {
        const warning = await (await import('../launcher/hosts.ts')).checkAdvertise(hostArg('--advertise', o.advertise))
        if (warning) process.stderr.write(`upswarm: warning: ${warning}\n`)
      }
      const launched = await up({
        dir: o.dir,
        roles: roles as Role[],
        natsNodes: o.natsNodes,
        servers: o.servers,
        weights: o.weights ? String(o.weights).split(',').map(Number) : undefined,
        natsUrls: o.join ? String(o.join).split(',') : o.nats ? String(o.nats).split(',') : undefined,
        ...(o.creds ? { creds: o.creds } : {}),
        ...(o.tlsCa ? { tlsCa: o.tlsCa } : {}),
        ...(o.listen ? { listen: hostArg('--listen', o.listen) } : {}),
        ...(o.advertise ? { advertise: hostArg('--advertise', o.advertise) } : {}),
        ...(o.routes ? { routes: routeList(o.routes) } : {}),
        ...(o.natsPort || o.clusterPort || o.monitorPort ? { natsPorts: { client: o.natsPort, cluster: o.clusterPort, monitor: o.monitorPort } } : {}),
        ...(o.name ? { name: hostArg('--name', o.name) } : {}),
        ...(o.clusterSize ? { clusterSize: o.clusterSize } : {}),
        ...(o.auth ? { authDir: o.auth } : {}),
        ...(o.trustFile ? { trust: o.trustFile } : {}),
        ...(o.jsDomain ? { domain: domainArg('--js-domain', o.jsDomain) } : {}),
        ...(o.leafListen ? { leafListen: hostPort('--leaf-listen', o.leafListen) } : {}),
        ...(o.leafRemote ? { leafRemotes: leafUrls(o.leafRemote) } : {}),
        ...(o.coreDomain ? { coreDomain: domainArg('--core-domain', o.coreDomain) } : {}),
        bootstrap: o.bootstrap,
        httpPort: o.httpPort,
        sshPort: o.sshPort,
        trackerHttpPort: o.trackerHttpPort,
        trackerUdpPort: o.trackerUdpPort,
        dhtPort: o.dhtPort,
        consolePort: o.consolePort,
        log,
      })
      log(`upswarm: ready; endpoints in ${launched.endpointsFile}`)
      process.stdout.write(`${JSON.stringify(launched.endpoints)}\n`)
      await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')])
      log('upswarm: shutting down')
      await launched.stop()
    }))

  program
    .command('dht')
    .description('run a HyperDHT bootstrap node (and two full nodes) on 127.0.0.1 (or --host)')
    .option('--port <port>', 'UDP port of the bootstrap node (0: any free port)', intArg('--port'), 0)
    .option('--host <addr>', 'address the nodes bind', '127.0.0.1')
    .action(action(async (o) => {
      const { startLocalDht } = await import('../../infra/cluster/dht.ts')
      await runRole('dht', async () => {
        const dht = await startLocalDht({ port: o.port, host: o.host })
        return { ready: { dhtBootstrap: dht.bootstrap }, close: () => dht.close() }
      })
    }))

  program
    .command('server')
    .description('run one repository server (R-SERVER): syncs releases from JetStream and serves them')
    .requiredOption('--id <id>', 'server id (its place in the ring)')
    .requiredOption('--data <dir>', 'local content-addressed store and state')
    .option('--weight <w>', 'weight in the round-robin', intArg('--weight'), 1)
    .option('--swarm-host <host>', 'address the swarm (seed) listener binds and the heartbeat advertises', '127.0.0.1')
    .option('--swarm-advertise <host>', 'address clients dial, when not --swarm-host (required with 0.0.0.0 or ::)')
    .option('--swarm-port <port>', 'swarm TCP port (0: any free port)', intArg('--swarm-port'), 0)
    .option('--bulk-port <port>', 'bulk port: blob ranges over HTTPS on --swarm-host, advertised as --swarm-advertise (0: any free port)', intArg('--bulk-port'), 0)
    .option('--no-bulk', 'no bulk port: clients fetch every range over NATS')
    .addOption(new Option('--bootstrap <host:port>', 'DHT bootstrap node(s), comma-separated: announce every synced revision on the DHT')
      .env('UPSWARM_BOOTSTRAP'))
    .addOption(new Option('--max-upload-rate <bytes/s>', 'limit of swarm, NATS range and bulk port uploads together (0: unlimited)')
      .env('UPSWARM_SERVER_MAX_UPLOAD_RATE').argParser(intArg('--max-upload-rate')))
    .addOption(trustOption('trust file (required): sync only releases signed by the keys it pins for their product (re-read when it changes)'))
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(swarmIdentityOption()).addOption(inspectOption()).addOption(metricsPortOption())
    .action(action(async (o) => {
      // Issue 10 item 4, no trust on first use: a server believes only the keys a trust file pins.
      if (!o.trust) {
        throw new UpswarmError('UPSWARM_E_CONFIG', `server ${o.id}: --trust FILE (or UPSWARM_TRUST) is required: the trust file naming each product's publisher keys (\`upswarm up\` writes DIR/trust.json; \`publish --trust FILE\` pins a product)`)
      }
      const [{ connectNats }, { parseBootstrap }, { startRepoServer }, { TrustStore }, { loadSwarmIdentity }] = await Promise.all([
        import('../../infra/nats/connect.ts'), import('../../infra/cluster/dht.ts'), import('../repo-server/index.ts'), import('../../infra/release/trust.ts'),
        import('../../infra/swarm/fleet.ts')])
      const swarmIdentity = o.swarmIdentity ? await loadSwarmIdentity(o.swarmIdentity) : undefined
      const trust = await new TrustStore(o.trust).ready()
      const nc = await connectNats(o.nats, `upswarm-server-${o.id}`, o)
      const inspecting = await inspectIfAsked(o, 'repo-server', nc)
      await runRole('server', async () => {
        const server = await startRepoServer({
          nc, id: o.id, dataDir: o.data, weight: o.weight,
          swarmHost: o.swarmHost, swarmPort: o.swarmPort, ...(o.swarmAdvertise ? { swarmAdvertise: o.swarmAdvertise } : {}), bulk: o.bulk !== false, bulkPort: o.bulkPort, bootstrap: parseBootstrap(o.bootstrap), maxUploadRate: o.maxUploadRate,
          trust, ...(swarmIdentity ? { swarmIdentity } : {}), log: (m) => log(`server ${o.id}: ${m}`),
        })
        const { host, port, publicKey } = server.seed.info()
        const { repoServerMetrics } = await import('../repo-server/metrics.ts')
        const metrics = await serveMetricsIfAsked(o.metricsPort, `server ${o.id}`, () => repoServerMetrics(server, nc))
        return { ready: { id: o.id, swarm: { host, port, publicKey }, ...(server.bulk ? { bulk: server.bulk.offer().url } : {}), ...(metrics.url ? { metrics: metrics.url } : {}) }, close: async () => { await metrics.close(); await server.close(); await inspecting.stop(); await nc.drain() } }
      })
    }))

  program
    .command('proxy')
    .description('run the server proxy (R-PROXY): weighted round-robin director and HTTP/WebDAV gateway')
    .option('--http-port <port>', 'gateway port (0: any free port)', intArg('--http-port'), 0)
    .option('--ssh-port <port>', 'SFTP door: read-only view of every release over SSH (0: any free port; off unless given)', intArg('--ssh-port'))
    .option('--ssh-host-key <file>', 'SSH host key (created, Ed25519, when missing)', 'upswarm-proxy-ssh-host-key')
    .option('--ssh-authorized-keys <file>', 'only these public keys (OpenSSH authorized_keys) may log in; default: anyone may read, as over HTTP')
    .option('--id <id>', 'proxy id')
    .option('--host <addr>', 'address the gateway and the SFTP door bind', '127.0.0.1')
    .addOption(trustOption('trust file: the gateway and the SFTP door serve only releases signed by the keys it pins for their product (re-read when it changes); without it they serve none'))
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(inspectOption()).addOption(metricsPortOption())
    .action(action(async (o) => {
      const [{ connectNats }, { startProxy }, { loadOrCreateHostKey }, { readFile }, { TrustStore }] = await Promise.all([
        import('../../infra/nats/connect.ts'), import('../proxy/index.ts'), import('../../infra/ssh/sftp-gateway.ts'), import('node:fs/promises'),
        import('../../infra/release/trust.ts'),
      ])
      const trust = o.trust ? await new TrustStore(o.trust).ready() : undefined
      const ssh = o.sshPort === undefined ? {} : {
        sshPort: o.sshPort as number,
        sshHostKey: await loadOrCreateHostKey(o.sshHostKey),
        ...(o.sshAuthorizedKeys ? { sshAuthorizedKeys: await readFile(o.sshAuthorizedKeys, 'utf8') } : {}),
      }
      const nc = await connectNats(o.nats, 'upswarm-proxy', o)
      const inspecting = await inspectIfAsked(o, 'proxy', nc)
      await runRole('proxy', async () => {
        const proxy = await startProxy({ nc, id: o.id, httpPort: o.httpPort, httpHost: o.host, ...ssh, ...(trust ? { trust } : {}), log: (m) => log(`proxy: ${m}`) })
        const { proxyMetrics } = await import('../proxy/metrics.ts')
        const metrics = await serveMetricsIfAsked(o.metricsPort, 'proxy', () => proxyMetrics(proxy))
        return { ready: { http: proxy.httpUrl, ssh: proxy.sshUrl, id: proxy.id, ...(metrics.url ? { metrics: metrics.url } : {}) }, close: async () => { await metrics.close(); await proxy.close(); await inspecting.stop(); await nc.drain() } }
      })
    }))

  program
    .command('tracker')
    .description('run the tracker (R-TRACKER): NATS, HTTP (BEP 3/23) and UDP (BEP 15) announce')
    .option('--http-port <port>', 'HTTP port (0: any free port)', intArg('--http-port'), 0)
    .option('--udp-port <port>', 'UDP port (0: any free port)', intArg('--udp-port'), 0)
    .option('--id <id>', 'tracker instance id')
    .option('--host <addr>', 'address the HTTP and UDP doors bind', '127.0.0.1')
    .option('--cert <file>', 'TLS certificate: serve HTTPS')
    .option('--key <file>', 'TLS key for --cert')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(inspectOption()).addOption(metricsPortOption())
    .action(action(async (o) => {
      const { runTrackerCli } = await import('../tracker/index.ts')
      await runTrackerCli(o)
    }))
}
