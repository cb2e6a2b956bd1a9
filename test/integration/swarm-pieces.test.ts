import { afterEach, describe, expect, it, vi } from 'vitest'
import fc from 'fast-check'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import c from 'compact-encoding'
import Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { PieceSession, pieceFailure, type PieceSessionOptions } from '../../infra/swarm/piece-protocol.ts'
import { TokenBucket } from '../../infra/swarm/token-bucket.ts'
import { MAX_REQUEST_LENGTH, MessageType, PROTOCOL, PROTOCOL_VERSION, decoders, encoders, toBytes } from '../../infra/swarm/piece-codec.ts'
import { topicFor } from '../../infra/swarm/transport.ts'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import { clusterInfo } from '../helpers/cluster.ts'
import { closed, makeNode, type Node } from './swarm-fixtures.ts'
import { PeerSet } from '../../actors/share-daemon/peers.ts'
import { nodesFromPeers } from '../../actors/share-daemon/peer-nodes.ts'
import { makeServe } from '../../actors/share-daemon/serve.ts'

const MiB = 1 << 20
const hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

const blob = randomBytes(3 * MiB + 123)
const blobHash = hex(blob)
const store = new Map([[blobHash, blob]])
const serveFromStore: PieceSessionOptions['serve'] = async (sha, offset, length) => store.get(sha)?.subarray(offset, offset + length) ?? null

const nodes: Node[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.transport.close()))
})

/** Node A serves (optionally with `aOpts`), node B dials it over TCP; each gets a PieceSession. */
async function tcpPair(aOpts: PieceSessionOptions = {}, bOpts: PieceSessionOptions = {}): Promise<{ a: PieceSession; b: PieceSession; streamA: NoiseSecretStream }> {
  const sessions = new Map<Node, PieceSession>()
  const a: Node = makeNode((stream) => sessions.set(a, new PieceSession(stream, { serve: serveFromStore, ...aOpts })))
  const b: Node = makeNode((stream) => sessions.set(b, new PieceSession(stream, bOpts)))
  nodes.push(a, b)
  const addr = await a.transport.listen('127.0.0.1')
  await b.transport.dial(addr.host, addr.port)
  const { stream: streamA } = await a.nextConnection()
  const sa = sessions.get(a)!
  const sb = sessions.get(b)!
  expect(await sa.opened()).toBe(true)
  expect(await sb.opened()).toBe(true)
  return { a: sa, b: sb, streamA }
}

/** A hand-driven peer speaking raw 'upswarm/pieces' frames, to send what PieceSession never would. */
async function rawPeerAgainst(aOpts: PieceSessionOptions = {}, handshake?: Uint8Array) {
  const received: { type: number; bytes: Uint8Array }[] = []
  const arrivals = new EventEmitter<{ message: [] }>()
  let session!: PieceSession
  let protocolError!: Promise<unknown>
  const a: Node = makeNode((stream) => {
    session = new PieceSession(stream, { serve: serveFromStore, ...aOpts })
    protocolError = once(session, 'protocol-error').then(([e]) => e)
  })
  let channelClosed!: Promise<void>
  let send!: (type: number, bytes: Uint8Array) => void
  let rawStream!: NoiseSecretStream
  const evil: Node = makeNode((stream) => {
    rawStream = stream
    let resolveClosed!: () => void
    channelClosed = new Promise((r) => { resolveClosed = r })
    const ch = Protomux.from(stream).createChannel<Uint8Array>({ protocol: PROTOCOL, handshake: c.raw, onclose: () => resolveClosed() })!
    const msgs = Array.from({ length: 8 }, (_, type) => ch.addMessage<Uint8Array>({
      encoding: c.raw,
      onmessage: (bytes) => { received.push({ type, bytes }); arrivals.emit('message') },
    }))
    send = (type, bytes) => { msgs[type]!.send(bytes) }
    ch.open(handshake ?? toBytes(encoders.handshake, { version: PROTOCOL_VERSION, maxOutstanding: 64, maxRequestLength: MAX_REQUEST_LENGTH }))
  })
  nodes.push(a, evil)
  const addr = await a.transport.listen('127.0.0.1')
  await evil.transport.dial(addr.host, addr.port)
  await a.nextConnection()
  /** Resolves once a received message satisfies `test` (or `test` is a count reached). */
  const waitFor = (test: number | ((m: { type: number; bytes: Uint8Array }) => boolean)): Promise<void> => new Promise((resolve) => {
    const check = (): void => {
      if (typeof test === 'number' ? received.length >= test : received.some(test)) {
        arrivals.off('message', check)
        resolve()
      }
    }
    arrivals.on('message', check)
    check()
  })
  return { session, send, received, waitFor, channelClosed, rawStream, protocolError, evilKey: evil.transport.publicKey.toString('hex') }
}

