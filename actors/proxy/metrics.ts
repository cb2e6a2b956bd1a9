// Issue 16 item 5: the proxy's Prometheus metrics (docs/ops.md, "Metrics"), read when scraped.
import { Metrics, serviceRequestMetrics } from '../../infra/metrics/prometheus.ts'
import type { Proxy } from './index.ts'

export function proxyMetrics(proxy: Proxy): Metrics {
  const m = new Metrics()
  serviceRequestMetrics(m, 'upswarm_proxy', () => proxy.serviceStats())
  const members = () => proxy.pool.view()
  m.collect('upswarm_proxy_pool_servers', 'gauge', 'repository servers in the pool, by state (R-PROXY: only healthy ones are assigned requests)', () => {
    const byState = new Map<string, number>()
    for (const s of members()) byState.set(s.state, (byState.get(s.state) ?? 0) + 1)
    return [...byState].map(([state, value]) => ({ labels: { state }, value }))
  })
  m.collect('upswarm_proxy_assigned_total', 'counter', 'range requests assigned to each server (R-ACCEL-1, weighted round-robin)', () => members().map((s) => ({ labels: { server: s.id }, value: s.assigned })))
  m.collect('upswarm_proxy_server_bytes_sent_total', 'counter', 'bytes each server says it served, from its heartbeats', () => members().map((s) => ({ labels: { server: s.id }, value: s.bytesServed })))
  return m
}
