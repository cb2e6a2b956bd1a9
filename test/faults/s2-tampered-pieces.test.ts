// Fault suite S2 (issue 11; R-VERIFY, docs/protocol.md piece exchange): a peer serves tampered
// pieces over real TCP + Noise connections on 127.0.0.1, next to an honest peer or alone with the
// servers. The multi-source download (actors/share-daemon/multi-source.ts) must install no bad
// byte, ban the peer, and keep it banned when it reconnects: after the ban it is asked for
// nothing. The victim wires its connections as the share daemon does (PeerSet.add per
// connection). The servers are an in-process range reader serving the true bytes.
// Each blob meets a new bad peer, while every bad peer banned before dials again. Every other pair
// of blobs is a format-2 file: no piece hashes, its pieces checked by its chunks' hashes
// (piece-layout.ts). Full: 30 blobs; short: 4.
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fetchBlobMultiSource, layoutOf, ServerSlots } from '../../actors/share-daemon/multi-source.ts'
import { chunkFile } from '../../infra/formats/fastcdc.ts'
import { DEFAULT_CHUNKER } from '../../infra/formats/release.ts'
import { PeerSet } from '../../actors/share-daemon/peers.ts'
import { hashFile, PIECE_SIZE } from '../../infra/release/hash.ts'
import type { FileEntry } from '../../infra/release/manifest.ts'
import { BlobStore } from '../../infra/store/blob-store.ts'
import { PieceSession, type ServeFn } from '../../infra/swarm/piece-protocol.ts'
import type { HostPort } from '../../infra/swarm/transport.ts'
import { tempDir } from '../helpers/cluster.ts'
import { makeNode, type Node } from '../integration/swarm-fixtures.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const RUNS = sized(4, 30)
const PRODUCT = '1b4e28ba-2fa1-11d2-883f-0016d3cca427'
const WAIT_MS = 10_000