describe('swarm piece protocol', () => {
  it('swarm — two nodes exchange pieces over direct TCP + Noise, with have and counters', async () => {
    const { a, b } = await tcpPair({ product: 'p', rev: 3 })
    const have = once(b, 'have')
    a.announceHave([blobHash])
    const [ann] = await have
    expect(ann).toMatchObject({ product: 'p', rev: 3, reset: true, hashes: [blobHash] })
    expect(b.peerHas(blobHash)).toBe(true)
    expect(b.peerHas('00'.repeat(32))).toBe(false)

    const pieces = await Promise.all([0, 1, 2, 3].map((i) => b.request(blobHash, i * MiB, MiB)))
    expect(pieces[3]!.length).toBe(123) // the last piece is short: the blob ends there
    expect(hex(Buffer.concat(pieces))).toBe(blobHash)
    expect(a.bytesUp).toBe(blob.length)
    expect(b.bytesDown).toBe(blob.length)
    expect(b.bytesUp).toBe(0)

    const piece = once(b, 'have-piece')
    a.announcePiece('ab'.repeat(32), MiB, 5)
    await piece
    expect(b.peerHasPiece('ab'.repeat(32), MiB, 5)).toBe(true)
    expect(b.peerHasPiece('ab'.repeat(32), MiB, 4)).toBe(false)

    // A run of a format-2 file's chunks: announced as its byte range; held is every range inside
    // the runs announced (a client cutting shorter or longer runs reads them), nothing outside.
    const ef = 'ef'.repeat(32)
    const range = once(b, 'have-range')
    a.announceRange(ef, 3_000_123, 917_504)
    expect((await range)[0]).toEqual({ sha256: ef, offset: 3_000_123, length: 917_504 })
    expect(b.peerHasRange(ef, 3_000_123, 917_504)).toBe(true)
    expect(b.peerHasRange(ef, 3_000_123, 917_503)).toBe(true)
    expect(b.peerHasRange(ef, 3_200_000, 262_144)).toBe(true)
    expect(b.peerHasRange(ef, 3_000_122, 10)).toBe(false)
    expect(b.peerHasRange(ef, 3_000_123, 917_505)).toBe(false)
    expect(b.peerHasRange(ef, 0, 917_504)).toBe(false)
    // The next run, and one after a gap: a range across two touching runs is held, one across the gap is not.
    const more = once(b, 'have-range')
    a.announceRange(ef, 3_917_627, 262_144)
    await more
    const far = once(b, 'have-range')
    a.announceRange(ef, 5_000_000, 100_000)
    await far
    expect(b.peerHasRange(ef, 3_500_000, 600_000)).toBe(true)
    expect(b.peerHasRange(ef, 4_000_000, 1_050_000)).toBe(false)
    expect(b.peerHasRange(ef, 5_000_000, 100_000)).toBe(true)
    // A `have` with reset replaces every announcement, ranges too.
    const reset = once(b, 'have')
    a.announceHave([blobHash])
    await reset
    expect(b.peerHasRange('ef'.repeat(32), 3_000_123, 917_504)).toBe(false)
    expect(b.peerHasRange(blobHash, 5, 7)).toBe(true)
  })

  it('swarm — requests the peer cannot or will not serve are rejected', async () => {
    const { a, b } = await tcpPair()
    const missing = await b.request('cd'.repeat(32), 0, 10).catch((e: unknown) => e)
    expect(pieceFailure(missing)).toBe('not-found')
    await expect(b.request(blobHash, 0, MAX_REQUEST_LENGTH + 1)).rejects.toMatchObject({ code: 'UPSWARM_E_BAD_REQUEST' })
    await expect(b.request('not-a-hash', 0, 1)).rejects.toMatchObject({ code: 'UPSWARM_E_BAD_REQUEST' })

    const choke = once(b, 'choke')
    a.choke()
    await choke
    expect(pieceFailure(await b.request(blobHash, 0, 10).catch((e: unknown) => e))).toBe('choked')
    const unchoke = once(b, 'unchoke')
    a.unchoke()
    await unchoke
    expect((await b.request(blobHash, 0, 10)).equals(blob.subarray(0, 10))).toBe(true)
  })

  it('swarm — a request over 1 MiB from a raw peer gets reject bad-request', async () => {
    const peer = await rawPeerAgainst()
    peer.send(MessageType.request, toBytes(encoders.request, { id: 1, sha256: Buffer.from(blobHash, 'hex'), offset: 0, length: 2 * MiB }))
    await peer.waitFor(1)
    expect(peer.received[0]!.type).toBe(MessageType.reject)
    expect(decoders.reject(peer.received[0]!.bytes)).toEqual({ id: 1, reason: 'bad-request' })
    expect(peer.session.closed).toBe(false)
  })

  it('swarm — garbage bytes close the piece channel, not the connection, and report the peer', async () => {
    const peer = await rawPeerAgainst()
    peer.send(MessageType.request, randomBytes(7))
    const err = await peer.protocolError
    expect(err).toMatchObject({ code: 'UPSWARM_E_PEER', details: { reason: 'protocol', peer: peer.evilKey } })
    await peer.channelClosed
    expect(peer.session.closed).toBe(true)
    expect(peer.rawStream.destroyed).toBe(false) // the feed and other channels on it live on
    await expect(peer.session.request(blobHash, 0, 1)).rejects.toMatchObject({ details: { reason: 'closed' } })
  })

  it('swarm — a malformed handshake and data nobody asked for are protocol errors', async () => {
    const bad = await rawPeerAgainst({}, Buffer.from([0xff, 0x01]))
    expect(await bad.protocolError).toMatchObject({ message: expect.stringMatching(/handshake/) })
    await bad.channelClosed

    const unsolicited = await rawPeerAgainst()
    unsolicited.send(MessageType.data, toBytes(encoders.data, { id: 77, bytes: Buffer.from('x') }))
    expect(await unsolicited.protocolError).toMatchObject({ message: expect.stringMatching(/never sent/) })
  })

  it('swarm — a bounded wire fuzz: random message sequences never crash the node or kill the connection', async () => {
    const sha256 = Buffer.from(blobHash, 'hex')
    const valid = fc.oneof(
      fc.record({ id: fc.integer({ min: 1, max: 1000 }), offset: fc.nat(4 * MiB), length: fc.integer({ min: 0, max: 2 * MiB }) })
        .map((r) => ({ type: MessageType.request, bytes: toBytes(encoders.request, { ...r, sha256 }) })),
      fc.nat(1000).map((id) => ({ type: MessageType.cancel, bytes: toBytes(encoders.cancel, { id }) })),
      fc.constantFrom(MessageType.choke, MessageType.unchoke).map((type) => ({ type, bytes: Buffer.alloc(0) })),
      fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 5 })
        .map((hashes) => ({ type: MessageType.have, bytes: toBytes(encoders.have, { product: 'p', rev: 1, reset: false, hashes }) })),
    )
    const garbage = fc.record({ type: fc.integer({ min: 0, max: 9 }), bytes: fc.uint8Array({ maxLength: 80 }) }) // 8, 9: unknown types
    const message = fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: garbage, weight: 1 })
    const outcomes = { survived: 0, closed: 0 }
    await fc.assert(fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), async (msgs) => {
      const peer = await rawPeerAgainst()
      try {
        for (const m of msgs) if (m.type < 8) peer.send(m.type, m.bytes)
        // A final well-formed request: answered if the channel survived the sequence, else the channel closed.
        const probeId = 1_000_000
        peer.send(MessageType.request, toBytes(encoders.request, { id: probeId, sha256: Buffer.from(blobHash, 'hex'), offset: 0, length: 8 }))
        const answered = peer.waitFor((r) => (r.type === MessageType.data ? decoders.data(r.bytes).id : r.type === MessageType.reject ? decoders.reject(r.bytes).id : -1) === probeId)
        await Promise.race([answered, peer.channelClosed])
        outcomes[peer.session.closed ? 'closed' : 'survived']++
        expect(peer.rawStream.destroyed).toBe(false)
      } finally {
        await Promise.all(nodes.splice(0).map((n) => n.transport.close()))
      }
    }), { numRuns: 25, seed: 0xf0221 })
    // Both paths ran: sequences the session answered, and sequences that closed its channel.
    expect(outcomes.survived).toBeGreaterThan(0)
    expect(outcomes.closed).toBeGreaterThan(0)
  })

  it('swarm — a peer cannot queue more than maxOutstanding requests', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => { release = r })
    const peer = await rawPeerAgainst({
      maxOutstanding: 8,
      serveConcurrency: 2,
      serve: async (sha, offset, length) => { await gate; return store.get(sha)!.subarray(offset, offset + length) },
    })
    const sha256 = Buffer.from(blobHash, 'hex')
    for (let id = 1; id <= 20; id++) peer.send(MessageType.request, toBytes(encoders.request, { id, sha256, offset: 0, length: 16 }))
    await peer.waitFor(12)
    expect(peer.received.every((m) => m.type === MessageType.reject && decoders.reject(m.bytes).reason === 'busy')).toBe(true)
    release()
    await peer.waitFor(20)
    const data = peer.received.filter((m) => m.type === MessageType.data).map((m) => decoders.data(m.bytes).id)
    expect(data.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  it('swarm — a peer that stops answering fails requests as stalled; an aborted request fails at once', async () => {
    const { b } = await tcpPair({ serve: () => new Promise(() => {}) }, { stallTimeoutMs: 300 })
    const ac = new AbortController()
    const aborted = b.request(blobHash, 0, 10, { signal: ac.signal }).catch((e: unknown) => e)
    ac.abort()
    expect(pieceFailure(await aborted)).toBe('aborted')
    const stalled = once(b, 'stalled')
    const err = await b.request(blobHash, 0, 10).catch((e: unknown) => e)
    expect(pieceFailure(err)).toBe('stalled')
    expect(err).toMatchObject({ code: 'UPSWARM_E_TIMEOUT' })
    expect((await stalled)[0]).toBe(1)
  })

  it('swarm — an upload-limited session still delivers every byte intact', async () => {
    const { a, b } = await tcpPair({ maxUploadRate: 8 * MiB })
    const pieces = await Promise.all([0, 1, 2, 3].map((i) => b.request(blobHash, i * MiB, MiB)))
    expect(hex(Buffer.concat(pieces))).toBe(blobHash)
    expect(a.bytesUp).toBe(blob.length)
  })

  it('swarm — a saturated upload limit rejects further requests as busy at once, and serves what it admitted', async () => {
    // 1 MiB/s and a 1.5 s backlog: of six 1 MiB requests sent at once, the first passes on the
    // burst, the next two fill the backlog; the rest are rejected 'busy' without waiting.
    const { a, b } = await tcpPair({ maxUploadRate: MiB, maxUploadBacklogMs: 1500 })
    const results = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => b.request(blobHash, i * MiB, MiB).then(
      (data) => ({ ok: hex(data) === hex(blob.subarray(i * MiB, (i + 1) * MiB)) }),
      (err: unknown) => ({ failure: pieceFailure(err) }),
    )))
    expect(results.filter((r) => 'ok' in r)).toEqual([{ ok: true }, { ok: true }, { ok: true }])
    expect(results.filter((r) => 'failure' in r)).toEqual([{ failure: 'busy' }, { failure: 'busy' }, { failure: 'busy' }])
    expect(a.bytesUp).toBe(3 * MiB)
  })

  it('swarm — with uploadRank, pieces waiting for upload capacity go lowest rank first (the rarest), and a cancelled one leaves the turns unsent', async () => {
    // 2 MiB/s with no burst: the first 1 MiB goes at once, each next one waits its turn. Ranks as
    // the daemon's holder counts: piece 2 held by no other peer, piece 1 by 5, piece 0 by 10.
    const rank: Record<number, number> = { 0: 10, 1: 5, 2: 0 }
    const { a, b } = await tcpPair({ uploadBucket: new TokenBucket(2 * MiB, 1), maxUploadBacklogMs: 10_000, uploadRank: (_sha, offset) => rank[offset / MiB]! })
    const order: number[] = []
    const ask = (i: number, signal?: AbortSignal): Promise<void> => b.request(blobHash, i * MiB, MiB, signal ? { signal } : {}).then((data) => {
      expect(hex(data)).toBe(hex(blob.subarray(i * MiB, (i + 1) * MiB)))
      order.push(i)
    })
    await Promise.all([ask(0), ask(1), ask(2)])
    expect(order).toEqual([0, 2, 1])
    expect(a.bytesUp).toBe(3 * MiB)

    // Piece 1 asked and withdrawn while it waits: a later piece 0 (rank 10) is the next one sent,
    // which it could not be if piece 1 (rank 5) still waited.
    order.length = 0
    const withdraw = new AbortController()
    const first = ask(2)
    const cancelled = ask(1, withdraw.signal).catch((err: unknown) => pieceFailure(err))
    withdraw.abort()
    expect(await cancelled).toBe('aborted')
    await first
    await ask(0)
    expect(order).toEqual([2, 0])
    expect(a.bytesUp).toBe(5 * MiB)
  })

  it('swarm — closing the connection fails pending requests as closed', async () => {
    const { b, streamA } = await tcpPair({ serve: () => new Promise(() => {}) })
    const pending = b.request(blobHash, 0, 10).catch((e: unknown) => e)
    streamA.destroy()
    expect(pieceFailure(await pending)).toBe('closed')
    await closed(streamA)
  })
})

