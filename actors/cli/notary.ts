// `upswarm notary`: the role that signs freshness statements (issue 10 item 7), started by `up`
// with its own identity. It holds the fresh key only, never a publish key.
import type { Command } from 'commander'
import { action, credsOption, intArg, metricsPortOption, natsOption, serveMetricsIfAsked, tlsCaOption } from './common.ts'
import { runRole } from './role.ts'

export function registerNotaryCommand(program: Command): void {
  program
    .command('notary')
    .description('sign freshness statements: the newest verified release of every product of the root, on every release, root and interval')
    .requiredOption('--fresh-key <file>', "the root's fresh key (upswarm keygen file)")
    .requiredOption('--root <file>', 'the root document to pin; newer versions come from UPSWARM_META')
    .option('--data <dir>', 'where the verified root chain is kept', 'upswarm-notary')
    .option('--interval <seconds>', 're-sign every product this often', intArg('--interval'), 3600)
    .option('--lifetime <seconds>', "how long a statement lives (at most the root's fresh.maxLifetime)", intArg('--lifetime'))
    .option('--halt-key <file>', "the root's halt key of the products (issue 16): halt a revision that failed its health check on --max-failures distinct clients")
    .option('--max-failures <n>', 'distinct clients whose health check of a revision failed before the notary halts it (with --halt-key)', intArg('--max-failures'), 3)
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(metricsPortOption())
    .action(action(async (o) => {
      const [{ connectNats }, { startNotary }, { readKeyFile }, { readFile }] = await Promise.all([
        import('../../infra/nats/connect.ts'), import('../notary/index.ts'), import('../../infra/release/keys.ts'), import('node:fs/promises')])
      const freshKey = await readKeyFile(o.freshKey)
      const haltKey = o.haltKey ? await readKeyFile(o.haltKey) : undefined
      const rootText = (await readFile(o.root, 'utf8')).trim()
      const nc = await connectNats(o.nats, 'upswarm-notary', o)
      const { notaryMetrics } = await import('../notary/metrics.ts')
      let version = (): number => 0
      const counted = notaryMetrics(() => version())
      const log = counted.counting((e: Record<string, unknown>): void => {
        process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), role: 'notary', ...e })}\n`)
      })
      await runRole('notary', async () => {
        const metrics = await serveMetricsIfAsked(o.metricsPort, 'notary', () => counted.metrics)
        const notary = await startNotary({
          nc, freshKey, rootText, rootWhere: o.root, dataDir: o.data, intervalS: o.interval, ...(o.lifetime !== undefined ? { lifetimeS: o.lifetime } : {}), log,
          ...(haltKey ? { haltKey, maxFailures: Math.max(1, o.maxFailures) } : {}),
        })
        version = () => notary.store.version
        return {
          ready: { root: notary.store.version, products: Object.keys(notary.store.root?.products ?? {}), ...(metrics.url ? { metrics: metrics.url } : {}) },
          close: async () => { await metrics.close(); await notary.close(); await nc.drain() },
        }
      })
    }))
}
