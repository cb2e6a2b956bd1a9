// `upswarm inspect`: the live actors of every process started with --inspect (issue 12 item 4).
import type { Command } from 'commander'
import { action, intArg, natsOption, credsOption, tlsCaOption } from './common.ts'
import { runRole } from './role.ts'

/** Where the page listens unless --port says otherwise. */
const DEFAULT_PORT = 8090
/** The WebSocket of @statelyai/inspect's inspector server (createInspectorServer's default port). */
const DEFAULT_STATELY_URL = 'ws://localhost:8080'

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('follow upswarm.inspect.> (processes started with --inspect): a live page of every actor and its statechart on 127.0.0.1, and with --stately, the Stately inspector')
    .option('--port <port>', `port of the page on 127.0.0.1 (0: any free port)`, intArg('--port'), DEFAULT_PORT)
    .option('--stately [url]', `also forward every message to the Stately inspector's WebSocket (default ${DEFAULT_STATELY_URL})`)
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .action(action(async (o) => {
      const [{ connectNats }, { startInspectViewer }] = await Promise.all([import('../../infra/nats/connect.ts'), import('../inspector/index.ts')])
      const nc = await connectNats(o.nats, 'upswarm-inspect', o)
      const statelyUrl = o.stately === undefined ? undefined : o.stately === true ? DEFAULT_STATELY_URL : String(o.stately)
      await runRole('inspect', async () => {
        const viewer = await startInspectViewer({ nc, port: o.port, ...(statelyUrl ? { statelyUrl } : {}), log: (m) => process.stderr.write(`inspect: ${m}\n`) })
        process.stderr.write(`inspect: the live actors at ${viewer.url}${statelyUrl ? `; forwarding to the Stately inspector at ${statelyUrl}` : ''}\n`)
        return { ready: { url: viewer.url, ...(statelyUrl ? { stately: statelyUrl } : {}) }, close: async () => { await viewer.close(); await nc.drain() } }
      })
    }))
}