describe("the share daemon's peer set", () => {
  /** Settles what one turn of the event loop queued (the peer set wakes its waiters once per turn). */
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

  it('swarm — a blob download wakes at its own pieces announced, not at other blobs\' pieces; a freed slot wakes every download once', async () => {
    const { a, b } = await tcpPair()
    const peers = new PeerSet()
    peers.add('a', b)
    await peers.announced(5_000)
    const x = 'ab'.repeat(32)
    const y = 'cd'.repeat(32)
    const woken: string[] = []
    // Long timeouts: only a change can end these waits within the test.
    const waitX = peers.nextChange(60_000, x)
    const waitY = peers.nextChange(60_000, y)
    void waitX.then(() => woken.push('x'))
    void waitY.then(() => woken.push('y'))
    const piece = once(b, 'have-piece')
    a.announcePiece(x, MiB, 3)
    await piece
    await turn()
    await turn()
    expect(woken).toEqual(['x'])
    // A change that may concern any download (here a request slot freed) wakes the rest, once.
    const entry = peers.get('a')!
    peers.take(entry)
    peers.take(entry)
    peers.release(entry)
    peers.release(entry)
    expect(entry.inflight).toBe(0)
    await waitY
    expect(woken).toEqual(['x', 'y'])
    // A wait that something else ended is forgotten: a later change does not resolve it.
    let late = false
    const cancelled = peers.nextChange(60_000, x)
    void cancelled.then(() => { late = true })
    cancelled.cancel()
    a.announcePiece(x, MiB, 4)
    await once(b, 'have-piece')
    peers.changed()
    await turn()
    await turn()
    expect(late).toBe(false)
    // A range announced wakes its blob's download, and makes the peer a holder of that run only.
    const z = 'ef'.repeat(32)
    const waitZ = peers.nextChange(60_000, z)
    a.announceRange(z, 1_500_000, 800_000)
    await waitZ
    expect(peers.holders(z, MiB, 1, 2, { offset: 1_500_000, length: 800_000 }).map((p) => p.key)).toEqual(['a'])
    expect(peers.holders(z, MiB, 1, 2, { offset: 2_300_000, length: 700_000 })).toEqual([])
    expect(peers.holders(z, MiB, 1, 2)).toEqual([])
  })
})

