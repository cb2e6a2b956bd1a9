// Issue 16 item 5: the notary's Prometheus metrics (docs/ops.md, "Metrics"): what it signed and
// halted, counted from the events it logs, and the root version it signs under, read when scraped.
import { Metrics } from '../../infra/metrics/prometheus.ts'

export interface NotaryMetrics {
  metrics: Metrics
  /** Wraps the notary's log: each event counts before it is written. */
  counting(log: (e: Record<string, unknown>) => void): (e: Record<string, unknown>) => void
}

export function notaryMetrics(rootVersion: () => number): NotaryMetrics {
  const m = new Metrics()
  const statements = m.counter('upswarm_notary_statements_total', 'freshness statements signed, by product (issue 10 item 7)', [])
  const halts = m.counter('upswarm_notary_halts_total', 'revisions halted after failing their health check on enough distinct clients, by product (issue 16 item 2)', [])
  const errors = m.counter('upswarm_notary_errors_total', 'signing or halting that failed, and roots refused')
  const lastSigned = new Map<string, number>()
  m.gauge('upswarm_notary_root_version', 'version of the root of trust the notary signs under', rootVersion)
  m.collect('upswarm_notary_last_statement_timestamp_seconds', 'gauge', 'when the newest freshness statement of each product was signed (Unix time)',
    () => [...lastSigned].map(([product, value]) => ({ labels: { product }, value })))
  return {
    metrics: m,
    counting: (log) => (e) => {
      const product = typeof e.product === 'string' ? e.product : undefined
      if (e.event === 'fresh' && product) {
        statements.inc({ product })
        lastSigned.set(product, Math.round(Date.now() / 1000))
      } else if (e.event === 'halt' && product) halts.inc({ product })
      else if (e.event === 'error') errors.inc()
      log(e)
    },
  }
}
