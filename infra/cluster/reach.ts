// Issue 17 item 5: what a host can tell an operator about the addresses it was given, instead of
// a silent stall: whether each route URL answers, and whether the advertised address reaches this
// node (a NATS server greets every connection with its INFO, in clear, before any TLS).
import { connect } from 'node:net'

/** A failed probe says whether the TCP connection was accepted (a port that listens but stayed silent). */
export type Probe = { ok: true; firstLine: string } | { ok: false; why: string; connected: boolean }

/** Connects to host:port and reads the first line the other side sends (bounded in time and size). */
export function probeTcp(host: string, port: number, timeoutMs = 3000): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    let buf = ''
    let connected = false
    socket.once('connect', () => { connected = true })
    const done = (p: Probe): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(p)
    }
    const timer = setTimeout(() => done(buf ? { ok: true, firstLine: buf } : { ok: false, connected, why: connected ? `connected, but nothing said within ${timeoutMs} ms` : `no answer within ${timeoutMs} ms (a firewall, or nothing routes there)` }), timeoutMs)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl >= 0 || buf.length > 16_384) done({ ok: true, firstLine: (nl >= 0 ? buf.slice(0, nl) : buf).trim() })
    })
    socket.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, connected, why: err.code ?? err.message }))
    socket.on('end', () => done(buf ? { ok: true, firstLine: buf.trim() } : { ok: false, connected, why: 'closed without a word' }))
  })
}

/** The server name in a NATS INFO line, if it is one. */
export function natsServerName(line: string): string | undefined {
  if (!line.startsWith('INFO ')) return undefined
  try {
    return (JSON.parse(line.slice(5)) as { server_name?: string }).server_name
  } catch {
    return undefined
  }
}

/** One line per route URL that does not answer (nats-route://HOST:PORT), for the operator. */
export async function unreachableRoutes(routes: string[], timeoutMs = 2000): Promise<string[]> {
  const out = await Promise.all(routes.map(async (route) => {
    let url: URL
    try {
      url = new URL(route)
    } catch {
      return `${route}: not a URL`
    }
    const host = url.hostname.replace(/^\[|\]$/g, '')
    // nats-route:// without a port is the default cluster port.
    const p = await probeTcp(host, Number(url.port || 6222), timeoutMs)
    // A route port with TLS (every host of a cluster with an authority) says nothing in clear: the
    // dialling side starts the TLS handshake. Accepting the connection is the answer here; this
    // probe then closes it, which the node logs as a route TLS handshake error (EOF).
    if (p.ok || p.connected) return undefined
    return `${route}: unreachable (${p.why})`
  }))
  return out.filter((l): l is string => l !== undefined)
}

/**
 * Whether `advertise:port` reaches the node named `name`: undefined when it does, else why not
 * (refused, silent, or another server answered).
 */
export async function advertisedMismatch(advertise: string, port: number, name: string, timeoutMs = 3000): Promise<string | undefined> {
  const p = await probeTcp(advertise, port, timeoutMs)
  if (!p.ok) return `${advertise}:${port} does not reach it (${p.why})`
  const answered = natsServerName(p.firstLine)
  if (answered === name) return undefined
  return `${advertise}:${port} reaches ${answered ? `another NATS server (${answered})` : 'something that is not a NATS server'}`
}