describe('swarm transport', () => {
  it('swarm — two nodes find each other on a Hyperswarm topic and exchange pieces', async () => {
    const bootstrap = parseBootstrap(clusterInfo().dhtBootstrap)
    const sessions: PieceSession[] = []
    const a = makeNode((stream) => sessions.push(new PieceSession(stream, { serve: serveFromStore })), { bootstrap })
    const b = makeNode((stream) => sessions.push(new PieceSession(stream)), { bootstrap })
    nodes.push(a, b)
    const topic = topicFor(randomUUID(), 1)
    await a.transport.join(topic, { server: true, client: false })
    await b.transport.join(topic, { server: false, client: true })
    await b.transport.flush()
    const [{ info }] = await Promise.all([b.nextConnection(), a.nextConnection()])
    expect(info.via).toBe('dht')
    expect(info.peer).toBe(a.transport.publicKey.toString('hex'))
    const client = sessions.find((s) => s.peer === info.peer)!
    expect(await client.opened()).toBe(true)
    const piece = await client.request(blobHash, MiB, MiB)
    expect(piece.equals(blob.subarray(MiB, 2 * MiB))).toBe(true)
  })

  it('swarm — one connection per remote key: a repeated dial and a crossed dial converge', async () => {
    const a = makeNode()
    const b = makeNode()
    nodes.push(a, b)
    const addrA = await a.transport.listen('127.0.0.1')
    const addrB = await b.transport.listen('127.0.0.1')
    const first = await b.transport.dial(addrA.host, addrA.port)
    const again = await b.transport.dial(addrA.host, addrA.port)
    expect(again).toBe(first)
    expect(b.transport.connections.size).toBe(1)

    await a.transport.dial(addrB.host, addrB.port) // crossed: A dials B while B's connection to A is up
    await vi.waitFor(() => {
      const sa = a.transport.connections.get(b.transport.publicKey.toString('hex'))
      const sb = b.transport.connections.get(a.transport.publicKey.toString('hex'))
      expect(sa && sb && sa.stream.handshakeHash!.equals(sb.stream.handshakeHash!)).toBe(true)
      expect(a.delivered.filter((d) => !d.stream.destroyed)).toHaveLength(1)
      expect(b.delivered.filter((d) => !d.stream.destroyed)).toHaveLength(1)
    }, { timeout: 10_000, interval: 20 })
  })

  it('swarm — a dial to another key than expected, or to a closed port, fails', async () => {
    const a = makeNode()
    const b = makeNode()
    nodes.push(a, b)
    const addr = await a.transport.listen('127.0.0.1')
    await expect(b.transport.dial(addr.host, addr.port, { remotePublicKey: Buffer.alloc(32, 7) })).rejects.toMatchObject({ code: 'UPSWARM_E_PEER' })
    expect(b.transport.connections.size).toBe(0)
    await a.transport.close()
    await expect(b.transport.dial(addr.host, addr.port)).rejects.toMatchObject({ code: 'UPSWARM_E_PEER', message: expect.stringMatching(/could not connect/) })
  })
})

