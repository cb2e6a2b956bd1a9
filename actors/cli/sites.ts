// `upswarm mirrors`: a site's mirrors of the core's streams (and, at the core, its sources of the
// sites' alerts and fleet reports), their lag and last contact (issue 17 items 2 and 5: a site
// whose mirror lags is a status an operator can see, never a silent stall). `upswarm site add`:
// the core sources a site's alerts and fleet reports.
import type { Command } from 'commander'
import { action, credsOption, intArg, jsonOption, natsOption, tlsCaOption } from './common.ts'
import { printResult } from './output.ts'

export function registerSiteCommands(program: Command): void {
  program
    .command('mirrors')
    .description("a site's mirrors of the core's streams, or the core's sources of the sites' alerts and fleet reports (docs/deploy.md): messages, lag, last contact; exit 1 when one lags or has not heard from the core for --stale-after seconds")
    .option('--stale-after <s>', 'a mirror silent this long counts as cut off (default 30)', intArg('--stale-after'), 30)
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(jsonOption())
    .action(action(async (o) => {
      const [{ connectNats }, { mirrorStatus }] = await Promise.all([import('../../infra/nats/connect.ts'), import('../../infra/nats/site-mirrors.ts')])
      const nc = await connectNats(o.nats, 'upswarm-mirrors', o)
      try {
        const mirrors = await mirrorStatus(nc)
        const behind = (m: (typeof mirrors)[number]): boolean => m.lag > 0 || m.activeMs < 0 || m.activeMs > o.staleAfter * 1000 || !!m.error
        printResult(!!o.json, { mirrors, behind: mirrors.filter(behind).map((m) => m.stream) }, () => mirrors.length === 0
          ? 'no mirrors or site sources in this domain (a site made by `up --leaf-remote … --core-domain …` has mirrors; the core has sources after `upswarm site add`)'
          : mirrors.map((m) => `${m.stream.padEnd(24)} ${String(m.messages).padStart(8)} msgs  last seq ${m.lastSeq}  lag ${m.lag}  ` +
            `${m.activeMs < 0 ? `never heard from ${m.origin}` : `heard from ${m.origin} ${(m.activeMs / 1000).toFixed(1)} s ago`}${m.error ? `  error: ${m.error}` : ''}${behind(m) ? '  BEHIND' : ''}  (${m.source})`).join('\n'))
        if (mirrors.some(behind)) process.exitCode = 1
      } finally {
        await nc.close()
      }
    }))
  const site = program.command('site').description('sites of a deployment (docs/deploy.md)')
  site
    .command('add')
    .argument('<domains...>', "each site's JetStream domain (its `up --js-domain`)")
    .description("at the core, as admin: the core's alert and fleet streams source each site's own copy, so the notary and `upswarm fleet` see the site's clients (`mirrors` at the core shows each source's lag)")
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(jsonOption())
    .action(action(async (domains: string[], o) => {
      const [{ connectNats }, { addSiteSources }, { domainArg }] = await Promise.all([
        import('../../infra/nats/connect.ts'), import('../../infra/nats/site-mirrors.ts'), import('../launcher/hosts.ts')])
      for (const d of domains) domainArg('site add', d)
      const nc = await connectNats(o.nats, 'upswarm-site-add', o)
      try {
        const added = await addSiteSources(nc, domains)
        printResult(!!o.json, { added }, () => added.length ? added.map((a) => `sources ${a}`).join('\n') : `every stream already sources ${domains.join(', ')}`)
      } finally {
        await nc.close()
      }
    }))
}
