// Issue 17 item 1: the addresses `upswarm up` is given for one host of a deployment, checked
// before anything starts, so a typo is an error naming the flag, not a node that never routes.
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
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

/**
 * Issue 17: what `--advertise` tells clients and the other hosts, checked against this host: a
 * host name must resolve (an error: nobody could reach it), and an IP address that no interface
 * here carries is worth a warning — right behind NAT or a load balancer, a typo otherwise (clients
 * would be sent to an address where nothing listens). Returns the warning, if any.
 */
export async function checkAdvertise(
  advertise: string,
  local: () => string[] = localAddresses,
  lookup: (name: string) => Promise<string[]> = async (name) => (await (await import('node:dns/promises')).lookup(name, { all: true })).map((a) => a.address),
): Promise<string | undefined> {
  let addrs = [advertise]
  if (!isIP(advertise)) {
    try {
      addrs = await lookup(advertise)
    } catch (err) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `--advertise ${advertise}: the name does not resolve here (${(err as Error).message}); clients and other hosts would be sent there. Give an address or a name that resolves`)
    }
  }
  const mine = new Set(local())
  if (addrs.some((a) => mine.has(a))) return undefined
  return `--advertise ${advertise}${addrs[0] !== advertise ? ` (${addrs.join(', ')})` : ''} is not an address of this host (${[...mine].join(', ')}): ` +
    'clients and the other hosts are sent there. Right behind NAT or a load balancer that forwards to this host; otherwise a typo'
}

function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address))
}
