import { Option } from 'commander'
import { UpswarmError } from '../../infra/errors.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import type { InspectRole } from '../../infra/nats/names.ts'
import { siteLabel } from '../../infra/swarm/site-label.ts'

export const natsOption = (): Option => new Option('--nats <urls>', 'NATS servers, comma-separated').env('UPSWARM_NATS')
/** Issue 10: the identity (NATS creds file) and the cluster's CA, on every command that uses NATS. */
export const credsOption = (): Option => new Option('--creds <file>', 'NATS credentials of this identity (endpoints.json names them)').env('UPSWARM_CREDS')
export const tlsCaOption = (): Option => new Option('--tls-ca <file>', "CA of the NATS servers' TLS certificates (endpoints.json: tlsCa)").env('UPSWARM_TLS_CA')
/** Issue 10 item 4: the trust file naming each product's publisher keys (infra/release/trust.ts). */
export const trustOption = (what: string): Option => new Option('--trust <file>', what).env('UPSWARM_TRUST')
export const swarmIdentityOption = (): Option => new Option('--swarm-identity <file>', 'this node\'s fleet identity for private swarms (`creds issue` writes it; endpoints.json: swarmIdentities)').env('UPSWARM_SWARM_IDENTITY')
export const jsonOption = (): Option => new Option('--json', 'print the result as JSON on stdout')
/** Issue 14 item 4: this machine's locality, told to peers (infra/swarm/site-label.ts). */
export const siteOption = (): Option => new Option('--site <label>', 'this machine\'s site or subnet: peers of the same site are preferred, so a WAN link carries each piece about once (auto: the /24 of its first IPv4 address)')
  .env('UPSWARM_SITE').argParser((value: string) => {
    // Checked as given (a usage error, exit 2, before anything runs); `auto` is derived where it
    // is used. The error names where the value came from: the flag, or the environment.
    const flagged = process.argv.some((a) => a === '--site' || a.startsWith('--site='))
    if (value !== 'auto') siteLabel(value, flagged ? '--site' : 'UPSWARM_SITE')
    return value
  })

/**
 * Issue 11 item 9: numbers on the command line are decimal digits and nothing else (`-1`, `abc`,
 * `0x1`, ` 1`, `1e1` are usage errors naming the flag, exit 2). Fifteen digits stay exact.
 */
export function intArg(name: string) {
  return (value: string): number => {
    if (!/^[0-9]{1,15}$/.test(value)) throw new UpswarmError('UPSWARM_E_CONFIG', `${name} ${JSON.stringify(value)}: expected a whole number written in decimal digits (0, 1, 2, …)`)
    return Number(value)
  }
}

/** A revision: decimal, from 1 up. */
export function revArg(name: string) {
  return (value: string): number => {
    if (!/^[1-9][0-9]{0,14}$/.test(value)) throw new UpswarmError('UPSWARM_E_CONFIG', `${name} ${JSON.stringify(value)}: a revision is a decimal number from 1 up (\`upswarm history DIR\` lists them)`)
    return Number(value)
  }
}

/** Runs a command body, turning any failure into the standard error report and exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const { reportError } = await import('./output.ts')
    try {
      await fn(...args)
    } catch (err) {
      process.exitCode = reportError(err, process.argv.includes('--json'))
    }
  }
}

/** Issue 12 item 3: every actor of the process publishes its inspection events on `upswarm.inspect.<role>.<id>`. */
export const inspectOption = (): Option =>
  new Option('--inspect', "publish every actor's inspection events on upswarm.inspect.<role>.<identity> (at most 50 messages/s; `upswarm inspect` shows them)").env('UPSWARM_INSPECT')

/**
 * Starts this process's inspection when asked (`--inspect`, UPSWARM_INSPECT=1); returns what
 * stops it, draining what waits, before the connection closes. Without NATS yet (a daemon
 * starting offline), the inspector queues within its bounds until `attach(nc)`.
 */
export async function inspectIfAsked(o: { inspect?: boolean }, role: InspectRole, nc?: NatsConnection): Promise<{ attach(nc: NatsConnection): void; stop(): Promise<void> }> {
  if (!o.inspect) return { attach: () => {}, stop: async () => {} }
  const { startInspection, stopInspection } = await import('../../infra/inspect/nats-inspector.ts')
  const inspector = startInspection(role, nc)
  return { attach: (late) => inspector.attach(late), stop: stopInspection }
}

/** Issue 16 item 5: a role's Prometheus metrics on 127.0.0.1 (docs/ops.md, "Metrics"). */
export const metricsPortOption = (): Option =>
  new Option('--metrics-port <port>', 'serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0: any free port; the URL is logged and in the READY line)').argParser(intArg('--metrics-port'))

/** Starts the metrics listener when `--metrics-port` was given; says where on stderr. */
export async function serveMetricsIfAsked(port: number | undefined, role: string, build: () => import('../../infra/metrics/prometheus.ts').Metrics): Promise<{ url?: string; close(): Promise<void> }> {
  if (port === undefined) return { close: async () => {} }
  const { serveMetrics } = await import('../../infra/metrics/prometheus.ts')
  const listener = await serveMetrics(build(), port)
  process.stderr.write(`${role}: metrics at ${listener.url}\n`)
  return listener
}