describe('faults S2 — tampered pieces from peers', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  const blobs = new Map<string, Buffer>()
  const rnd = random()
  const honestServe: ServeFn = async (sha, offset, length) => {
    return blobs.get(sha)?.subarray(offset, offset + length) ?? null
  }
  /** Same length, one byte changed at a random place: only the hash tells. */
  const badServe: ServeFn = async (sha, offset, length) => {
    const real = blobs.get(sha)?.subarray(offset, offset + length)
    if (!real) return null
    const out = Buffer.from(real)
    const at = Math.floor(rnd() * out.length)
    out[at] = out[at]! ^ 0xff
    return out
  }
  const peers = new PeerSet()
  let victim: Node
  let victimAt: HostPort
  const honestSessions: PieceSession[] = []
  let honest: Node

  /** A peer that tampers with every piece it serves; a fresh key each run. */
  interface BadPeer { node: Node; sessions: PieceSession[]; streams: NoiseSecretStream[]; asked: number; key: string }
  const badPeers: BadPeer[] = []
  function newBadPeer(): BadPeer {
    const p: BadPeer = { node: undefined as never, sessions: [], streams: [], asked: 0, key: '' }
    p.node = makeNode((stream) => {
      p.sessions.push(new PieceSession(stream, { serve: async (sha, offset, length) => { p.asked++; return badServe(sha, offset, length) } }))
      p.streams.push(stream)
    })
    p.key = p.node.transport.publicKey.toString('hex')
    badPeers.push(p)
    return p
  }
  /** Dials the victim (again) and waits until the victim has the connection. */
  async function connect(p: BadPeer): Promise<boolean> {
    for (const s of p.streams.splice(0)) s.destroy()
    p.sessions.splice(0)
    const before = victim.delivered.length
    await p.node.transport.dial(victimAt.host, victimAt.port).catch(() => undefined)
    const deadline = Date.now() + WAIT_MS
    while (victim.delivered.length === before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20))
    for (const s of p.sessions) await s.opened()
    return victim.delivered.length > before
  }

  beforeAll(async () => {
    tmp = await tempDir('upswarm-faults-s2-')
    // The victim: every connection becomes a session in its PeerSet, as in the share daemon.
    victim = makeNode((stream, info) => {
      const session = new PieceSession(stream, {})
      session.on('protocol-error', (err) => peers.ban(info.peer, err.message))
      peers.add(info.peer, session)
    })
    honest = makeNode((stream) => { honestSessions.push(new PieceSession(stream, { serve: honestServe })) })
    victimAt = await victim.transport.listen('127.0.0.1')
    await honest.transport.dial(victimAt.host, victimAt.port)
    for (const s of honestSessions) expect(await s.opened()).toBe(true)
  })
  afterAll(async () => {
    for (const n of [victim, honest, ...badPeers.map((p) => p.node)]) await n?.transport.close()
    await tmp?.cleanup()
  })

  /** Resolves once the victim's peer set lists `count` holders of the blob (bounded). */
  async function holders(sha: string, count: number): Promise<number> {
    const deadline = Date.now() + WAIT_MS
    while (peers.holders(sha, PIECE_SIZE, 0).length < count && Date.now() < deadline) {
      await Promise.race([once(peers, 'changed'), new Promise((r) => setTimeout(r, 200))])
    }
    return peers.holders(sha, PIECE_SIZE, 0).length
  }

  it('faults S2 — no tampered byte installed; the bad peer banned, also after it reconnects', { timeout: sized(60_000, 600_000) }, async () => {
    const figures = new FaultFigures('faults-s2-tampered-pieces', 'S2: tampered pieces from a peer over TCP + Noise')
    const store = new BlobStore(join(tmp.path, 'store'))
    const row = (name: string) => ({ setting: name, blobs: 0, 'format-2 blobs': 0, 'bad pieces seen': 0, 'pieces from peers': 0, 'pieces from servers': 0, 'installed bad': 0, 'bad peer asked': 0, 'bad peer banned': 0, 'asked after ban': 0 })
    const rows = [row('bad peer + honest peer + servers'), row('bad peer + servers')]
    let installedBad = 0
    let askedAfterBan = 0
    let reconnects = 0
    for (let i = 0; i < RUNS; i++) {
      const withHonest = i % 2 === 0
      const r = rows[withHonest ? 0 : 1]!
      figures.runs++
      r.blobs++
      const data = randomBytes(2 * PIECE_SIZE + 1 + Math.floor(rnd() * PIECE_SIZE))
      const file = join(tmp.path, `blob-${i}`)
      await writeFile(file, data)
      blobs.set(createHash('sha256').update(data).digest('hex'), data)
      // Format 1: the manifest's piece hashes; format 2: no piece hashes, the tree's chunks.
      const chunked = Math.floor(i / 2) % 2 === 1
      const { chunks, pieces, ...h } = chunked ? await chunkFile(file, DEFAULT_CHUNKER) : { ...(await hashFile(file)), chunks: undefined }
      const entry: FileEntry = { path: `f${i}.bin`, kind: 'file', mode: 0o644, ...h, ...(chunked ? {} : { pieces }) }
      if (chunked) r['format-2 blobs']++
      // A new bad peer; every bad peer banned before dials again under its old key.
      const fresh = newBadPeer()
      await connect(fresh)
      const banned = badPeers.filter((p) => p !== fresh && peers.isBanned(p.key))
      for (const p of banned) if (await connect(p)) reconnects++
      const askedBefore = new Map(banned.map((p) => [p, p.asked]))
      // Every bad peer that still has a session offers the blob; the honest one every other.
      for (const p of [fresh, ...banned]) for (const s of p.sessions) if (!s.closed) s.announceHave([h.sha256], { product: PRODUCT, rev: i + 1 })
      if (withHonest) for (const s of honestSessions) s.announceHave([h.sha256], { product: PRODUCT, rev: i + 1 })
      const expected = (withHonest ? 1 : 0) + 1
      if ((await holders(h.sha256, expected)) < expected) figures.fail(`blob ${i}: the victim never saw ${expected} holders`)
      let fromServers = 0
      const stats = await fetchBlobMultiSource(entry, store, {
        peers,
        server: { readPiece: async (sha: string, offset: number, length: number) => { fromServers++; return blobs.get(sha)!.subarray(offset, offset + length) } } as never,
        serverSlots: new ServerSlots(2),
        selfKey: victim.transport.publicKey.toString('hex'),
        startedAt: Date.now(),
        pieceSize: PIECE_SIZE,
        partials: new Map(),
        announcePiece: () => undefined,
      }, undefined, layoutOf(entry, PIECE_SIZE, chunks))
      const got = await readFile(store.path(h.sha256))
      if (createHash('sha256').update(got).digest('hex') !== h.sha256 || !got.equals(data)) {
        installedBad++
        r['installed bad']++
        figures.fail(`blob ${i}: the stored bytes are not the blob`)
      }
      r['bad pieces seen'] += stats.badPieces
      r['pieces from peers'] += stats.piecesFromPeers
      r['pieces from servers'] += fromServers
      if (fresh.asked > 0) r['bad peer asked']++
      if (peers.isBanned(fresh.key)) r['bad peer banned']++
      if (fresh.asked > 0 && !peers.isBanned(fresh.key)) figures.fail(`blob ${i}: the bad peer served ${fresh.asked} pieces and is not banned`)
      for (const p of banned) {
        const n = p.asked - askedBefore.get(p)!
        if (n > 0) {
          askedAfterBan += n
          r['asked after ban'] += n
          figures.fail(`blob ${i}: a banned peer was asked ${n} times after it reconnected`)
        }
      }
    }
    const goals = await figures.finish({
      parameters: { runs: RUNS, pieceSize: PIECE_SIZE, reconnects },
      rows,
      goals: [
        zero('blobs installed with a tampered byte', installedBad, `of ${RUNS}`),
        zero('requests to the banned peer after it reconnected', askedAfterBan, `over ${reconnects} reconnects`),
        { goal: 'every bad peer that served a piece is banned', met: rows.every((r) => r['bad peer asked'] === r['bad peer banned']), detail: `${peers.bannedPeers().length} of ${badPeers.length} bad peers banned` },
      ],
      notes: ['every tampered piece has the right length and one byte flipped; the servers are an in-process range reader with the true bytes', 'a format-2 blob has no piece hashes: each piece is a run of its chunks, every chunk checked by its own SHA-256'],
    })
    expect(missed(goals)).toEqual([])
  })
})
