// Shared by the swarm integration tests: two real nodes on 127.0.0.1, each a SwarmTransport
// whose connection handler the test supplies, and a queue of the connections each received.
import NoiseSecretStream from '@hyperswarm/secret-stream'
import type { RepoServer } from '../../actors/repo-server/index.ts'
import { SwarmTransport, type ConnectionInfo, type SwarmTransportOptions } from '../../infra/swarm/transport.ts'

export interface Node {
  transport: SwarmTransport
  /** Resolves with the next connection this node receives (in arrival order). */
  nextConnection(): Promise<{ stream: NoiseSecretStream; info: ConnectionInfo }>
  delivered: { stream: NoiseSecretStream; info: ConnectionInfo }[]
}

export function makeNode(onConnection: (stream: NoiseSecretStream, info: ConnectionInfo) => void = () => {},
  extra: Partial<SwarmTransportOptions> = {}): Node {
  const delivered: Node['delivered'] = []
  const waiters: ((c: Node['delivered'][number]) => void)[] = []
  let served = 0
  const transport = new SwarmTransport({
    keyPair: NoiseSecretStream.keyPair(),
    dhtHost: '127.0.0.1',
    ...extra,
    onConnection(stream, info) {
      onConnection(stream, info)
      delivered.push({ stream, info })
      waiters.shift()?.(delivered[delivered.length - 1]!)
    },
  })
  return {
    transport,
    delivered,
    nextConnection() {
      const i = served++
      if (i < delivered.length) return Promise.resolve(delivered[i]!)
      return new Promise((resolve) => waiters.push(resolve))
    },
  }
}

/** Resolves when `stream` has closed. */
export function closed(stream: NoiseSecretStream): Promise<void> {
  if (stream.destroyed) return Promise.resolve()
  return new Promise((resolve) => stream.once('close', () => resolve()))
}

/** Resolves when the server reports `product` r`rev` synced (its `release.synced` event). */
export function nextSynced(server: RepoServer, product: string, rev: number): Promise<void> {
  return new Promise((resolve) => {
    const sub = server.actor.on('release.synced', (e) => {
      if (e.product !== product || e.rev !== rev) return
      sub.unsubscribe()
      resolve()
    })
  })
}
