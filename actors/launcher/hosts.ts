// Issue 17 item 1: the addresses `upswarm up` is given for one host of a deployment, checked
// before anything starts, so a typo is an error naming the flag, not a node that never routes.
import { isIP } from 'node:net'
import { UpswarmError } from '../../infra/errors.ts'

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** An IP address or a host name (what `--listen`, `--advertise`, `--name` take). */
export function hostArg(flag: string, value: string): string {
  const v = value.trim()
  if (isIP(v) || HOSTNAME.test(v)) return v
  throw new UpswarmError('UPSWARM_E_CONFIG', `${flag} ${JSON.stringify(value)}: expected an IP address or a host name (e.g. 10.0.0.5, nats1.example.net)`)
}

/** `--routes`: nats-route:// (or nats://) URLs with a host and a port, comma-separated. */
export function routeList(value: string): string[] {
  return value.split(',').map((r) => r.trim()).filter(Boolean).map((r) => {
    let url: URL
    try {
      url = new URL(r)
    } catch {
      throw new UpswarmError('UPSWARM_E_CONFIG', `--routes: ${JSON.stringify(r)} is not a URL; expected nats-route://ADDR:PORT (another host's --cluster-port)`)
    }
    if (!['nats-route:', 'nats:'].includes(url.protocol) || !url.hostname || !url.port) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `--routes: ${JSON.stringify(r)}: expected nats-route://ADDR:PORT (another host's --cluster-port)`)
    }
    return r
  })
}
