// Two ways to reach peers, one kind of connection (ARCHITECTURE §5, R-DHT-1): tracker peers
// are dialled directly over TCP with a Noise handshake (@hyperswarm/secret-stream), and the
// Hyperswarm topic of a product / revision is joined on the DHT when the tracker fails. Both
// hand the same NoiseSecretStream to one onConnection handler, at most one per remote key.
import { EventEmitter } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { dirname } from 'node:path'
import b4a from 'b4a'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import DHT from 'hyperdht'
import Hyperswarm, { type PeerDiscoverySession } from 'hyperswarm'
import { z } from 'zod'
import { UpswarmError, errorMessage } from '../errors.ts'
import { exchangeCertificates, type SwarmIdentity } from './fleet.ts'

export const TOPIC_PREFIX = 'upswarm:topic:'
export const DEFAULT_MAX_CONNECTIONS = 64
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000
export const DEFAULT_KEEP_ALIVE_MS = 5_000
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000
export const DEFAULT_FIRST_BYTES_TIMEOUT_MS = 5_000
export const DEFAULT_FLEET_TIMEOUT_MS = 5_000
/**
 * When a joined topic is looked up again (the last one repeats while joined). Each lookup keeps the
 * session's modes, so it is also an announce: the steady one comes every 5 minutes (Hyperswarm's
 * own refresh: 10 minutes; HyperDHT keeps a record 20), since a peer that joins later finds this
 * node through its own lookup. A node that wants peers sooner (the sharing
 * daemon on a lonely tracker round) joins again, which looks up at once but at most every
 * REJOIN_LOOKUP_GAP_MS per topic.
 */
const REDISCOVER_MS = [2_000, 5_000, 15_000, 60_000, 300_000]
/** A join again of a topic looked up this recently (by any path) does not look it up again. */
const REJOIN_LOOKUP_GAP_MS = 55_000
/** The channels onConnection attaches (piece protocol, statements, site, release feed): a peer's opens wait for the fleet exchange. */
const HELD_PROTOCOLS = ['upswarm/pieces', 'upswarm/statements', 'upswarm/site', 'hypercore/alpha'] as const

export interface SwarmKeyPair { publicKey: Buffer; secretKey: Buffer }

export interface HostPort { host: string; port: number }

export interface ConnectionInfo {
  /** The peer's Noise public key, and the same in hex. */
  remotePublicKey: Buffer
  peer: string
  via: 'tcp' | 'dht'
  /** True when this node dialled. */
  initiator: boolean
  /** The socket's remote address for TCP (for an inbound connection its port is ephemeral); null over the DHT. */
  remoteAddress: HostPort | null
  /** Topics this peer was found under (DHT only). */
  topics: Buffer[]
  /** The name in the peer's fleet certificate when it proved membership of this node's fleet; null otherwise. */
  member: string | null
}

/** Fleet membership (private swarms, docs/protocol.md §5). */
export interface FleetOptions {
  /** This node's certificate and fleet; null: present none (the node admits anyone). */
  identity: SwarmIdentity | null
  /** 'members': close every connection whose peer has no valid certificate of this fleet. */
  admit: 'members' | 'anyone'
}

export type ConnectionHandler = (stream: NoiseSecretStream, info: ConnectionInfo) => void

export interface SwarmTransportOptions {
  /** This node's Noise key pair (loadOrCreateKeyPair); the same identity on TCP and on the DHT. */
  keyPair: SwarmKeyPair
  /**
   * Called once per remote key with an open encrypted stream. Attach every protocol
   * (PieceSession, feed.replicate) synchronously here, before the stream is read.
   */
  onConnection: ConnectionHandler
  /** HyperDHT bootstrap nodes; required for join(). */
  bootstrap?: HostPort[]
  /** Address the DHT node's UDP socket binds (127.0.0.1 in tests; default all interfaces). */
  dhtHost?: string
  maxConnections?: number
  handshakeTimeoutMs?: number
  keepAliveMs?: number
  /** A connection that receives nothing (not even keep-alives) this long is closed. */
  idleTimeoutMs?: number
  /**
   * A connection on which no byte has arrived this long after it opened is half-open (the
   * remote never saw it: a lost holepunch race, a stale route) and is closed, so that
   * discovery dials again instead of waiting for the idle timeout. Both ends send their
   * protocol's open message at once, so a live connection always passes. (A TCP connection's
   * Noise handshake already proves it live; this matters for DHT connections, whose handshake
   * travelled through the DHT.)
   */
  firstBytesTimeoutMs?: number
  /**
   * Every connection starts with the `upswarm/fleet` certificate exchange, before onConnection;
   * default: no identity, admit anyone. false: no exchange at all (a raw stream, for tests of
   * the transport alone).
   */
  fleet?: FleetOptions | false
  /** How long a node with an identity waits for the peer's certificate. */
  fleetTimeoutMs?: number
}

