// `upswarm fleet` (issue 16 item 3): the clients' newest reports and each release's rollout, as an operator (admin creds) sees them.
import type { Command } from 'commander'
import { action, credsOption, jsonOption, natsOption, tlsCaOption } from './common.ts'
import { formatBytes, printResult } from './output.ts'
import type { FleetView } from '../operator/fleet.ts'

export function registerFleetCommand(program: Command): void {
  program
    .command('fleet')
    .description('the fleet (issue 16 item 3): which clients are on which revision, each release\'s rollout (share, paused, halted), failed or reverted installs, the share of bytes from peers (admin creds)')
    .option('--product <uuid>', 'only this product')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(jsonOption())
    .action(action(async (o) => {
      const [{ connectNats }, { fleetView }] = await Promise.all([import('../../infra/nats/connect.ts'), import('../operator/fleet.ts')])
      const nc = await connectNats(o.nats, 'upswarm-fleet', o)
      try {
        const view = await fleetView(nc, o.product === undefined ? undefined : String(o.product))
        for (const b of view.bad) process.stderr.write(`upswarm: unreadable fleet report ${b.subject} (seq ${b.seq}): ${b.reason}\n`)
        printResult(!!o.json, view, () => fleetLines(view).join('\n'))
      } finally {
        await nc.close()
      }
    }))
}

function fleetLines(view: FleetView): string[] {
  if (view.products.length === 0) return ['no product in the root and no client has reported yet']
  const lines: string[] = []
  for (const p of view.products) {
    const share = p.peerShare.share === null ? '-' : `${(p.peerShare.share * 100).toFixed(1)}%`
    lines.push(`${p.product}: ${p.clients.length} client(s); last updates ${formatBytes(p.peerShare.bytesFromPeers)} from peers, ${formatBytes(p.peerShare.bytesFromServers)} from servers (peer share ${share})`)
    for (const r of p.releases) {
      const rollout = r.rollout ? `${r.rollout.state} at ${r.rollout.percent / 100}%${r.rollout.rings.length ? ` + rings ${r.rollout.rings.join(',')}` : ''} (statement ${r.rollout.seq})` : 'not staged'
      lines.push(`  r${String(r.rev).padEnd(5)} ${String(r.clients.length).padStart(5)} client(s)  ${rollout.padEnd(36)} ${r.clients.join(' ')}`)
    }
    for (const f of p.failures) lines.push(`  FAILED ${f.client}: ${f.state}${f.rev !== undefined ? ` r${f.rev}` : ''}${f.to !== undefined ? ` → r${f.to}` : ''}${f.at ? ` at ${f.at}` : ''}${f.reason ? `: ${f.reason}` : ''}`)
  }
  if (view.note) lines.push(`note: ${view.note}`)
  return lines
}
