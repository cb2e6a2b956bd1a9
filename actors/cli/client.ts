// Commands of the installed client: init, status, update, rollback, history, ignore, watch, daemon.
import type { Command } from 'commander'
import { Option } from 'commander'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { mark } from '../../infra/timings.ts'
import type { Daemon, DaemonOptions, DaemonUpdate, UpdateRequest } from '../share-daemon/index.ts'
import type * as Updater from '../updater/index.ts'
import type { SourceSettings } from '../../infra/store/working-copy/sources.ts'
import { action, intArg, revArg, jsonOption, natsOption, credsOption, tlsCaOption, swarmIdentityOption, siteOption, inspectOption, inspectIfAsked, metricsPortOption, serveMetricsIfAsked } from './common.ts'
import { siteLabel } from '../../infra/swarm/site-label.ts'
import { formatBytes, printEvent, printResult, progressLine } from './output.ts'
import { runRole } from './role.ts'
import { blockedLines, handToDaemon, reportUpdate, treeNodesNote, updateJson, updateSummary } from './update-report.ts'

const trackerOption = (): Option => new Option('--tracker <urls>', 'tracker URLs (http(s)://…, udp://…), comma-separated').env('UPSWARM_TRACKER')
const bootstrapOption = (): Option => new Option('--bootstrap <host:port>', 'DHT bootstrap nodes, comma-separated').env('UPSWARM_BOOTSTRAP')
/** Issue 16 item 2: commands around each install and the health check after it (docs/updater.md, "Install hooks"). */
const DEFAULT_HEALTH_TIMEOUT_S = 60
function addHookOptions(cmd: Command): Command {
  return cmd
    .option('--pre-install <cmd>', 'shell command run before an update is installed (everything fetched and verified); failing, it leaves the working copy as it was')
    .option('--post-install <cmd>', 'shell command run after an update is installed (and after a revert); failing, the working copy goes back')
    .option('--health-cmd <cmd>', 'shell command that checks the installed revision; failing or running past --health-timeout, the working copy goes back to the previous revision, the administrators are alerted, and the revision is not installed again automatically')
    .option('--health-timeout <seconds>', `how long the health command may run (default ${DEFAULT_HEALTH_TIMEOUT_S})`, intArg('--health-timeout'), DEFAULT_HEALTH_TIMEOUT_S)
}

