// Issue 16 item 5: the sharing daemon's Prometheus metrics (docs/ops.md, "Metrics"): what it took
// from servers and peers, what it gave, the pieces that failed verification, and where its staged
// rollout has it. Counters of updates are kept from the daemon's own events.
import { Metrics } from '../../infra/metrics/prometheus.ts'
import type { Daemon } from './index.ts'

export function daemonMetrics(daemon: Daemon): Metrics {
  const m = new Metrics()
  const received = m.counter('upswarm_daemon_bytes_received_total', 'bytes the updates received, by source (R-ACCEL-2: repository servers or peers)', [{ source: 'server' }, { source: 'peer' }])
  const failures = m.counter('upswarm_daemon_piece_failures_total', 'pieces from peers that failed verification and were fetched again (R-VERIFY)')
  const updates = m.counter('upswarm_daemon_updates_total', 'updates by result: installed, reverted (failed its health check or post-install hook), failed', [{ result: 'installed' }, { result: 'reverted' }, { result: 'failed' }])
  daemon.on('update.done', (r) => {
    received.inc({ source: 'server' }, r.bytesFromServers)
    received.inc({ source: 'peer' }, r.bytesFromPeers)
    failures.inc({}, r.sources.badPieces)
    updates.inc({ result: 'installed' })
  })
  daemon.on('update.reverted', () => updates.inc({ result: 'reverted' }))
  daemon.on('update.failed', () => updates.inc({ result: 'failed' }))
  m.collect('upswarm_daemon_bytes_sent_total', 'counter', 'bytes served to peers (R-SHARE)', () => [{ value: daemon.uploaded() }])
  m.gauge('upswarm_daemon_peers_connected', 'peer connections open now', () => daemon.peers.all().filter((p) => !p.session.closed).length)
  m.gauge('upswarm_daemon_installed_revision', 'the working copy\'s revision', () => daemon.rev())
  m.gauge('upswarm_daemon_rollout_stage', 'this client\'s stage for staged rollouts, basis points [0, 10000): a rollout at P% includes it when stage < 100·P', () => daemon.stage)
  return m
}
