// Issue 16 item 5: Prometheus metrics in the text exposition format (version 0.0.4), written by
// hand: prom-client is not among our dependencies, and the format is small (docs/decisions.md,
// "Prometheus text by hand"). Every family has its HELP and TYPE lines; values are read when
// scraped (collectors) or kept here (counters). One HTTP listener per process, on 127.0.0.1.
import type { Server } from 'node:http'
import { builtin } from '../lazy-builtin.ts'
import type { AddressInfo } from 'node:net'
import { UpswarmError, errorMessage } from '../errors.ts'

export type Labels = Record<string, string>
export interface Sample { labels?: Labels; value: number }
export type MetricType = 'counter' | 'gauge'

interface Family {
  name: string
  help: string
  type: MetricType
  collect: () => Sample[] | Promise<Sample[]>
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
const escapeValue = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
const formatValue = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v))

export interface Counter {
  inc(labels?: Labels, by?: number): void
}

export class Metrics {
  readonly #families: Family[] = []

  /** A family whose samples are read when scraped. */
  collect(name: string, type: MetricType, help: string, collect: () => Sample[] | Promise<Sample[]>): void {
    if (!NAME_RE.test(name)) throw new UpswarmError('UPSWARM_E_CONFIG', `metric name ${JSON.stringify(name)} is not a Prometheus name`)
    if (type === 'counter' && !name.endsWith('_total')) throw new UpswarmError('UPSWARM_E_CONFIG', `counter ${name} must end in _total`)
    if (this.#families.some((f) => f.name === name)) throw new UpswarmError('UPSWARM_E_CONFIG', `metric ${name} is registered twice`)
    this.#families.push({ name, help, type, collect })
  }

  /** A gauge of one value, read when scraped. */
  gauge(name: string, help: string, value: () => number): void {
    this.collect(name, 'gauge', help, () => [{ value: value() }])
  }

  /** A counter kept here, per label set (the label sets seen so far are exposed, from 0 for `initial`). */
  counter(name: string, help: string, initial: Labels[] = [{}]): Counter {
    const values = new Map<string, Sample>()
    const key = (labels: Labels): string => JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))
    for (const labels of initial) values.set(key(labels), { labels, value: 0 })
    this.collect(name, 'counter', help, () => [...values.values()])
    return {
      inc(labels = {}, by = 1) {
        if (!(by >= 0)) throw new UpswarmError('UPSWARM_E_CONFIG', `counter ${name} cannot go down (by ${by})`)
        const k = key(labels)
        const s = values.get(k)
        if (s) s.value += by
        else values.set(k, { labels, value: by })
      },
    }
  }

  /** The exposition text; a collector that fails is left out with a comment saying why. */
  async render(): Promise<string> {
    const out: string[] = []
    for (const f of this.#families) {
      let samples: Sample[]
      try {
        samples = await f.collect()
      } catch (err) {
        out.push(`# ${f.name} not collected: ${escapeHelp(errorMessage(err))}`)
        continue
      }
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`)
      for (const s of samples) {
        const labels = Object.entries(s.labels ?? {})
        for (const [l] of labels) if (!LABEL_RE.test(l)) throw new UpswarmError('UPSWARM_E_CONFIG', `label ${JSON.stringify(l)} of ${f.name} is not a Prometheus label name`)
        out.push(`${f.name}${labels.length ? `{${labels.map(([l, v]) => `${l}="${escapeValue(v)}"`).join(',')}}` : ''} ${formatValue(s.value)}`)
      }
    }
    return `${out.join('\n')}\n`
  }
}

export interface MetricsListener {
  /** http://127.0.0.1:PORT/metrics */
  url: string
  close(): Promise<void>
}

/** Serves `GET /metrics` on `host:port` (0: any free port); anything else is 404. */
export async function serveMetrics(metrics: Metrics, port: number, host = '127.0.0.1'): Promise<MetricsListener> {
  const server: Server = builtin('node:http').createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n')
      return
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': CONTENT_TYPE }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new UpswarmError('UPSWARM_E_CONFIG', `--metrics-port ${port}: cannot listen on ${host}:${port}: ${err.message}`, { cause: err })))
    server.listen(port, host, resolve)
  })
  const { port: bound } = server.address() as AddressInfo
  return {
    url: `http://${host}:${bound}/metrics`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** Requests and errors per endpoint of a NATS micro service, from the service's own counts. */
export function serviceRequestMetrics(metrics: Metrics, prefix: string, stats: () => Promise<Array<{ name: string; num_requests: number; num_errors: number }>>): void {
  metrics.collect(`${prefix}_requests_total`, 'counter', 'NATS requests handled, by operation', async () => (await stats()).map((e) => ({ labels: { op: e.name }, value: e.num_requests })))
  metrics.collect(`${prefix}_request_errors_total`, 'counter', 'NATS requests answered with an error, by operation', async () => (await stats()).map((e) => ({ labels: { op: e.name }, value: e.num_errors })))
}
