// Hand-written types for @hyperswarm/secret-stream 6.x (ships none): the parts upswarm uses.
declare module '@hyperswarm/secret-stream' {
  import type { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  export interface NoiseKeyPair { publicKey: Buffer; secretKey: Buffer }

  export interface NoiseSecretStreamOptions {
    pattern?: string
    remotePublicKey?: Buffer
    keyPair?: NoiseKeyPair | Promise<NoiseKeyPair>
    keepAlive?: number
    autoStart?: boolean
    enableSend?: boolean
  }

  /** A streamx Duplex of framed, encrypted messages; every write arrives as one message. */
  export default class NoiseSecretStream extends EventEmitter {
    constructor(isInitiator: boolean, rawStream?: Duplex | NodeJS.ReadWriteStream | null, opts?: NoiseSecretStreamOptions)
    static keyPair(seed?: Buffer): NoiseKeyPair
    readonly noiseStream: NoiseSecretStream
    readonly isInitiator: boolean
    readonly rawStream: (EventEmitter & { remoteAddress?: string; remotePort?: number; destroy(err?: Error): void }) | null
    publicKey: Buffer | null
    remotePublicKey: Buffer | null
    handshakeHash: Buffer | null
    /** Resolves true once the Noise handshake is done, false if the stream was destroyed first. */
    readonly opened: Promise<boolean>
    readonly destroyed: boolean
    readonly destroying: boolean
    readonly keepAlive: number
    readonly timeout: number
    readonly rawBytesRead: number
    readonly rawBytesWritten: number
    /** Hypercore and Protomux keep the connection's muxer here. */
    userData: unknown
    setKeepAlive(ms: number): void
    setTimeout(ms: number): void
    write(data: Uint8Array): boolean
    end(): void
    destroy(err?: Error | null): void
    pause(): this
    resume(): this
  }
}
