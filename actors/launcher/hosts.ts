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

/** A JetStream domain name (`--js-domain`, `--core-domain`): letters, digits, - and _. */
export function domainArg(flag: string, value: string): string {
  if (/^[A-Za-z0-9_-]{1,64}$/.test(value)) return value
  throw new UpswarmError('UPSWARM_E_CONFIG', `${flag} ${JSON.stringify(value)}: a JetStream domain is letters, digits, - and _ (e.g. core, site-a)`)
}

/** `--leaf-listen ADDR:PORT`. */
export function hostPort(flag: string, value: string): { host: string; port: number } {
  const i = value.lastIndexOf(':')
  const port = Number(value.slice(i + 1))
  if (i <= 0 || !/^[0-9]{1,5}$/.test(value.slice(i + 1)) || port < 1 || port > 65535) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${flag} ${JSON.stringify(value)}: expected ADDR:PORT (e.g. 10.0.0.5:7422)`)
  }
  return { host: hostArg(flag, value.slice(0, i).replace(/^\[|\]$/g, '')), port }
}

/** `--leaf-remote`: tls:// (or nats-leaf://) URLs of the core's leaf listeners. */
export function leafUrls(value: string): string[] {
  return value.split(',').map((r) => r.trim()).filter(Boolean).map((r) => {
    let url: URL | undefined
    try { url = new URL(r) } catch { /* below */ }
    if (!url || !['tls:', 'nats-leaf:'].includes(url.protocol) || !url.hostname || !url.port) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `--leaf-remote: ${JSON.stringify(r)}: expected tls://ADDR:PORT (a core host's --leaf-listen)`)
    }
    return r
  })
}
