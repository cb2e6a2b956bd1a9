// A local HyperDHT network: a bootstrap node on 127.0.0.1 plus a few full nodes, enough for
// Hyperswarm topic announce/lookup among local peers. Never touches the public DHT.
import createTestnet, { type Testnet } from 'hyperdht/testnet.js'

export interface LocalDht {
  /** "127.0.0.1:port" of the bootstrap node, as peers take it in --bootstrap. */
  bootstrap: string
  close(): Promise<void>
}

export async function startLocalDht(opts: { port?: number; nodes?: number; host?: string } = {}): Promise<LocalDht> {
  const testnet: Testnet = await createTestnet(opts.nodes ?? 3, { host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 })
  const first = testnet.bootstrap[0]!
  return {
    bootstrap: `${first.host}:${first.port}`,
    close: () => testnet.destroy(),
  }
}

/** Parses "host:port[,host:port]" (flags, UPSWARM_BOOTSTRAP) into HyperDHT bootstrap entries. */
export function parseBootstrap(value: string | undefined): { host: string; port: number }[] {
  return (value ?? process.env.UPSWARM_BOOTSTRAP ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const i = s.lastIndexOf(':')
      return { host: s.slice(0, i), port: Number(s.slice(i + 1)) }
    })
}
