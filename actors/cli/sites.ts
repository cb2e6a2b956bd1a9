// `upswarm mirrors`: a site's mirrors of the core's streams, their lag and last contact (issue 17
// items 2 and 5: a site whose mirror lags is a status an operator can see, never a silent stall).
import type { Command } from 'commander'
import { action, credsOption, intArg, jsonOption, natsOption, tlsCaOption } from './common.ts'
import { printResult } from './output.ts'

export function registerSiteCommands(program: Command): void {
  program
    .command('mirrors')
    .description("a site's mirrors of the core's streams (docs/deploy.md): messages, lag, last contact with the core; exit 1 when one lags or has not heard from the core for --stale-after seconds")
    .option('--stale-after <s>', 'a mirror silent this long counts as cut off (default 30)', intArg('--stale-after'), 30)
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(jsonOption())
    .action(action(async (o) => {
      const [{ connectNats }, { mirrorStatus }] = await Promise.all([import('../../infra/nats/connect.ts'), import('../../infra/nats/site-mirrors.ts')])
      const nc = await connectNats(o.nats, 'upswarm-mirrors', o)
      try {
        const mirrors = await mirrorStatus(nc)
        const behind = (m: (typeof mirrors)[number]): boolean => m.lag > 0 || m.activeMs < 0 || m.activeMs > o.staleAfter * 1000 || !!m.error
        printResult(!!o.json, { mirrors, behind: mirrors.filter(behind).map((m) => m.stream) }, () => mirrors.length === 0
          ? 'no mirrors in this domain (a site made by `up --leaf-remote … --core-domain …` has them)'
          : mirrors.map((m) => `${m.stream.padEnd(24)} ${String(m.messages).padStart(8)} msgs  last seq ${m.lastSeq}  lag ${m.lag}  ` +
            `${m.activeMs < 0 ? 'never heard from the core' : `heard from the core ${(m.activeMs / 1000).toFixed(1)} s ago`}${m.error ? `  error: ${m.error}` : ''}${behind(m) ? '  BEHIND' : ''}  (${m.source})`).join('\n'))
        if (mirrors.some(behind)) process.exitCode = 1
      } finally {
        await nc.close()
      }
    }))
}
