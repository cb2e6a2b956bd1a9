// Fault suite S2 through a whole sharing daemon (issue 11; R-VERIFY, R-ACCEL-2): the victim is a
// real daemon (startDaemon, in-process, as the e2e swarm tests run it) on a cluster of its own
// (credentials + TLS), with a real repository server and proxy. Each run publishes a new
// revision (a new blob of 2–3 pieces) and a new malicious peer dials the daemon over TCP + Noise
// on 127.0.0.1, says it holds the blob, and serves every piece with one byte flipped (same
// length); every bad peer banned in an earlier run dials again under its key and says the same.
// Every other run an honest peer holds the blob too. The daemon updates (`updateNow`, as
// `upswarm update` through it does). Must hold: installed tampered bytes 0 (the tree and the
// history store the daemon serves from match the signed manifest), the bad peer banned, asked for
// nothing after it reconnects, and the update complete from honest sources. Full: 20 runs; short: 2.
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { startDaemon, type Daemon } from '../../actors/share-daemon/index.ts'
import { serverSource } from '../../actors/share-daemon/sources.ts'
import { init, openUpdate } from '../../actors/updater/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { PieceSession, type ServeFn } from '../../infra/swarm/piece-protocol.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'
import { makeNode, type Node } from '../integration/swarm-fixtures.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const RUNS = sized(2, 20)
const WAIT_MS = 30_000

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** path → SHA-256 of every file under `root` (the working copy's metadata left out). */
async function treeHashes(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    const abs = join(e.parentPath, e.name)
    const rel = abs.slice(root.length + 1)
    if (e.isFile() && !rel.startsWith('.upswarm')) out[rel] = sha256(await readFile(abs))
  }
  return out
}

/** Blobs in a content-addressed store whose bytes do not hash to their name. */
async function badBlobs(store: string): Promise<string[]> {
  const bad: string[] = []
  for (const e of await readdir(store, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isFile() || !/^[0-9a-f]{64}$/.test(e.name)) continue
    if (sha256(await readFile(join(e.parentPath, e.name))) !== e.name) bad.push(e.name)
  }
  return bad
}

