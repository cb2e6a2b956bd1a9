// Hand-written types for hyperswarm 4.x (ships none): the parts upswarm uses.
declare module 'hyperswarm' {
  import type { EventEmitter } from 'node:events'
  import type DHT from 'hyperdht'
  import type NoiseSecretStream from '@hyperswarm/secret-stream'

  export interface PeerInfo {
    readonly publicKey: Buffer
    readonly topics: Buffer[]
    /** True when this side dialled the connection. */
    readonly client: boolean
    readonly server: boolean
    readonly banned: boolean
    ban(value: boolean): void
    reconnect(value: boolean): void
  }

  export interface PeerDiscoverySession {
    flushed(): Promise<void>
    refresh(opts?: { server?: boolean; client?: boolean }): Promise<void>
    destroy(): Promise<void>
  }

  export interface HyperswarmOptions {
    keyPair?: { publicKey: Buffer; secretKey: Buffer }
    seed?: Buffer
    maxPeers?: number
    maxParallel?: number
    firewall?: (remotePublicKey: Buffer, payload: unknown) => boolean
    dht?: DHT
    bootstrap?: { host: string; port: number }[]
  }

  export default class Hyperswarm extends EventEmitter {
    constructor(opts?: HyperswarmOptions)
    readonly keyPair: { publicKey: Buffer; secretKey: Buffer }
    readonly dht: DHT
    readonly connections: Set<NoiseSecretStream>
    readonly peers: Map<string, PeerInfo>
    readonly destroyed: boolean
    join(topic: Buffer, opts?: { server?: boolean; client?: boolean; limit?: number }): PeerDiscoverySession
    leave(topic: Buffer): Promise<void>
    joinPeer(publicKey: Buffer): void
    leavePeer(publicKey: Buffer): void
    listen(): Promise<void>
    flush(): Promise<boolean>
    destroy(opts?: { force?: boolean }): Promise<void>
    on(event: 'connection', listener: (conn: NoiseSecretStream, info: PeerInfo) => void): this
    on(event: 'update', listener: () => void): this
  }
}