/** Issue 16 item 1: a client's stage is hashed from its NATS user nkey, read from its creds file (so it is the same with NATS down). */
async function stageKeyOf(creds: string): Promise<string> {
  const { credsClaims } = await import('../../infra/nats/identity.ts')
  const text = await readFile(creds, 'utf8').catch((err: Error) => { throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read --creds ${creds}: ${err.message}`) })
  return credsClaims(text, creds).sub
}

function hooksOf(o: { preInstall?: string; postInstall?: string; healthCmd?: string; healthTimeout?: number }): Updater.InstallHooks | undefined {
  if (o.preInstall === undefined && o.postInstall === undefined && o.healthCmd === undefined) return undefined
  return {
    ...(o.preInstall !== undefined ? { preInstall: o.preInstall } : {}),
    ...(o.postInstall !== undefined ? { postInstall: o.postInstall } : {}),
    ...(o.healthCmd !== undefined ? { health: o.healthCmd } : {}),
    healthTimeoutMs: (o.healthTimeout ?? DEFAULT_HEALTH_TIMEOUT_S) * 1000,
  }
}

/** Issue 16 item 1: the client's ring: in the stage of every rollout statement that lists the label. */
const ringOption = (): Option => new Option('--ring <label>', 'this client\'s ring for staged rollouts (a rollout statement listing it includes this client whatever the percentage)')

const threadsOption = (): Option => new Option('--threads <k>', 'concurrent downloads / range requests (default 4; the daemon: 16)').argParser(intArg('--threads'))

// Each command imports the modules it uses when it runs (R-CLI start-up, issue 13): `--help`,
// `--version` and `status --offline` load neither NATS nor the swarm.
const updaterModule = (): Promise<typeof Updater> => import('../updater/index.ts')
const workingCopyModule = () => import('../../infra/store/working-copy/working-copy.ts')
const sourcesModule = () => import('../share-daemon/sources.ts')
const alertsModule = () => import('../../infra/nats/alert-sink.ts')
const sourcesFileModule = () => import('../../infra/store/working-copy/sources.ts')

type NatsFlags = { nats?: string; creds?: string; tlsCa?: string }

/** Issue 11 item 7: what `init` recorded in the working copy fills in what no flag or variable gives. */
async function withSources<T extends SourceSettings>(dir: string, o: T): Promise<T> {
  const [{ readSources, withRecorded }, { layoutOf }] = await Promise.all([sourcesFileModule(), import('../../infra/store/working-copy/layout.ts')])
  return withRecorded(o, await readSources(layoutOf(dir)))
}

async function maybeNats(o: NatsFlags, name: string): Promise<NatsConnection | undefined> {
  const { connectNats, parseServers } = await import('../../infra/nats/connect.ts')
  return parseServers(o.nats).length > 0 ? connectNats(o.nats, name, o) : undefined
}

/**
 * How long a command that can do without the repository waits for NATS: R-DHT-2 asks `status`
 * to answer within a second also when the address accepts connections and never answers.
 */
const OPTIONAL_CONNECT_MS = 400

/**
 * NATS for a command that works without it (R-DHT-2): one bounded attempt; when NATS cannot be
 * reached, a one-line note on stderr saying what the command does instead, and no connection.
 * Refused credentials and unreadable files still fail: they need the user, not patience.
 */
async function optionalNats(o: NatsFlags, name: string, instead: string, pingIntervalMs?: number): Promise<NatsConnection | undefined> {
  const { connectNats, parseServers } = await import('../../infra/nats/connect.ts')
  const servers = parseServers(o.nats)
  if (servers.length === 0) return undefined
  try {
    return await connectNats(servers, name, { creds: o.creds, tlsCa: o.tlsCa, timeoutMs: OPTIONAL_CONNECT_MS, pingIntervalMs })
  } catch (err) {
    if (!isUpswarmError(err, 'UPSWARM_E_NATS')) throw err
    process.stderr.write(`${natsUnreachable(servers, err)}; ${instead}\n`)
    return undefined
  }
}

const natsUnreachable = (servers: string[], err: UpswarmError): string =>
  `note: NATS at ${servers.join(',')} unreachable (${errorMessage(err.cause ?? err)})`

/** The daemon's NATS pings: it is idle almost always, and a server that stops closes its socket (issue 13 item 5). */
const DAEMON_PING_MS = 30_000

/** One background attempt's bound: also what a SIGTERM waits at most for the attempt under way. */
const DAEMON_ATTEMPT_MS = 2_000

/** One bounded attempt at NATS for the daemon, which retries on its statechart's clock (R-DHT-2). */
async function daemonConnect(o: NatsFlags): Promise<(() => Promise<NatsConnection>) | undefined> {
  const { connectNats, parseServers } = await import('../../infra/nats/connect.ts')
  const servers = parseServers(o.nats)
  if (servers.length === 0) return undefined
  return () => connectNats(servers, 'upswarm-daemon', { creds: o.creds, tlsCa: o.tlsCa, timeoutMs: DAEMON_ATTEMPT_MS, pingIntervalMs: DAEMON_PING_MS })
}

async function requireNats(o: NatsFlags, name: string, what: string): Promise<NatsConnection> {
  const nc = await maybeNats(o, name)
  if (!nc) throw new UpswarmError('UPSWARM_E_CONFIG', `${what} needs the repository: pass --nats URLS or set UPSWARM_NATS`)
  return nc
}

/** The servers as the source of the working copy's product. */
async function serverSourceFor(nc: NatsConnection, dir: string): Promise<Updater.ReleaseSource> {
  const [{ WorkingCopy }, { serverSource }] = await Promise.all([workingCopyModule(), sourcesModule()])
  return serverSource(nc, (await WorkingCopy.open(dir)).config.product)
}

function trackerUrls(value: string | undefined): Pick<DaemonOptions, 'trackerHttp' | 'trackerUdp'> {
  const out: Pick<DaemonOptions, 'trackerHttp' | 'trackerUdp'> = {}
  for (const url of (value ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (url.startsWith('udp://')) out.trackerUdp = url
    else if (/^https?:\/\//.test(url)) out.trackerHttp = url
    else throw new UpswarmError('UPSWARM_E_CONFIG', `--tracker ${url}: expected http://, https:// or udp://`)
  }
  return out
}

const stderrLog = (quiet: boolean) => (msg: string): void => {
  if (!quiet) process.stderr.write(`${msg}\n`)
}

/**
 * What `--rev` (from 1 up: revArg) and `--on-conflict` ask for, the same for both update paths
 * (direct and through the swarm), so that they mean the same whichever runs.
 */
function updateRequest(o: { rev?: number; onConflict?: Updater.ConflictPolicy }): UpdateRequest {
  return { ...(o.rev !== undefined ? { rev: o.rev } : {}), onConflict: o.onConflict ?? 'alert' }
}

/** `--site` as the daemon's option: the label checked (or derived for `auto`), nothing when none. */
function siteOf(given: unknown): { site?: string } {
  const site = siteLabel(given === undefined ? undefined : String(given))
  return site ? { site } : {}
}

/** One update (or first checkout) as a short-lived sharing daemon: from peers and servers at once. */
async function updateThroughSwarm(dir: string, nc: NatsConnection | undefined, o: { tracker?: string; bootstrap?: string; threads?: number; swarmIdentity?: string; site?: string },
  request: UpdateRequest, quiet: boolean, hooks?: Updater.InstallHooks): Promise<DaemonUpdate> {
  const [{ startDaemon }, { openUpdate }] = await Promise.all([import('../share-daemon/index.ts'), updaterModule()])
  const daemon = await startDaemon({ dir, updater: openUpdate, ...(nc ? { nc } : {}), ...(hooks ? { hooks } : {}), ...trackerUrls(o.tracker), bootstrap: o.bootstrap, ...(o.threads ? { threads: o.threads } : {}), ...(o.swarmIdentity ? { swarmIdentity: o.swarmIdentity } : {}), ...siteOf(o.site), log: stderrLog(quiet) })
  try {
    return await daemon.updateNow(request)
  } finally {
    await daemon.close()
  }
}

function progress(json: boolean) {
  const bar = progressLine(!json)
  return {
    bar,
    onProgress: (p: Updater.UpdateProgress) => bar.update(`${p.phase}: ${p.done}/${p.total} ${formatBytes(p.bytes)}${p.path ? ` ${p.path}` : ''}`),
  }
}

/** Issue 16 item 3: a one-shot command's fleet report (one per run: the rate bound is the daemon's and watch's concern). */
async function reportOnce(nc: NatsConnection, dir: string, state: import('../share-daemon/fleet-report.ts').FleetState): Promise<void> {
  const [{ startFleetReporter }, { WorkingCopy }, { identityKeyOf }] = await Promise.all([import('../share-daemon/fleet-report.ts'), workingCopyModule(), import('../../infra/nats/identity.ts')])
  const { product, clientId } = (await WorkingCopy.open(dir)).config
  const reporter = startFleetReporter({ product, stageKey: identityKeyOf(nc) ?? clientId, role: 'update', nc: () => nc, initial: state, log: (m) => process.stderr.write(`upswarm: ${m}\n`) })
  await reporter.stop()
}

export function registerClientCommands(program: Command): void {
  program
    .command('init <dir>')
    .description('create a working copy of a product at its newest (or a given) revision')
    .requiredOption('--product <uuid>', 'product UUID')
    .option('--pubkey <hex>', "the publisher's public key (pinned: no release signed by another key is accepted, unless a root of trust it endorses rotates it)")
    .option('--root <file>', 'a root of trust document to pin (`upswarm root init`): publisher keys come from its chain and can rotate without a reinstall')
    .option('--rev <n>', 'revision to check out (default: the newest)', revArg('--rev'))
    .option('--adopt', 'take over a non-empty directory: its files are classified, never overwritten')
    .option('--history <k>', 'revisions kept in the local history store for offline rollback', intArg('--history'))
    .option('--private', 'a private product: its swarm admits only members of the fleet (needs --swarm-identity to share or fetch from peers)')
    .addOption(threadsOption())
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(swarmIdentityOption())
    .addOption(siteOption())
    .addOption(trackerOption())
    .addOption(bootstrapOption())
    .addOption(inspectOption())
    .addOption(jsonOption())
    .action(action(async (dir: string, o) => {
      if (!o.pubkey && !o.root) throw new UpswarmError('UPSWARM_E_CONFIG', 'init needs --pubkey HEX (the publisher key to pin) or --root FILE (a root of trust to pin)')
      const root = o.root ? { text: await readFile(String(o.root), 'utf8').catch((err: Error) => { throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read --root ${o.root}: ${err.message}`) }), where: String(o.root) } : undefined
      const nc = await requireNats(o, 'upswarm-init', 'init')
      const inspecting = await inspectIfAsked(o, 'updater', nc)
      const [updater, { serverSource }, { jetStreamAlertSink }, { sourcesOf }] = await Promise.all([updaterModule(), sourcesModule(), alertsModule(), sourcesFileModule()])
      const { bar, onProgress } = progress(!!o.json)
      // With a swarm to join, the first revision comes like an update: peers and servers at once
      // (a short-lived sharing daemon). Adopting classifies existing files against the servers.
      const swarm = (o.tracker || o.bootstrap) && !o.adopt
      const request = updateRequest(o)
      try {
        const r = await updater.init(dir, {
          product: o.product, ...(o.pubkey ? { publicKey: String(o.pubkey).toLowerCase() } : {}), ...(root ? { root } : {}), source: serverSource(nc, String(o.product).toLowerCase()),
          alerts: jetStreamAlertSink(nc), threads: o.threads, onProgress, sources: sourcesOf(o),
          ...(request.rev !== undefined ? { rev: request.rev } : {}), ...(o.adopt ? { adopt: true } : {}), ...(o.history ? { historyDepth: o.history } : {}), ...(o.private ? { private: true } : {}),
          ...(swarm ? { checkout: (d: string) => updateThroughSwarm(d, nc, o, request, true) } : {}),
        })
        bar.done()
        reportUpdate(!!o.json, r, () => `${dir}: working copy at r${r.to} (${r.checkedOut} files checked out; ${formatBytes(r.bytesFromServers)} from servers${r.bytesFromPeers ? `, ${formatBytes(r.bytesFromPeers)} from peers` : ''}${treeNodesNote(r)})` + blockedLines(r).map((l) => `\n${l}`).join(''))
      } finally {
        await inspecting.stop()
        await nc.close()
      }
    }))

  program
    .command('status <dir>')
    .description('the status of every path: current, ignored, conflict, outdated, missing, modified, unversioned, removed')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .option('--offline', 'do not ask the repository for newer revisions')
    .addOption(jsonOption())
    .action(action(async (dir: string, flags) => {
      const o = await withSources(dir, flags)
      const nc = o.offline ? undefined : await optionalNats(o, 'upswarm-status', 'showing local state')
      try {
        const { runStatus } = await import('./status.ts')
        await runStatus(dir, o, nc ? await serverSourceFor(nc, dir) : undefined)
      } finally {
        await nc?.close()
      }
    }))

  addHookOptions(program
    .command('update <dir>'))
    .description('update the working copy to the newest (or a given) revision, from peers and servers')
    .option('--rev <n>', 'revision to install (explicit; may be lower than the current one)', revArg('--rev'))
    .addOption(new Option('--on-conflict <policy>', 'what to do with files changed by hand and out of date').choices(['alert', 'overwrite', 'abort']).default('alert'))
    .addOption(threadsOption())
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(swarmIdentityOption())
    .addOption(siteOption())
    .addOption(trackerOption())
    .addOption(bootstrapOption())
    .addOption(inspectOption())
    .option('--no-daemon', 'run the update in this process even when a sharing daemon serves the copy')
    .addOption(jsonOption())
    .action(action(async (dir: string, flags) => {
      mark('update: parsed')
      // Issue 15 item 4: the copy's sharing daemon, when one runs, does the update (install hooks
      // given here are this command's own: with them, the update runs here).
      if (flags.daemon !== false && !hooksOf(flags) && !flags.inspect && await handToDaemon(dir, updateRequest(flags), !!flags.json)) return
      const o = await withSources(dir, flags)
      const request = updateRequest(o)
      const nc = await maybeNats(o, 'upswarm-update')
      mark('update: connected')
      const inspecting = await inspectIfAsked(o, 'updater', nc)
      const { bar, onProgress } = progress(!!o.json)
      try {
        let r: Updater.UpdateResult | DaemonUpdate
        if (o.tracker || o.bootstrap) {
          r = await updateThroughSwarm(dir, nc, o, request, !!o.json, hooksOf(o))
        } else {
          if (!nc) throw new UpswarmError('UPSWARM_E_CONFIG', 'update needs a source: --nats URLS (or UPSWARM_NATS), and/or --tracker / --bootstrap for peers')
          const [updater, source, { jetStreamAlertSink }] = await Promise.all([updaterModule(), serverSourceFor(nc, dir), alertsModule()])
          const hooks = hooksOf(o)
          mark('update: modules loaded')
          r = await updater.update(dir, {
            source, alerts: jetStreamAlertSink(nc), threads: o.threads, onProgress, ...request, ...(hooks ? { hooks } : {}),
          })
        }
        bar.done()
        mark('update: done')
        if (nc) await reportOnce(nc, dir, { rev: r.to, health: { state: 'ok', rev: r.to, at: new Date().toISOString() }, last: { from: r.from, to: r.to, bytesFromPeers: r.bytesFromPeers, bytesFromServers: r.bytesFromServers, at: new Date().toISOString() } })
        mark('update: reported to the fleet')
        reportUpdate(!!o.json, r, () => updateSummary(r))
      } catch (err) {
        // Issue 16 item 3: a revision taken back after its health check is what the fleet view is for.
        if (nc && isUpswarmError(err, 'UPSWARM_E_HEALTH')) {
          const { state } = await (await workingCopyModule()).WorkingCopy.open(dir)
          const last = state.reverted?.at(-1)
          await reportOnce(nc, dir, { rev: state.current, health: { state: 'reverted', ...(last ? { rev: last.rev, to: last.to, at: last.at } : {}), reason: err.message.slice(0, 500) } })
        }
        throw err
      } finally {
        await inspecting.stop()
        await nc?.close()
        mark('update: closed')
      }
    }))

  program
    .command('rollback <dir>')
    .description('roll back to an older revision: offline from local history when it holds it, else downloaded')
    .requiredOption('--rev <n>', 'the revision to go back to (lower than the current one)', revArg('--rev'))
    .addOption(threadsOption())
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(inspectOption())
    .addOption(jsonOption())
    .action(action(async (dir: string, flags) => {
      const o = await withSources(dir, flags)
      const updater = await updaterModule()
      // A revision in local history needs no network (R-ROLLBACK): NATS is not even asked, unless
      // the inspection is to be published there (the rollback itself still uses none).
      const local = (await updater.history(dir)).revisions.some((v) => v.rev === o.rev && v.local)
      const nc = local && !o.inspect ? undefined : await maybeNats(o, 'upswarm-rollback')
      const inspecting = await inspectIfAsked(o, 'updater', nc)
      const online = local ? undefined : nc
      try {
        const r = await updater.rollback(dir, {
          rev: o.rev, threads: o.threads,
          ...(online ? { source: await serverSourceFor(online, dir), alerts: (await alertsModule()).jetStreamAlertSink(online) } : {}),
        })
        printResult(!!o.json, r, () => `rolled back r${r.from} → r${r.to} (${r.source === 'local' ? 'from local history, no network' : 'downloaded'})`)
      } finally {
        await inspecting.stop()
        await nc?.close()
      }
    }))

  program
    .command('history <dir>')
    .description('revisions known to the working copy, which are local, the current one')
    .addOption(jsonOption())
    .action(action(async (dir: string, o) => {
      const updater = await updaterModule()
      const r = await updater.history(dir)
      printResult(!!o.json, r, () => r.revisions.map((v) =>
        `${v.current ? '*' : ' '} r${v.rev}${v.label ? ` (${v.label})` : ''} ${v.local ? 'local' : v.manifest ? 'manifest only' : 'remote'} ${v.manifestSha256.slice(0, 16)}${v.reverted ? `  ${updater.revertLine(v.reverted)}` : ''}`).join('\n'))
    }))

  program
    .command('ignore <dir> <pattern>')
    .description('exclude paths from updates (gitignore syntax, R-STATUS-2): personalised files stay as they are')
    .addOption(jsonOption())
    .action(action(async (dir: string, pattern: string, o) => {
      const patterns = await (await updaterModule()).ignore(dir, pattern)
      printResult(!!o.json, { patterns }, () => patterns.join('\n'))
    }))

  addHookOptions(program
    .command('watch <dir>'))
    .description('follow the release stream (push) and report newer revisions; with --auto, update to them (as far as a staged rollout lets this client)')
    .option('--auto', 'update automatically')
    .addOption(ringOption())
    .addOption(threadsOption())
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(inspectOption())
    .addOption(jsonOption())
    .action(action(async (dir: string, flags) => {
      const o = await withSources(dir, flags)
      const nc = await requireNats(o, 'upswarm-watch', 'watch')
      const inspecting = await inspectIfAsked(o, 'updater', nc)
      const [{ watch }, { WorkingCopy }, { serverSource }] = await Promise.all([import('../updater/watch.ts'), workingCopyModule(), sourcesModule()])
      const hooks = hooksOf(o)
      const json = !!o.json
      const wc = await WorkingCopy.open(dir)
      // Issue 16 item 3: this client in the fleet view, at most one report per 10 s.
      const [{ startFleetReporter, installed, reverted, failed }, { identityKeyOf }] = await Promise.all([import('../share-daemon/fleet-report.ts'), import('../../infra/nats/identity.ts')])
      const fleet = startFleetReporter({
        product: wc.config.product, stageKey: identityKeyOf(nc) ?? wc.config.clientId, ...(o.ring ? { ring: String(o.ring) } : {}), role: 'watch', nc: () => nc,
        initial: { rev: wc.state.current, health: { state: 'none' } }, log: (m) => process.stderr.write(`upswarm: ${m}\n`),
      })
      const watching = await watch({
        dir, nc, source: serverSource(nc, wc.config.product), auto: !!o.auto,
        ...(o.ring ? { ring: String(o.ring) } : {}), ...(o.threads ? { threads: o.threads } : {}), ...(hooks ? { hooks } : {}),
        report: (e) => {
          switch (e.type) {
            case 'release.available':
              return printEvent(json, { event: e.type, rev: e.rev, current: e.current }, () => `upgrade notice: r${e.rev} is available (working copy at r${e.current})`)
            case 'update.held':
              return printEvent(json, { event: e.type, rev: e.rev, newest: e.newest }, () => `holding r${e.rev} (rolled back): r${e.newest} is available; \`upswarm update ${dir} --rev ${e.newest}\` installs it`)
            case 'update.done':
              fleet.update(installed(e.result.from, e.result.to, e.result.bytesFromPeers, e.result.bytesFromServers))
              return printEvent(json, { event: e.type, ...updateJson(e.result) }, () => updateSummary(e.result))
            case 'update.reverted':
              fleet.update(reverted(e.rev, e.to, e.error.message))
              return printEvent(json, { event: e.type, rev: e.rev, error: e.error.toJSON() }, () => e.error.message)
            case 'update.short':
              return void process.stderr.write(`upswarm: r${e.wanted} is not on the servers yet (the copy is at r${e.result.to}); trying again\n`)
            case 'update.failed':
              // The statechart backs off and tries again (machines/auto-update.machine.ts).
              fleet.update(failed(errorMessage(e.error)))
              return void process.stderr.write(`upswarm: update failed: ${errorMessage(e.error)}\n`)
            case 'ignored':
              return void process.stderr.write(`upswarm: ignored ${e.what}: ${e.reason}\n`)
            case 'rollout.statement':
              return printEvent(json, { event: e.type, seq: e.seq, rev: e.rev, target: e.target ?? null }, () => `rollout statement ${e.seq} (r${e.rev}): this client's stage allows r${e.target}`)
          }
        },
      })
      await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM'), watching.closed])
      await watching.stop()
      await fleet.stop()
      await inspecting.stop()
      await nc.close()
    }))

  addHookOptions(program
    .command('daemon <dir>'))
    .description('the sharing daemon (R-SHARE): serve this working copy to peers, find peers, and with --auto update from them')
    .option('--auto', 'update automatically when a newer revision is published')
    .option('--port <port>', 'TCP port peers connect to (0: any free port)', intArg('--port'), 0)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--max-upload-rate <bytes>', 'upload limit to peers in bytes/s (0: unlimited)', intArg('--max-upload-rate'), 0)
    .addOption(ringOption())
    .addOption(threadsOption())
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(swarmIdentityOption())
    .addOption(siteOption())
    .addOption(trackerOption())
    .addOption(bootstrapOption())
    .addOption(inspectOption())
    .addOption(metricsPortOption())
    .option('--no-monitor', 'do not watch the tree for `status` (issue 13 item 2: with the monitor, status lstats only what changed)')
    .addOption(jsonOption())
    .action(action(async (dir: string, flags) => {
      const o = await withSources(dir, flags)
      // One JSON object per line (NDJSON), so that programs can follow the daemon's events.
      const emit = (event: object, human: string): void => printEvent(!!o.json, event, () => human)
      // R-DHT-2: NATS unreachable is no reason not to share: the daemon runs on the swarm and
      // joins NATS when it answers (its statechart retries with backoff).
      const nc = await optionalNats(o, 'upswarm-daemon', 'running on the swarm; retrying in the background', DAEMON_PING_MS)
      const inspecting = await inspectIfAsked(o, 'daemon', nc)
      const dial = nc ? undefined : await daemonConnect(o)
      // A connection reached late carries the inspection too (issue 12).
      const connect = dial && (async () => {
        const late = await dial()
        inspecting.attach(late)
        return late
      })
      // The updater is loaded at start although a daemon may share for days without an update: it
      // adds 0.2 MiB of heap (issue 13 item 5), and a chunk loaded at the first update would be
      // missing if the installed upswarm was replaced meanwhile.
      const [{ startDaemon }, { openUpdate, prefetchRelease, warmUp }] = await Promise.all([import('../share-daemon/index.ts'), updaterModule()])
      await runRole('daemon', async () => {
        // The client process composes its two actors: the daemon runs the updater as its child.
        const daemon: Daemon = await startDaemon({
          dir, updater: openUpdate, prefetch: (d, source) => prefetchRelease(d, { source }), ...(nc ? { nc } : {}), ...(connect ? { connect } : {}), ...trackerUrls(o.tracker), bootstrap: o.bootstrap, host: o.host, port: o.port,
          auto: !!o.auto, ...(o.threads ? { threads: o.threads } : {}), ...(hooksOf(o) ? { hooks: hooksOf(o)! } : {}),
          ...(o.ring ? { ring: String(o.ring) } : {}), ...(o.creds ? { stageKey: await stageKeyOf(String(o.creds)) } : {}), fleet: true, maxUploadRate: o.maxUploadRate, ...(o.swarmIdentity ? { swarmIdentity: o.swarmIdentity } : {}), ...siteOf(o.site), log: stderrLog(false),
        })
        daemon.on('release.available', (rev) => emit({ event: 'release.available', rev }, `upgrade notice: r${rev} is available`))
        daemon.on('release.prefetched', (rev) => emit({ event: 'release.prefetched', rev }, `r${rev}: release verified and its changed tree nodes fetched ahead`))
        daemon.on('feed.release', (rev) => emit({ event: 'feed.release', rev }, `release feed: holds r${rev} (passed on to peers)`))
        daemon.on('release.doc', (rev) => emit({ event: 'release.doc', rev }, `release document of r${rev} verified (passed on to peers)`))
        daemon.on('update.started', (from, to) => emit({ event: 'update.started', from, to }, `updating r${from} → r${to}`))
        daemon.on('update.done', (r) => emit({ event: 'update.done', ...updateJson(r) }, updateSummary(r)))
        daemon.on('update.held', (rev, newest) => emit({ event: 'update.held', rev, newest },
          `holding r${rev} (rolled back): r${newest} is available; \`upswarm update ${dir} --rev ${newest}\` installs it`))
        daemon.on('update.reverted', (rev, to, err) => emit({ event: 'update.reverted', rev, to, error: err.toJSON() }, err.message))
        daemon.on('update.failed', (err) => emit({ event: 'update.failed', error: err.toJSON() }, `update failed: ${err.message}`))
        daemon.on('tracker.status', (s) => emit({ event: 'tracker.status', status: s }, `tracker: ${s}`))
        daemon.on('nats.retrying', (attempt, waitMs, err) =>
          emit({ event: 'nats.retrying', attempt, waitMs, error: err.toJSON() }, `NATS unreachable (${err.message}); retrying in ${Math.round(waitMs / 1000)} s`))
        daemon.on('nats.connected', () => emit({ event: 'nats.connected' }, 'NATS reached: following releases and servers'))
        daemon.on('nats.failed', (err) => emit({ event: 'nats.failed', error: err.toJSON() }, `NATS: ${err.message}; running on the swarm alone`))
        // The first update after days of sharing starts warm (issue 15 item 4).
        void warmUp().catch(() => undefined)
        const connected = (key: string, via: string): void => emit({ event: 'peer.connected', peer: key, via }, `peer ${key.slice(0, 12)}… connected over ${via}`)
        for (const c of daemon.connections()) connected(c.key, c.via)
        daemon.on('peer.connected', connected)
        if (process.env.UPSWARM_DEBUG_HEAP) {
          const { memoryEvent } = await import('./memory.ts')
          const memory = (when: string): void => {
            const m = memoryEvent(when)
            emit(m, `memory (${when}): ${JSON.stringify(m)}`)
          }
          memory('ready')
          daemon.on('update.done', () => memory('update.done'))
          process.on('SIGUSR2', () => memory('signal'))
        }
        const { daemonMetrics } = await import('../share-daemon/metrics.ts')
        const metrics = await serveMetricsIfAsked(o.metricsPort, 'daemon', () => daemonMetrics(daemon))
        // The copy's file monitor runs beside the daemon; one that cannot start (another monitor,
        // the inotify watch limit) leaves status walking the tree, and says why.
        const monitor = o.monitor === false ? undefined : await startMonitorOf(dir, stderrLog(false)).catch((err: unknown) => {
          emit({ event: 'monitor.failed', error: { message: errorMessage(err) } }, `file monitor not started: ${errorMessage(err)}; status lstats every path`)
          return undefined
        })
        // Issue 15 item 4: `upswarm update DIR` hands its run to this daemon through the copy's control socket.
        const { serveControl } = await import('../share-daemon/control.ts')
        const control = await serveControl({ dir, update: (request) => daemon.updateNow(request), log: stderrLog(false) }).catch((err: unknown) => {
          emit({ event: 'control.failed', error: { message: errorMessage(err) } }, `control socket not opened: ${errorMessage(err)}; \`upswarm update\` of this copy runs on its own`)
          return undefined
        })
        return {
          ready: { port: daemon.port, publicKey: daemon.publicKey, peerId: daemon.peerId, rev: daemon.rev(), ...(metrics.url ? { metrics: metrics.url } : {}), ...(monitor ? { monitor: monitor.socket } : {}), ...(control ? { control: control.socket } : {}) },
          close: async () => {
            await control?.close()
            await monitor?.close()
            await metrics.close()
            // What this client gave back to the swarm, said once at the end (R-SHARE).
            emit({ event: 'daemon.stopped', uploadedBytes: daemon.uploaded(), peers: daemon.connections().length },
              `stopped; served ${formatBytes(daemon.uploaded())} to peers over ${daemon.connections().length} connection(s)`)
            await daemon.close()
            await inspecting.stop()
            await nc?.close()
          },
        }
      })
    }))

  program
    .command('monitor <dir>')
    .description('watch the working copy so that `status` lstats only what changed (issue 13 item 2); the sharing daemon runs one itself')
    .action(action(async (dir: string) => {
      await runRole('monitor', async () => {
        const monitor = await startMonitorOf(dir, stderrLog(false))
        void monitor.failed.then((err) => {
          process.stderr.write(`${err.message}\n`)
          process.exit(1)
        })
        return {
          ready: { socket: monitor.socket, directories: monitor.directories() },
          close: () => monitor.close(),
        }
      })
    }))
}

async function startMonitorOf(dir: string, log: (line: string) => void): Promise<import('../monitor/index.ts').Monitor> {
  const { startMonitor } = await import('../monitor/index.ts')
  return startMonitor({ dir, log })
}