describe('faults S2 — tampered pieces from peers, through a whole sharing daemon', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let nc: NatsConnection
  let daemonNc: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let daemon: Daemon
  const key = generatePublisherKey()
  const product = newProduct()
  const rnd = random()
  /** Every blob published, by SHA-256: what the peers serve (honestly or not). */
  const blobs = new Map<string, Buffer>()
  const src = (): string => join(dir.path, 'src')
  const trust = (): string => join(dir.path, 'trust.json')
  const wc = (): string => join(dir.path, 'wc')

  /** A peer that flips one byte of every piece it serves; a fresh key each run. */
  interface Peer { node: Node; sessions: PieceSession[]; streams: NoiseSecretStream[]; asked: number; key: string }
  const badPeers: Peer[] = []
  let honest: Peer
  function newPeer(tamper: boolean): Peer {
    const serve: ServeFn = async (sha, offset, length) => {
      p.asked++
      const real = blobs.get(sha)?.subarray(offset, offset + length)
      if (!real || !tamper) return real ?? null
      const out = Buffer.from(real)
      const at = Math.floor(rnd() * out.length)
      out[at] = out[at]! ^ 0xff
      return out
    }
    const p: Peer = { node: undefined as never, sessions: [], streams: [], asked: 0, key: '' }
    p.node = makeNode((stream) => {
      p.sessions.push(new PieceSession(stream, { serve, product }))
      p.streams.push(stream)
    })
    p.key = p.node.transport.publicKey.toString('hex')
    return p
  }

  /** Dials the daemon (again, after closing its old connection) and waits until the daemon has it. */
  async function connect(p: Peer): Promise<boolean> {
    for (const s of p.streams.splice(0)) s.destroy()
    p.sessions.splice(0)
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), WAIT_MS)
      const onPeer = (k: string): void => {
        if (k === p.key) done(true)
      }
      const done = (ok: boolean): void => {
        clearTimeout(timer)
        daemon.off('peer.connected', onPeer)
        resolve(ok)
      }
      daemon.on('peer.connected', onPeer)
    })
    await p.node.transport.dial('127.0.0.1', daemon.port).catch(() => undefined)
    const ok = await seen
    for (const s of p.sessions) await s.opened()
    return ok
  }

  /** Publishes the next revision: a small file and one new blob of 2–3 pieces (the previous one gone). */
  async function nextRevision(run: number): Promise<{ rev: number; sha: string }> {
    await rm(src(), { recursive: true, force: true })
    const data = randomBytes(2 * PIECE_SIZE + 1 + Math.floor(rnd() * PIECE_SIZE))
    await writeTree(src(), { 'run.txt': `run ${run}\n`, [`lib/blob-${run}.bin`]: data })
    blobs.set(sha256(data), data)
    const r = await publish({ nc, src: src(), product, key, trust: trust(), skipFeed: true })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= r.rev, { timeout: WAIT_MS })
    return { rev: r.rev, sha: sha256(data) }
  }

  beforeAll(async () => {
    dir = await tempDir('upswarm-faults-s2-daemon-')
    // A cluster of its own: its proxy and server are the only ones the daemon can be sent to.
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    nc = await own.connect('faults-s2-daemon')
    daemonNc = await own.connect('faults-s2-victim', { kind: 'client', name: 's2-victim' })
    await writeTree(src(), { 'run.txt': 'first\n' })
    await publish({ nc, src: src(), product, key, trust: trust(), skipFeed: true })
    server = await startRepoServer({ nc, id: `s2d-${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust()).ready() })
    proxy = await startProxy({ nc })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 1, { timeout: WAIT_MS })
    await init(wc(), { product, publicKey: key.publicKey, rev: 1, source: serverSource(nc, product) })
    daemon = await startDaemon({ dir: wc(), nc: daemonNc, host: '127.0.0.1', updater: openUpdate })
    honest = newPeer(false)
    expect(await connect(honest)).toBe(true)
  }, 120_000)
  afterAll(async () => {
    await daemon?.close()
    for (const p of [honest, ...badPeers]) await p?.node.transport.close()
    await proxy?.close()
    await server?.close()
    await daemonNc?.close()
    await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('faults S2 — through a daemon: no tampered byte installed, the bad peer banned and asked nothing after it reconnects, the update completed from honest sources', { timeout: sized(180_000, 900_000) }, async () => {
    const figures = new FaultFigures('faults-s2-daemon-tampered-pieces', 'S2: tampered pieces from peers, through a whole sharing daemon')
    const row = (setting: string) => ({
      setting, updates: 0, 'completed': 0, 'bad pieces seen': 0, 'pieces from peers': 0, 'pieces from servers': 0,
      'server pieces after a bad piece': 0, 'installed tampered': 0, 'bad peer asked': 0, 'bad peer banned': 0, 'asked after ban': 0,
    })
    const rows = [row('bad peer + honest peer + servers'), row('bad peer + servers')]
    let installedBad = 0
    let askedAfterBan = 0
    let reconnects = 0
    let incomplete = 0
    for (let run = 0; run < RUNS; run++) {
      const withHonest = run % 2 === 0
      const r = rows[withHonest ? 0 : 1]!
      figures.runs++
      r.updates++
      try {
        const { rev, sha } = await nextRevision(run)
        // A new bad peer; every bad peer banned before dials again under its old key.
        const fresh = newPeer(true)
        badPeers.push(fresh)
        if (!(await connect(fresh))) figures.fail(`run ${run}: the daemon never saw the new bad peer`)
        const banned = badPeers.filter((p) => p !== fresh && daemon.peers.isBanned(p.key))
        for (const p of banned) if (await connect(p)) reconnects++
        const askedBefore = new Map(banned.map((p) => [p, p.asked]))
        for (const p of [fresh, ...banned]) for (const s of p.sessions) if (!s.closed) s.announceHave([sha], { product, rev })
        if (withHonest) for (const s of honest.sessions) s.announceHave([sha], { product, rev })
        const holders = [fresh.key, ...(withHonest ? [honest.key] : [])]
        const announced = await daemon.peers.waitFor((peers) => holders.every((k) => peers.some((p) => p.key === k && p.session.remote.blobs.has(sha))), WAIT_MS)
        if (!announced) figures.fail(`run ${run}: the daemon never saw ${holders.length} holders of the blob`)
        const done = await daemon.updateNow()
        const s = done.sources
        r['bad pieces seen'] += s.badPieces
        r['pieces from peers'] += s.piecesFromPeers
        r['pieces from servers'] += s.piecesFromServers
        r['server pieces after a bad piece'] += s.serverReasons['bad-piece-from-peer']
        // Installed: the tree is the published one, and so is every blob the daemon will serve.
        const want = await treeHashes(src())
        const got = await treeHashes(wc())
        const wrong = [...Object.keys(want).filter((p) => got[p] !== want[p]), ...await badBlobs(join(wc(), '.upswarm', 'history'))]
        if (done.to === rev && daemon.rev() === rev && Object.keys(got).length === Object.keys(want).length && wrong.length === 0) r.completed++
        else {
          incomplete++
          figures.fail(`run ${run}: the daemon is at r${daemon.rev()} (update to r${done.to}), not r${rev} exactly; wrong: ${wrong.join(', ')}`)
        }
        if (wrong.length > 0) {
          installedBad++
          r['installed tampered']++
        }
        if (fresh.asked > 0) r['bad peer asked']++
        if (daemon.peers.isBanned(fresh.key)) r['bad peer banned']++
        if (fresh.asked > 0 && !daemon.peers.isBanned(fresh.key)) figures.fail(`run ${run}: the bad peer served ${fresh.asked} pieces and is not banned`)
        for (const p of banned) {
          const n = p.asked - askedBefore.get(p)!
          if (n > 0) {
            askedAfterBan += n
            r['asked after ban'] += n
            figures.fail(`run ${run}: a banned peer was asked ${n} times after it reconnected`)
          }
        }
      } catch (err) {
        incomplete++
        figures.fail(`run ${run}: ${(err as Error).message}`)
      }
    }
    const asked = rows.reduce((n, r) => n + r['bad peer asked'], 0)
    const goals = await figures.finish({
      parameters: { runs: RUNS, pieceSize: PIECE_SIZE, reconnects },
      rows,
      goals: [
        zero('tampered bytes installed (tree or history store)', installedBad, `of ${RUNS} updates`),
        zero('requests to a banned peer after it reconnected', askedAfterBan, `over ${reconnects} reconnects`),
        { goal: 'every bad peer that served a piece is banned', met: rows.every((r) => r['bad peer asked'] === r['bad peer banned']), detail: `${daemon.peers.bannedPeers().length} of ${badPeers.length} bad peers banned; ${asked} were asked` },
        { goal: 'every update completed from honest sources', met: incomplete === 0, detail: `${RUNS - incomplete} of ${RUNS}` },
        { goal: 'the bad peers were put to the test', met: asked > 0, detail: `${asked} of ${badPeers.length} asked for a piece` },
      ],
      notes: [
        'the victim is startDaemon with its own NATS client identity, a repository server and a proxy on a 1-node cluster with TLS and credentials; no tracker, no DHT: the peers dial it',
        'every tampered piece has the right length and one byte flipped; honest sources: the repository server (through the proxy) and, every other run, an honest peer',
      ],
    })
    expect(missed(goals)).toEqual([])
  })
})
