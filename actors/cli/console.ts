// `upswarm console` (issue 16 item 4): the fleet console on 127.0.0.1, its controls signed with
// --rollout-key. Composes the console role with its sources: the fleet view and the rollout of
// actors/operator, the proxy's stats, the alert stream.
import type { Command } from 'commander'
import { Option } from 'commander'
import { dirname } from 'node:path'
import { action, credsOption, inspectIfAsked, inspectOption, intArg, natsOption, tlsCaOption } from './common.ts'
import { runRole } from './role.ts'

/** Where the page listens unless --port says otherwise (inspect's is 8090). */
const DEFAULT_PORT = 8091

export function registerConsoleCommand(program: Command): void {
  program
    .command('console')
    .description('the fleet console (issue 16 item 4): a live page on 127.0.0.1 of the fleet by revision over time, each release\'s rollout with its controls, the server pool, the swarm offload and the alerts (admin creds); its URL carries a per-run token')
    .option('--port <port>', 'port of the page on 127.0.0.1 (0: any free port)', intArg('--port'), DEFAULT_PORT)
    .addOption(new Option('--rollout-key <file>', "the key the controls sign with: a rollout key the root names for the products (or their publish key); without it the controls are off").env('UPSWARM_ROLLOUT_KEY'))
    .option('--inspect-url <url>', 'the inspection page (`upswarm inspect`) the console links to for the live statecharts')
    .option('--inspect-port <port>', 'also serve the inspection page (as `upswarm inspect` does) from this process on 127.0.0.1 PORT (0: any free port), and link to it', intArg('--inspect-port'))
    .option('--token-file <file>', "also write this run's token to FILE (mode 0600), for agents and `up`")
    .option('--sample-interval <seconds>', 'how often the console reads the fleet, the pool and the alerts', intArg('--sample-interval'), 5)
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(inspectOption())
    .action(action(async (o) => {
      const { UpswarmError } = await import('../../infra/errors.ts')
      if (o.sampleInterval < 1) throw new UpswarmError('UPSWARM_E_CONFIG', `--sample-interval ${o.sampleInterval}: at least 1 second`)
      if (o.inspectUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(String(o.inspectUrl))) throw new UpswarmError('UPSWARM_E_CONFIG', `--inspect-url ${JSON.stringify(o.inspectUrl)}: expected an http:// URL (the one \`upswarm inspect\` prints)`)
      if (o.inspectUrl !== undefined && o.inspectPort !== undefined) throw new UpswarmError('UPSWARM_E_CONFIG', '--inspect-url and --inspect-port: give one (a page elsewhere, or one served here)')
      const [{ connectNats }, { startConsole }, { fleetView }, { rollout }, { readAlerts }, { requestJson }, { proxySubject }, { readKeyFile }, { writeFileAtomic }] = await Promise.all([
        import('../../infra/nats/connect.ts'), import('../console/index.ts'), import('../operator/fleet.ts'), import('../operator/rollout.ts'),
        import('../../infra/nats/alert-reader.ts'), import('../../infra/nats/request.ts'), import('../../infra/nats/names.ts'), import('../../infra/release/keys.ts'),
        import('../../infra/store/working-copy/atomic.ts')])
      const key = o.rolloutKey ? await readKeyFile(String(o.rolloutKey)) : undefined
      const nc = await connectNats(o.nats, 'upswarm-console', o)
      const inspecting = await inspectIfAsked(o, 'console', nc)
      await runRole('console', async () => {
        // The live statecharts beside the fleet: the inspection page served by this process (what `upswarm inspect` serves).
        const viewer = o.inspectPort !== undefined
          ? await (await import('../inspector/index.ts')).startInspectViewer({ nc, port: o.inspectPort, log: (m) => process.stderr.write(`console: inspect: ${m}\n`) })
          : undefined
        const inspectUrl = viewer?.url ?? (o.inspectUrl ? String(o.inspectUrl) : undefined)
        const fleetConsole = await startConsole({
          port: o.port,
          sampleIntervalMs: o.sampleInterval * 1000,
          ...(inspectUrl ? { inspectUrl } : {}),
          controls: key ? { enabled: true, keys: [key.publicKey] } : { enabled: false, reason: 'the console holds no rollout key: start it with --rollout-key FILE (a rollout key the root names for the product, or its publish key)' },
          sources: {
            fleet: () => fleetView(nc),
            pool: () => requestJson(nc, proxySubject('stats'), {}, 3000),
            alerts: async (sinceMs) => {
              const out: Awaited<ReturnType<import('../console/index.ts').ConsoleSources['alerts']>> = []
              await readAlerts(nc, { sinceMs }, (a) => out.push(a))
              return out
            },
            rollout: (r) => rollout({ nc, product: r.product, rev: r.rev, action: r.action, keys: [key!] }),
          },
          log: (m) => process.stderr.write(`console: ${m}\n`),
        })
        if (o.tokenFile) await writeFileAtomic(String(o.tokenFile), `${fleetConsole.token}\n`, dirname(String(o.tokenFile)), 0o600)
        process.stderr.write(`console: the fleet at ${fleetConsole.url}${key ? `; controls sign with ${key.publicKey}` : '; controls off (no --rollout-key)'}\n`)
        return {
          ready: { url: fleetConsole.url, origin: fleetConsole.origin, ...(viewer ? { inspect: viewer.url } : {}) },
          close: async () => { await fleetConsole.close(); await viewer?.close(); await inspecting.stop(); await nc.drain() },
        }
      })
    }))
}
