import { Option } from 'commander'

export const natsOption = (): Option => new Option('--nats <urls>', 'NATS servers, comma-separated').env('UPSWARM_NATS')
/** Issue 10: the identity (NATS creds file) and the cluster's CA, on every command that uses NATS. */
export const credsOption = (): Option => new Option('--creds <file>', 'NATS credentials of this identity (endpoints.json names them)').env('UPSWARM_CREDS')
export const tlsCaOption = (): Option => new Option('--tls-ca <file>', "CA of the NATS servers' TLS certificates (endpoints.json: tlsCa)").env('UPSWARM_TLS_CA')
/** Issue 10 item 4: the trust file naming each product's publisher keys (infra/release/trust.ts). */
export const trustOption = (what: string): Option => new Option('--trust <file>', what).env('UPSWARM_TRUST')
export const swarmIdentityOption = (): Option => new Option('--swarm-identity <file>', 'this node\'s fleet identity for private swarms (`creds issue` writes it; endpoints.json: swarmIdentities)').env('UPSWARM_SWARM_IDENTITY')
export const jsonOption = (): Option => new Option('--json', 'print the result as JSON on stdout')

export function intArg(name: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer (got ${value})`)
    return n
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
