// Hand-written types for protomux 3.x (ships none): the parts upswarm uses.
declare module 'protomux' {
  /** A compact-encoding codec. */
  export interface Encoder<T> {
    preencode(state: any, value: T): void
    encode(state: any, value: T): void
    decode(state: any): T
  }

  export interface ProtomuxMessage<T = unknown> {
    readonly type: number
    send(message: T): boolean
    onmessage: (message: T, channel: Channel) => unknown
    encoding: Encoder<T>
  }

  export interface MessageOptions<T = unknown> {
    encoding?: Encoder<T>
    onmessage?: (message: T, channel: Channel) => unknown
    autoBatch?: boolean
  }

  export interface ChannelOptions<H = unknown> {
    protocol: string
    id?: Uint8Array | null
    unique?: boolean
    userData?: unknown
    handshake?: Encoder<H> | null
    messages?: MessageOptions[]
    onopen?: (handshake: H, channel: Channel) => unknown
    onclose?: (isRemote: boolean, channel: Channel) => unknown
    ondestroy?: (channel: Channel) => unknown
    ondrain?: (channel: Channel) => unknown
  }

  export interface Channel {
    readonly protocol: string
    readonly id: Uint8Array | null
    readonly opened: boolean
    readonly closed: boolean
    readonly destroyed: boolean
    readonly drained: boolean
    userData: unknown
    open(handshake?: unknown): void
    close(): void
    cork(): void
    uncork(): void
    addMessage<T = unknown>(opts: MessageOptions<T>): ProtomuxMessage<T>
    fullyOpened(): Promise<boolean>
    fullyClosed(): Promise<void>
  }

  export default class Protomux {
    constructor(stream: unknown, opts?: { alloc?: (size: number) => Uint8Array })
    static from(streamOrMux: unknown, opts?: { alloc?: (size: number) => Uint8Array }): Protomux
    static isProtomux(value: unknown): value is Protomux
    readonly stream: unknown
    readonly drained: boolean
    createChannel<H = unknown>(opts: ChannelOptions<H>): Channel | null
    opened(opts: { protocol: string; id?: Uint8Array | null }): boolean
    pair(opts: { protocol: string; id?: Uint8Array | null }, notify: (id: Uint8Array | null) => unknown): void
    unpair(opts: { protocol: string; id?: Uint8Array | null }): void
    cork(): void
    uncork(): void
    destroy(err?: Error): void
    isIdle(): boolean
    [Symbol.iterator](): IterableIterator<Channel>
  }
}
