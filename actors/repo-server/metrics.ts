// Issue 16 item 5: a repository server's Prometheus metrics (docs/ops.md, "Metrics"), read when scraped.
import { jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { Metrics, serviceRequestMetrics } from '../../infra/metrics/prometheus.ts'
import { RELEASE_STREAM } from '../../infra/nats/names.ts'
import type { RepoServer } from './index.ts'

export function repoServerMetrics(server: RepoServer, nc: NatsConnection): Metrics {
  const m = new Metrics()
  serviceRequestMetrics(m, 'upswarm_server', () => server.serviceStats())
  m.collect('upswarm_server_bytes_sent_total', 'counter', 'bytes served, by way: NATS range and tree-node requests, the bulk port (ranges over HTTPS), or the swarm (the server as a seed peer)', () => {
    const hb = server.heartbeat()
    const bulk = hb.bytesServedBulk ?? 0
    return [{ labels: { via: 'nats' }, value: hb.bytesServed - bulk }, { labels: { via: 'bulk' }, value: bulk }, { labels: { via: 'swarm' }, value: hb.swarm.bytesUp }]
  })
  m.collect('upswarm_server_ranges_withdrawn_total', 'counter', 'range requests their clients withdrew before the server sent them (the piece came from a peer first)', () =>
    [{ value: server.heartbeat().rangesWithdrawn ?? 0 }])
  m.collect('upswarm_server_ranges_busy_total', 'counter', 'range requests answered busy: the upload queue was longer than their client waits (they ask again, ready to wait)', () =>
    [{ value: server.heartbeat().rangesBusy ?? 0 }])
  m.gauge('upswarm_server_requests_in_flight', 'NATS requests being answered now', () => server.heartbeat().inflight)
  m.gauge('upswarm_server_swarm_peers', 'swarm connections of the server as a seed peer', () => server.heartbeat().swarm.peers)
  m.collect('upswarm_server_synced_revision', 'gauge', 'newest revision of each product the server has synced (R-SERVER)', () =>
    Object.entries(server.store.synced).map(([product, rev]) => ({ labels: { product }, value: rev })))
  m.collect('upswarm_server_sync_lag_messages', 'gauge', `messages of ${RELEASE_STREAM} stored after the last one this server synced (0: in sync)`, async () => {
    const { state } = await (await jetstreamManager(nc, { checkAPI: false })).streams.info(RELEASE_STREAM)
    return [{ value: Math.max(0, state.last_seq - server.store.lastSeq) }]
  })
  m.gauge('upswarm_server_parked_releases', 'releases the server gave up syncing (issue 11 item 6; `upswarm alerts`)', () => server.store.parked.length)
  return m
}