describe('tree nodes from peers (issue 13 item 3)', () => {
  it('swarm — a node is asked of one peer after another: a peer that lacks it says not-found, a peer whose bytes do not hash to its name is banned, the right bytes count', async () => {
    const node = randomBytes(5000)
    const hash = hex(node)
    const other = randomBytes(4000)
    const otherHash = hex(other)
    // The daemon's serve: no blob, then the copy's tree store (here, a map).
    const honest = makeServe({ partials: new Map(), stores: () => [], layout: {} as never, pathsOf: () => undefined, node: async (h) => (h === hash ? node : undefined) })
    const liar: PieceSessionOptions['serve'] = async (_sha, offset, length) => randomBytes(5000).subarray(offset, offset + length)
    const empty: PieceSessionOptions['serve'] = async () => null
    const peers = new PeerSet()
    for (const [name, serve] of [['empty', empty], ['liar', liar], ['honest', honest]] as const) {
      const { b } = await tcpPair({ serve })
      peers.add(name, b)
    }
    const got = await nodesFromPeers(peers, [hash])
    expect(Buffer.from(got.get(hash)!).equals(node)).toBe(true)
    // Whichever order the peers were asked in, a liar asked was banned; the honest one never is.
    expect(peers.get('honest')).toBeDefined()
    // Asked of every peer left (the liar, if still there, lies again and is banned): none holds it.
    await expect(nodesFromPeers(peers, [otherHash])).rejects.toMatchObject({ code: 'UPSWARM_E_NO_SERVER', message: expect.stringMatching(/none of the \d connected peer\(s\) holds it/) })
    expect(peers.get('liar')).toBeUndefined()
    expect(peers.all().map((p) => p.key).sort()).toEqual(['empty', 'honest'])
  })
})
