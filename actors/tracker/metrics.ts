// Issue 16 item 5: the tracker's Prometheus metrics (docs/ops.md, "Metrics"), read when scraped.
import { Metrics } from '../../infra/metrics/prometheus.ts'
import type { Tracker } from './index.ts'

export function trackerMetrics(tracker: Tracker): Metrics {
  const m = new Metrics()
  m.collect('upswarm_tracker_requests_total', 'counter', 'requests answered over every door (NATS, HTTP, UDP), by operation; scrape counts the swarms asked about', () =>
    Object.entries(tracker.registry.requests).map(([op, value]) => ({ labels: { op }, value })))
  m.gauge('upswarm_tracker_peers', 'peers the tracker lists now, all products (R-PEERLIST)', () => tracker.registry.size)
  m.collect('upswarm_tracker_dropped_writes_total', 'counter', 'peer bucket writes given up on (the peers\' next announces write them again)', () => [{ value: tracker.registry.droppedWrites }])
  return m
}
