import { afterEach, describe, expect, it } from 'vitest'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import Hypercore from 'hypercore'
import { generatePublisherKey, sodiumKeyPair, type PublisherKey } from '../../infra/release/keys.ts'
import { encodeRelease, signManifest } from '../../infra/release/manifest.ts'
import { openFeed, type ReleaseFeed, type FeedEntry } from '../../infra/swarm/release-feed.ts'
import { PieceSession } from '../../infra/swarm/piece-protocol.ts'
import { tempDir } from '../helpers/cluster.ts'
import { makeNode, type Node } from './swarm-fixtures.ts'

const product = randomUUID()

function releaseBytes(key: PublisherKey, rev: number, label = `v${rev}`): Buffer {
  return encodeRelease(signManifest({ format: 1, product, rev, label, createdAt: '2026-01-01T00:00:00Z', pieceSize: 1 << 20, entries: [] }, key))
}

/** The next `n` 'release' events of a feed. */
function nextReleases(feed: ReleaseFeed, n: number): Promise<FeedEntry[]> {
  const got: FeedEntry[] = []
  return new Promise((resolve) => {
    const on = (e: FeedEntry): void => {
      got.push(e)
      if (got.length === n) {
        feed.off('release', on)
        resolve(got)
      }
    }
    feed.on('release', on)
  })
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function dir(): Promise<string> {
  const d = await tempDir('upswarm-feed-')
  cleanups.push(d.cleanup)
  return d.path
}

/** A node that replicates `core` (a ReleaseFeed or a raw Hypercore) and runs a piece session on every connection. */
function feedNode(core: { replicate(stream: never): unknown }, serve?: (sha: string, off: number, len: number) => Promise<Uint8Array | null>): Node & { sessions: PieceSession[] } {
  const sessions: PieceSession[] = []
  const node = makeNode((stream) => {
    core.replicate(stream as never) // same connection, same Protomux, as the piece channel
    sessions.push(new PieceSession(stream, serve ? { serve } : {}))
  })
  cleanups.push(() => node.transport.close())
  return Object.assign(node, { sessions })
}

async function connect(server: Node, client: Node): Promise<void> {
  const addr = server.transport.tcpAddress ?? await server.transport.listen('127.0.0.1')
  await client.transport.dial(addr.host, addr.port)
}

/** A new reader that connects to `server` and has verified its first `n` releases. */
async function readerSyncedFrom(server: Node, key: PublisherKey, n: number): Promise<{ feed: ReleaseFeed; node: Node }> {
  const feed = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey })
  const node = feedNode(feed)
  const got = nextReleases(feed, n)
  await connect(server, node)
  await got
  return { feed, node }
}

async function open(opts: Parameters<typeof openFeed>[0]): Promise<ReleaseFeed> {
  const feed = await openFeed(opts)
  cleanups.push(() => feed.close())
  return feed
}

