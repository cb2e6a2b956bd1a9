declare module 'hyperdht' {
  import type { EventEmitter } from 'node:events'
  export interface KeyPair { publicKey: Buffer; secretKey: Buffer }
  export interface DHTOptions {
    bootstrap?: { host: string; port: number }[] | string[]
    port?: number
    host?: string
    ephemeral?: boolean
    firewalled?: boolean
    keyPair?: KeyPair
  }
  export default class DHT extends EventEmitter {
    constructor(opts?: DHTOptions)
    static keyPair(seed?: Buffer): KeyPair
    static bootstrapper(port: number, host: string, opts?: DHTOptions): DHT
    ready(): Promise<void>
    fullyBootstrapped(): Promise<void>
    address(): { host: string; port: number }
    /** The peers announced on a topic: a query stream of replies, each listing announcers. */
    lookup(target: Buffer): AsyncIterable<{ peers: { publicKey: Buffer }[] }>
    destroy(opts?: { force?: boolean }): Promise<void>
    readonly destroyed: boolean
  }
}
declare module 'hyperdht/testnet.js' {
  import DHT from 'hyperdht'
  export interface Testnet {
    nodes: DHT[]
    bootstrap: { host: string; port: number }[]
    createNode(opts?: object): DHT
    destroy(): Promise<void>
  }
  export default function createTestnet(size?: number, opts?: { host?: string; port?: number; bootstrap?: { host: string; port: number }[] } | ((fn: () => unknown) => void)): Promise<Testnet>
}