interface Entry { stream: NoiseSecretStream; info: ConnectionInfo }

export interface TransportEvents {
  /** A connection was refused or dropped before it reached onConnection (diagnostics). */
  refused: [peer: string | null, reason: string]
  /** A joined topic (hex) was looked up again on the DHT (lookUpAgain), its modes kept. */
  'looked-up': [topic: string]
}

const NodeKeyFileSchema = z.object({
  type: z.literal('upswarm-node-key'),
  seed: z.string().regex(/^[0-9a-f]{64}$/),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/),
})

/**
 * The node's Noise key pair, kept in `file` (JSON: the 32-byte seed and the public key, mode
 * 0600). Created on first use, so a node keeps its identity across restarts.
 */
export async function loadOrCreateKeyPair(file: string): Promise<SwarmKeyPair> {
  let raw: string | undefined
  try {
    raw = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read node key file ${file}: ${errorMessage(err)}`, { cause: err })
    }
  }
  if (raw === undefined) {
    const seed = randomBytes(32)
    const kp = NoiseSecretStream.keyPair(seed)
    const body = JSON.stringify({ type: 'upswarm-node-key', seed: seed.toString('hex'), publicKey: b4a.toString(kp.publicKey, 'hex') }, null, 2) + '\n'
    try {
      await mkdir(dirname(file), { recursive: true })
      await writeFile(file, body, { mode: 0o600, flag: 'wx' })
      return kp
    } catch (err) {
      // Another process created it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new UpswarmError('UPSWARM_E_IO', `cannot write node key file ${file}: ${errorMessage(err)}`, { cause: err })
      }
      raw = await readFile(file, 'utf8')
    }
  }
  let parsed: z.infer<typeof NodeKeyFileSchema> | undefined
  try {
    parsed = NodeKeyFileSchema.parse(JSON.parse(raw))
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${file} is not an upswarm node key file; delete it to make a new node identity`, { cause: err })
  }
  const kp = NoiseSecretStream.keyPair(b4a.from(parsed.seed, 'hex') as Buffer)
  if (b4a.toString(kp.publicKey, 'hex') !== parsed.publicKey) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${file}: its public key does not match its seed; the file is damaged, delete it to make a new node identity`)
  }
  return kp
}

/** The Hyperswarm topic of a product (all revisions) or of one revision: SHA-256('upswarm:topic:' + product [+ ':' + rev]). */
export function topicFor(product: string, rev?: number): Buffer {
  if (product.length === 0) throw new UpswarmError('UPSWARM_E_BAD_REQUEST', 'topicFor needs a product id')
  if (rev !== undefined && (!Number.isSafeInteger(rev) || rev < 1)) {
    throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `topicFor: revision must be an integer >= 1, got ${rev}`)
  }
  return createHash('sha256').update(TOPIC_PREFIX + product + (rev === undefined ? '' : `:${rev}`)).digest()
}

/** TCP + Noise listener and dialler, and Hyperswarm topics, behind one connection handler. */
export class SwarmTransport extends EventEmitter<TransportEvents> {
  readonly keyPair: SwarmKeyPair
  private readonly opts: Required<Omit<SwarmTransportOptions, 'bootstrap' | 'dhtHost'>> & Pick<SwarmTransportOptions, 'bootstrap' | 'dhtHost'>
  private readonly conns = new Map<string, Entry>()
  /** A second connection the remote initiated while one exists; promoted if the first closes. */
  private readonly standby = new Map<string, Entry>()
  private readonly pending = new Set<NoiseSecretStream>()
  private server: net.Server | null = null
  private swarm: Hyperswarm | null = null
  private closing = false
  private readonly lookups = new Map<string, NodeJS.Timeout>()
  /** When each joined topic (hex) was last announced and looked up (performance.now()). */
  private readonly lookedUpAt = new Map<string, number>()
  /** The Hyperswarm session of each joined topic (hex), with the modes it was last given. */
  private readonly sessions = new Map<string, { session: PeerDiscoverySession; server: boolean; client: boolean }>()

  constructor(options: SwarmTransportOptions) {
    super()
    this.keyPair = options.keyPair
    this.opts = {
      maxConnections: DEFAULT_MAX_CONNECTIONS,
      handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
      keepAliveMs: DEFAULT_KEEP_ALIVE_MS,
      idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
      firstBytesTimeoutMs: DEFAULT_FIRST_BYTES_TIMEOUT_MS,
      fleet: { identity: null, admit: 'anyone' },
      fleetTimeoutMs: DEFAULT_FLEET_TIMEOUT_MS,
      ...options,
    }
  }

  get publicKey(): Buffer {
    return this.keyPair.publicKey
  }

  /** Open connections, one per remote key. */
  get connections(): ReadonlyMap<string, { stream: NoiseSecretStream; info: ConnectionInfo }> {
    return this.conns
  }

  /** Starts the TCP listener (tracker peers dial it); resolves with the bound address. */
  async listen(host: string, port = 0): Promise<HostPort> {
    if (this.server) throw new UpswarmError('UPSWARM_E_CONFIG', 'this transport is already listening')
    const server = net.createServer((socket) => {
      socket.setNoDelay(true)
      const stream = new NoiseSecretStream(false, socket, { keyPair: this.keyPair })
      void this.adopt(stream, 'tcp', { host: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }, [])
    })
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new UpswarmError('UPSWARM_E_CONFIG', `cannot listen for peers on ${host}:${port}: ${err.message}`, { cause: err })))
      server.listen(port, host, () => resolve())
    })
    server.on('error', (err) => this.emit('refused', null, `listener error: ${err.message}`))
    return this.tcpAddress!
  }

  get tcpAddress(): HostPort | null {
    const a = this.server?.address()
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : null
  }

  /**
   * Dials a peer at host:port (from the tracker), runs the Noise handshake and resolves with
   * the connection now open to that peer (an existing one when this was a duplicate). With
   * `remotePublicKey`, a peer answering with any other key is refused.
   */
  async dial(host: string, port: number, opts: { remotePublicKey?: Buffer; signal?: AbortSignal } = {}): Promise<ConnectionInfo> {
    if (this.closing) throw new UpswarmError('UPSWARM_E_PEER', `cannot dial ${host}:${port}: the transport is closed`)
    const socket = net.connect({ host, port })
    socket.setNoDelay(true)
    const stream = new NoiseSecretStream(true, socket, { keyPair: this.keyPair })
    const onAbort = (): void => stream.destroy(new Error('dial aborted'))
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const entry = await this.adopt(stream, 'tcp', { host, port }, [], opts.remotePublicKey)
      if (!entry) {
        throw new UpswarmError('UPSWARM_E_PEER',
          `could not connect to peer ${host}:${port}: ${stream.destroyed ? 'connection failed or refused' : 'handshake failed'}; the tracker's entry may be stale`)
      }
      return entry.info
    } finally {
      opts.signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Joins a Hyperswarm topic (topicFor) on the DHT: announces this node and connects to the
   * peers found. Resolves once the first announce / lookup round is done.
   */
  async join(topic: Buffer, opts: { server?: boolean; client?: boolean } = {}): Promise<void> {
    const client = opts.client ?? true
    const server = opts.server ?? true
    // Joined again (the daemon does so on every lonely tracker round): the topic's one session
    // changes modes and runs its discovery again, instead of one more session each time. The
    // schedule of lookups again starts over only when the modes change: a lonely round is itself
    // a lookup, and starting the 2, 5, 15 s steps on every round made eight announces a minute.
    // With the same modes, a topic looked up less than REJOIN_LOOKUP_GAP_MS ago is not looked up
    // again: a lonely daemon's rounds (every 30 s) and its schedule came to three announces a
    // minute per topic, every one of them a round of UDP to the closest DHT nodes.
    const key = b4a.toString(topic, 'hex')
    const joined = this.sessions.get(key)
    const session = joined?.session ?? this.hyperswarm().join(topic, { server, client })
    this.sessions.set(key, { session, server, client })
    const modesChanged = !joined || joined.server !== server || joined.client !== client
    if (!client) this.stopLookups(key)
    else if (modesChanged || !this.lookups.has(key)) this.lookUpAgain(topic, session, server)
    if (!joined) {
      this.lookedUpAt.set(key, performance.now())
      await session.flushed()
    } else if (modesChanged || performance.now() - (this.lookedUpAt.get(key) ?? -Infinity) >= REJOIN_LOOKUP_GAP_MS) {
      this.lookedUpAt.set(key, performance.now())
      await session.refresh({ server, client })
    }
  }

  /**
   * Peers that join at the same moment may each look up before the other's announce is stored,
   * and Hyperswarm's own refresh comes only minutes later: look up again after a few seconds,
   * then less and less often, while the topic is joined. R-DHT-1: each refresh keeps the
   * session's own modes — a refresh with `server: false` takes the session out of server mode,
   * and Hyperswarm then unannounces the node, so a peer joining later no longer found it.
   */
  private lookUpAgain(topic: Buffer, discovery: { refresh(opts?: { server?: boolean; client?: boolean }): Promise<void> }, server: boolean): void {
    const key = b4a.toString(topic, 'hex')
    this.stopLookups(key)
    let step = 0
    const next = (): void => {
      const timer = setTimeout(() => {
        if (this.closing) return
        this.lookedUpAt.set(key, performance.now())
        discovery.refresh({ server, client: true }).then(() => this.emit('looked-up', key), () => {})
        next()
      }, REDISCOVER_MS[Math.min(step++, REDISCOVER_MS.length - 1)])
      timer.unref()
      this.lookups.set(key, timer)
    }
    next()
  }

  private stopLookups(key: string): void {
    clearTimeout(this.lookups.get(key))
    this.lookups.delete(key)
  }

  async leave(topic: Buffer): Promise<void> {
    this.stopLookups(b4a.toString(topic, 'hex'))
    this.sessions.delete(b4a.toString(topic, 'hex'))
    this.lookedUpAt.delete(b4a.toString(topic, 'hex'))
    await this.swarm?.leave(topic)
  }

  /** Waits until the DHT connections being attempted have been made or have failed. */
  async flush(): Promise<void> {
    await this.swarm?.flush()
  }

  /** Closes every connection, the listener and the DHT node. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    for (const key of [...this.lookups.keys()]) this.stopLookups(key)
    const err = new Error('transport closed')
    for (const s of this.pending) s.destroy(err)
    for (const e of [...this.conns.values(), ...this.standby.values()]) e.stream.destroy(err)
    this.conns.clear()
    this.standby.clear()
    const server = this.server
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
    await this.swarm?.destroy()
  }

  private hyperswarm(): Hyperswarm {
    if (this.closing) throw new UpswarmError('UPSWARM_E_PEER', 'cannot join a topic: the transport is closed')
    if (this.swarm) return this.swarm
    if (!this.opts.bootstrap || this.opts.bootstrap.length === 0) {
      throw new UpswarmError('UPSWARM_E_CONFIG', 'cannot join the DHT: no bootstrap node given (--bootstrap HOST:PORT or UPSWARM_BOOTSTRAP)')
    }
    const dht = new DHT({ bootstrap: this.opts.bootstrap, ...(this.opts.dhtHost ? { host: this.opts.dhtHost } : {}) })
    this.swarm = new Hyperswarm({ keyPair: this.keyPair, dht, maxPeers: this.opts.maxConnections })
    this.swarm.on('connection', (conn, peerInfo) => {
      void this.adopt(conn, 'dht', null, [...peerInfo.topics])
    })
    return this.swarm
  }

  /** Waits for the handshake, applies dedupe and limits, then hands the stream to onConnection. */
  private async adopt(stream: NoiseSecretStream, via: 'tcp' | 'dht', remoteAddress: HostPort | null, topics: Buffer[], expectKey?: Buffer): Promise<Entry | null> {
    stream.on('error', () => {}) // a failed peer is reported by close / refusal, never as an uncaught 'error'
    if (this.closing) {
      stream.destroy()
      return null
    }
    if (this.pending.size >= this.opts.maxConnections) return this.refuse(stream, null, `too many handshakes in progress (${this.pending.size})`)
    this.pending.add(stream)
    const timer = setTimeout(() => stream.destroy(new Error('handshake timeout')), this.opts.handshakeTimeoutMs)
    let opened: boolean
    try {
      opened = await stream.opened
    } finally {
      clearTimeout(timer)
      this.pending.delete(stream)
    }
    const remoteKey = stream.remotePublicKey
    if (!opened || !remoteKey || this.closing || stream.destroying) {
      stream.destroy()
      this.emit('refused', remoteKey ? b4a.toString(remoteKey, 'hex') : null, 'handshake failed')
      return null
    }
    const peer = b4a.toString(remoteKey, 'hex')
    if (b4a.equals(remoteKey, this.keyPair.publicKey)) return this.refuse(stream, peer, 'connected to itself')
    if (expectKey && !b4a.equals(remoteKey, expectKey)) return this.refuse(stream, peer, `expected peer ${b4a.toString(expectKey, 'hex')}`)
    const fleet = this.opts.fleet
    if (!fleet) return this.register({ stream, info: { remotePublicKey: remoteKey, peer, via, initiator: stream.isInitiator, remoteAddress, topics, member: null } })
    // The peer may open its channels before we know it is a member: Protomux rejects an open
    // nobody pairs, so hold those until onConnection has attached ours (or the stream is gone).
    const mux = Protomux.from(stream)
    let attached!: () => void
    const held = new Promise<void>((resolve) => { attached = resolve })
    for (const protocol of HELD_PROTOCOLS) mux.pair({ protocol }, () => held)
    try {
      this.pending.add(stream)
      const admission = await exchangeCertificates(stream, fleet.identity, this.opts.fleetTimeoutMs).finally(() => this.pending.delete(stream))
      if (this.closing || stream.destroying) return this.refuse(stream, peer, 'closed during the fleet exchange')
      if (!admission.member && fleet.admit === 'members') return this.refuse(stream, peer, `not a member of this node's fleet: ${admission.reason}`)
      const member = admission.member ? admission.name : null
      return this.register({ stream, info: { remotePublicKey: remoteKey, peer, via, initiator: stream.isInitiator, remoteAddress, topics, member } })
    } finally {
      for (const protocol of HELD_PROTOCOLS) mux.unpair({ protocol })
      attached()
    }
  }

  private refuse(stream: NoiseSecretStream, peer: string | null, reason: string): null {
    stream.destroy(new Error(reason))
    this.emit('refused', peer, reason)
    return null
  }

  /**
   * One connection per remote key. Of two, both sides keep the one dialled by the side with
   * the larger public key (the rule Hyperswarm uses); when one side dialled both, that side
   * drops the newer and the other keeps the newer on standby until the first closes.
   */
  private register(entry: Entry): Entry | null {
    const { stream, info } = entry
    const existing = this.conns.get(info.peer)
    if (existing) {
      const newPreferred = this.preferred(stream)
      const oldPreferred = this.preferred(existing.stream)
      if (newPreferred === oldPreferred) {
        if (stream.isInitiator) {
          this.refuse(stream, info.peer, 'duplicate connection')
          return existing
        }
        const old = this.standby.get(info.peer)
        if (old) this.refuse(old.stream, info.peer, 'duplicate connection')
        this.standby.set(info.peer, entry)
        stream.once('close', () => {
          if (this.standby.get(info.peer) === entry) this.standby.delete(info.peer)
        })
        return existing
      }
      if (!newPreferred) {
        this.refuse(stream, info.peer, 'duplicate connection')
        return existing
      }
      this.conns.delete(info.peer)
      this.refuse(existing.stream, info.peer, 'duplicate connection')
    }
    if (this.conns.size >= this.opts.maxConnections) {
      return this.refuse(stream, info.peer, `connection limit (${this.opts.maxConnections}) reached`)
    }
    this.conns.set(info.peer, entry)
    stream.once('close', () => this.onClosed(entry))
    stream.setKeepAlive(this.opts.keepAliveMs)
    stream.setTimeout(this.opts.idleTimeoutMs)
    this.expectFirstBytes(entry)
    try {
      this.opts.onConnection(stream, info)
    } catch (err) {
      this.refuse(stream, info.peer, `connection handler failed: ${errorMessage(err)}`)
      return null
    }
    return entry
  }

  /** Closes the connection if nothing at all arrives on it in firstBytesTimeoutMs (see the option). */
  private expectFirstBytes(entry: Entry): void {
    const { stream, info } = entry
    const timer = setTimeout(() => {
      if (stream.rawBytesRead === 0 && !stream.destroying) {
        this.refuse(stream, info.peer, `half-open connection: nothing received in ${this.opts.firstBytesTimeoutMs} ms`)
      }
    }, this.opts.firstBytesTimeoutMs)
    timer.unref()
    stream.once('close', () => clearTimeout(timer))
  }

  private onClosed(entry: Entry): void {
    const peer = entry.info.peer
    if (this.conns.get(peer) !== entry) return
    this.conns.delete(peer)
    const next = this.standby.get(peer)
    if (next && !this.closing) {
      this.standby.delete(peer)
      if (!next.stream.destroying) this.register(next)
    }
  }

  private preferred(stream: NoiseSecretStream): boolean {
    const expectedInitiator = b4a.compare(this.keyPair.publicKey, stream.remotePublicKey!) > 0
    return stream.isInitiator === expectedInitiator
  }
}
