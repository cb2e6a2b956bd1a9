import { createServer } from 'node:net'

/** A TCP port that was free on `host` (default 127.0.0.1) a moment ago. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

export async function freePorts(n: number, host?: string): Promise<number[]> {
  const out = new Set<number>()
  while (out.size < n) out.add(await freePort(host))
  return [...out]
}