describe('swarm release feed', () => {
  it('swarm — live appends reach a reader over the connection that also carries the piece channel', async () => {
    const key = generatePublisherKey()
    const writer = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey, writerKey: key })
    const reader = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey })
    expect(reader.key.equals(writer.key)).toBe(true)
    expect(reader.writable).toBe(false)
    await writer.append(releaseBytes(key, 1))

    const piece = randomBytes(4096)
    const w = feedNode(writer, async () => piece)
    const r = feedNode(reader)
    const first = nextReleases(reader, 1)
    await connect(w, r)
    expect((await first)[0]).toMatchObject({ index: 0, product, rev: 1, label: 'v1' })

    const live = nextReleases(reader, 1)
    expect(await writer.append(releaseBytes(key, 2))).toEqual({ index: 1, length: 2, appended: true })
    expect((await live)[0]).toMatchObject({ index: 1, rev: 2 })
    await writer.waitForRemote(2, { timeoutMs: 10_000 })

    // The piece channel runs beside the feed on the one connection.
    expect(r.transport.connections.size).toBe(1)
    const session = r.sessions[0]!
    expect(await session.opened()).toBe(true)
    expect((await session.request('ab'.repeat(32), 0, 4096)).equals(piece)).toBe(true)

    expect(reader.releases(product).map((e) => e.rev)).toEqual([1, 2])
    expect(reader.latest(product)?.rev).toBe(2)
    expect((await reader.get(1)).manifest.rev).toBe(2)
  })

  it('swarm — append is idempotent, and refuses a lower revision, a foreign signature and a reader', async () => {
    const key = generatePublisherKey()
    const writer = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey, writerKey: key })
    await writer.append(releaseBytes(key, 2))
    expect(await writer.append(releaseBytes(key, 2))).toEqual({ index: 0, length: 1, appended: false })
    await expect(writer.append(releaseBytes(key, 2, 'other'))).rejects.toMatchObject({ code: 'UPSWARM_E_CONFLICT' })
    await expect(writer.append(releaseBytes(key, 1))).rejects.toMatchObject({ code: 'UPSWARM_E_PUBLISH' })
    await expect(writer.append(releaseBytes(generatePublisherKey(), 3))).rejects.toMatchObject({ code: 'UPSWARM_E_SIGNATURE' })
    expect(writer.length).toBe(1)
    const reader = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey })
    await expect(reader.append(releaseBytes(key, 3))).rejects.toMatchObject({ code: 'UPSWARM_E_PUBLISH' })
    await expect(open({ storageDir: await dir(), publisherPublicKey: key.publicKey, writerKey: generatePublisherKey() })).rejects.toMatchObject({ code: 'UPSWARM_E_CONFIG' })
  })

  it('swarm — a forged block and a block that rewinds the revision are refused', async () => {
    const key = generatePublisherKey()
    // The publisher's key signs the Hypercore, but block 1 is a release signed by someone else
    // (claiming the publisher's key) and block 2 replays rev 1: a reader must refuse both.
    const raw = new Hypercore(await dir(), { keyPair: sodiumKeyPair(key) })
    cleanups.push(() => raw.close())
    const forged = JSON.parse(releaseBytes(generatePublisherKey(), 2).toString()) as { publicKey: string }
    forged.publicKey = key.publicKey
    await raw.append([releaseBytes(key, 1), Buffer.from(JSON.stringify(forged)), releaseBytes(key, 1, 'replayed'), releaseBytes(key, 3)])

    const reader = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey })
    const rejected: [string, number][] = []
    reader.on('rejected', (e, i) => rejected.push([e.code, i]))
    const accepted = nextReleases(reader, 2)
    await connect(feedNode(raw), feedNode(reader))
    expect((await accepted).map((e) => [e.index, e.rev])).toEqual([[0, 1], [3, 3]])
    expect(rejected).toEqual([['UPSWARM_E_SIGNATURE', 1], ['UPSWARM_E_MANIFEST', 2]])
    await expect(reader.get(1)).rejects.toMatchObject({ code: 'UPSWARM_E_SIGNATURE' })
    expect(reader.releases().map((e) => e.rev)).toEqual([1, 3])
  })

  it('swarm — a stale peer and a forked feed cannot rewind a reader', async () => {
    const key = generatePublisherKey()
    const raw = new Hypercore(await dir(), { keyPair: sodiumKeyPair(key) })
    cleanups.push(() => raw.close())
    await raw.append(releaseBytes(key, 1))
    const w = feedNode(raw)

    // A stale reader holds only rev 1.
    const { feed: stale, node: s } = await readerSyncedFrom(w, key, 1)
    await s.transport.close()

    await raw.append([releaseBytes(key, 2), releaseBytes(key, 3)])
    const { feed: reader, node: r } = await readerSyncedFrom(w, key, 3)
    await w.transport.close()

    // Meeting the stale peer leaves the reader at 3 blocks (and the stale peer catches up from it).
    const s2 = feedNode(stale)
    const caughtUp = nextReleases(stale, 2)
    await connect(r, s2)
    expect((await caughtUp).map((e) => e.rev)).toEqual([2, 3])
    expect(reader.length).toBe(3)
    expect(reader.releases().map((e) => e.rev)).toEqual([1, 2, 3])

    // The key holder rewrites history (truncate = a new fork): the reader does not follow.
    await raw.truncate(1)
    await raw.append(releaseBytes(key, 5, 'rewritten'))
    const w2 = feedNode(raw)
    const forked = once(reader, 'forked-peer')
    await connect(w2, r)
    expect(await reader.update({ timeoutMs: 10_000, minPeers: 1 })).toBe(false)
    expect((await forked)[0]).toMatchObject({ code: 'UPSWARM_E_CONFLICT' })
    expect(reader.length).toBe(3)
    expect(reader.releases().map((e) => e.rev)).toEqual([1, 2, 3])
  })

  it('swarm — a throw-away publisher catches up before appending; one that does not is a conflict', async () => {
    const key = generatePublisherKey()
    const seed = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey, writerKey: key })
    await seed.append(releaseBytes(key, 1))
    await seed.append(releaseBytes(key, 2))
    const server = feedNode(seed)

    // A fresh build machine: empty storage, the publisher key. It catches up, then appends.
    const publisher = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey, writerKey: key })
    await connect(server, feedNode(publisher))
    expect(await publisher.update({ timeoutMs: 10_000, minPeers: 1 })).toBe(true)
    expect(publisher.latest(product)?.rev).toBe(2)
    const reached = nextReleases(seed, 1)
    expect((await publisher.append(releaseBytes(key, 3))).index).toBe(2)
    await publisher.waitForRemote(3, { timeoutMs: 10_000 })
    expect((await reached)[0]!.rev).toBe(3)

    // One that skips the catch-up signs a second history for block 0: the seed refuses and freezes.
    const careless = await open({ storageDir: await dir(), publisherPublicKey: key.publicKey, writerKey: key })
    await careless.append(releaseBytes(key, 1, 'again'))
    const conflict = once(seed, 'conflict')
    await connect(server, feedNode(careless))
    expect((await conflict)[0]).toMatchObject({ code: 'UPSWARM_E_CONFLICT' })
    expect(seed.releases().map((e) => e.rev)).toEqual([1, 2, 3])
  })
})

