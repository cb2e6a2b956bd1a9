// The `upswarm/statements` channel over real swarm connections (docs/formats.md §1.8, §3.5):
// roots and fresh statements reach peers that only reach peers (issue 10 item 7, R-DHT-2).
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import c from 'compact-encoding'
import Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { afterEach, describe, expect, it } from 'vitest'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import type { UpswarmError } from '../../infra/errors.ts'
import { encodeEnvelope } from '../../infra/formats/envelope.ts'
import { signFresh } from '../../infra/formats/fresh.ts'
import { draftOf, rootBody, signRoot, type RootDraft, type SignedRoot } from '../../infra/formats/root.ts'
import { TrustStore } from '../../infra/formats/trust-store.ts'
import { RolloutStore } from '../../infra/formats/rollout-store.ts'
import { signRollout } from '../../infra/formats/rollout.ts'
import { ReleaseDocs } from '../../infra/formats/release-docs.ts'
import { signRelease } from '../../infra/formats/release.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { StatementsHolder, type StatementsEvents, type StatementsOptions } from '../../infra/swarm/statements.ts'
import { STATEMENTS_PROTOCOL, STATEMENTS_VERSION, StatementKind, statementBytes, statementEncoders } from '../../infra/swarm/statements-codec.ts'
import { topicFor } from '../../infra/swarm/transport.ts'
import { clusterInfo, tempDir } from '../helpers/cluster.ts'
import { makeNode, type Node } from './swarm-fixtures.ts'

const P = '11111111-2222-4333-8444-555555555555'
const DAY = 86_400_000
const rootKeys = [generatePublisherKey(), generatePublisherKey(), generatePublisherKey()]
const freshKey = generatePublisherKey()
const pub1 = generatePublisherKey()
const pub2 = generatePublisherKey()

function draft(version: number): RootDraft {
  return {
    version, expiresMs: Date.now() + 365 * DAY, rootKeys: rootKeys.map((k) => k.publicKey), rootThreshold: 2,
    freshKeys: [freshKey.publicKey], products: { [P]: { publish: [pub1.publicKey] } },
  }
}
const text = (s: SignedRoot): string => encodeEnvelope(s.env).toString('utf8')

/** Roots 1…n; from 2 on, the publish key rotated from pub1 to pub2. */
function chain(n: number): string[] {
  const out: string[] = []
  let prev = signRoot(rootBody(draft(1)), rootKeys)
  out.push(text(prev))
  for (let v = 2; v <= n; v++) {
    const d = draftOf(prev.root)
    d.version = v
    d.products[P] = { publish: [pub2.publicKey], retired: [{ key: pub1.publicKey, lastRev: 3 }] }
    prev = signRoot(rootBody(d), rootKeys)
    out.push(text(prev))
  }
  return out
}
const roots = chain(4)
const fresh = (ageS: number, root: number): Buffer => signFresh({ product: P, rev: 3, root, issuedMs: Date.now() - ageS * 1000, lifetimeS: 3600 }, freshKey)

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

/** When every rollout statement here was issued: signed twice, a statement is the same bytes (Ed25519 is deterministic). */
const ISSUED_MS = Date.now()

/** Rollout statement `seq` of P, for r`rev`, signed by `key` (pub2: P's publish key from root 2 on). */
const rolloutDoc = (seq: number, rev: number, key = pub2): Buffer =>
  signRollout({ product: P, seq, rev, release: String(rev).repeat(64).slice(0, 64), state: 'active', percent: 5_000, issuedMs: ISSUED_MS }, [key])

/** A trust store in a directory of its own (removed after the test), pinned to `held[0]`, holding the rest of `held`. */
async function trustStore(held: string[]): Promise<{ store: TrustStore; dir: string; file: string }> {
  const dir = await tempDir('upswarm-statements-')
  cleanups.push(dir.cleanup)
  const file = join(dir.path, 'trust.json')
  const store = await TrustStore.open(file, join(dir.path, 'tmp'))
  if (held[0]) await store.pin(held[0], 'test')
  if (held.length > 1) await store.acceptRoots(held.slice(1), 'test')
  return { store, dir: dir.path, file }
}

/** A holder whose statements channel also carries rollout statements (issue 16 item 1). */
async function rolloutHolder(held: string[], statements: Buffer[]): Promise<{ store: TrustStore; rollouts: RolloutStore; holder: StatementsHolder; file: string }> {
  const { store, dir } = await trustStore(held)
  const file = join(dir, 'rollouts.json')
  const rollouts = await RolloutStore.open(file, join(dir, 'tmp'), () => store.root)
  for (const st of statements) await rollouts.accept(st, 'test')
  const holder = new StatementsHolder(store, { products: [P], rollouts })
  cleanups.push(async () => holder.close())
  return { store, rollouts, holder, file }
}

async function storeWith(held: string[], opts: StatementsOptions = { products: [P] }): Promise<{ store: TrustStore; holder: StatementsHolder; file: string }> {
  const { store, file } = await trustStore(held)
  const holder = new StatementsHolder(store, opts)
  cleanups.push(async () => holder.close())
  return { store, holder, file }
}

/** Format-2 release document r`rev` of `product` under root `root`, signed by `key` (pub2: P's publish key from root 2 on). */
const releaseDoc = (rev: number, key = pub2, product = P, root = 4): string => signRelease({
  product, rev, createdAtMs: ISSUED_MS, root, tree: 'ab'.repeat(32), stats: { files: 1, bytes: 1, nodes: 1 },
}, [key]).bytes.toString('utf8')

/** A holder whose statements channel also carries format-2 release documents (issue 13 item 3). */
async function releaseHolder(docs: string[]): Promise<{ store: TrustStore; releases: ReleaseDocs; holder: StatementsHolder }> {
  const { store } = await trustStore(roots)
  const releases = new ReleaseDocs(() => store.root, [P])
  for (const d of docs) releases.accept(d, 'test')
  const holder = new StatementsHolder(store, { products: [P], releases })
  cleanups.push(async () => holder.close())
  return { store, releases, holder }
}

function node(holder: StatementsHolder, extra: Parameters<typeof makeNode>[1] = {}): Node {
  const n = makeNode((stream) => { holder.attach(stream) }, extra)
  cleanups.push(() => n.transport.close())
  return n
}

/** Resolves with the first `event` whose arguments satisfy `test`. */
function next<K extends keyof StatementsEvents>(holder: StatementsHolder, event: K, test: (...args: StatementsEvents[K]) => boolean = () => true): Promise<StatementsEvents[K]> {
  return new Promise((resolve) => {
    const on = (...args: StatementsEvents[K]): void => {
      if (!test(...args)) return
      holder.off(event, on as never)
      resolve(args)
    }
    holder.on(event, on as never)
  })
}

/** A hand-driven peer speaking raw statements frames, dialling `target`. */
interface RawPeer {
  send(type: number, bytes: Uint8Array): void
  closed: Promise<void>
  received: { type: number; bytes: Uint8Array }[]
  /** Resolves once `count` messages of `type` have arrived. */
  waitFor(type: number, count: number): Promise<void>
}

async function rawPeer(target: Node): Promise<RawPeer> {
  const received: { type: number; bytes: Uint8Array }[] = []
  const arrivals = new EventEmitter<{ message: [] }>()
  let send!: (type: number, bytes: Uint8Array) => void
  let closed!: Promise<void>
  const evil = makeNode((stream: NoiseSecretStream) => {
    let resolveClosed!: () => void
    closed = new Promise((r) => { resolveClosed = r })
    const ch = Protomux.from(stream).createChannel<Uint8Array>({ protocol: STATEMENTS_PROTOCOL, handshake: c.raw, onclose: () => resolveClosed() })!
    const msgs = Array.from({ length: 8 }, (_, type) => ch.addMessage<Uint8Array>({ encoding: c.raw, onmessage: (bytes) => { received.push({ type, bytes }); arrivals.emit('message') } }))
    send = (type, bytes) => { msgs[type]!.send(bytes) }
    ch.open(statementBytes(statementEncoders.handshake, STATEMENTS_VERSION))
  })
  cleanups.push(() => evil.transport.close())
  const addr = await target.transport.listen('127.0.0.1')
  await evil.transport.dial(addr.host, addr.port)
  await target.nextConnection()
  const waitFor = (type: number, count: number): Promise<void> => new Promise((resolve) => {
    const check = (): void => {
      if (received.filter((m) => m.type === type).length < count) return
      arrivals.off('message', check)
      resolve()
    }
    arrivals.on('message', check)
    check()
  })
  return { send, closed, received, waitFor }
}

const doc = (kind: number, bytes: Uint8Array | string): Buffer => statementBytes(statementEncoders.doc, { kind, bytes: Buffer.from(bytes) })

describe('swarm — statements channel', () => {
  it('brings a peer from root v1 to v3 and the newest fresh statement over the DHT, then passes on v4 and a newer fresh statement without reconnecting', async () => {
    const a = await storeWith(roots.slice(0, 3))
    expect(await a.store.acceptFresh(fresh(60, 3), 'test')).toBe('accepted')
    const b = await storeWith(roots.slice(0, 1))
    const bootstrap = parseBootstrap(clusterInfo().dhtBootstrap)
    const na = node(a.holder, { bootstrap })
    const nb = node(b.holder, { bootstrap })
    const topic = topicFor(randomBytes(16).toString('hex'))

    const v3 = next(b.holder, 'root', (v) => v === 3)
    const gotFresh = next(b.holder, 'fresh', (p) => p === P)
    await na.transport.join(topic, { server: true, client: false })
    await nb.transport.join(topic, { server: false, client: true })
    const [, from] = await v3
    expect(from).toBe(na.transport.publicKey.toString('hex'))
    await gotFresh
    expect(b.store.version).toBe(3)
    expect(b.store.freshText(P)).toBe(a.store.freshText(P))
    // B keeps what it verified, byte for byte.
    const saved = JSON.parse(await readFile(b.file, 'utf8')) as { roots: string[] }
    expect(saved.roots).toEqual(roots.slice(0, 3))

    // A learns root 4 (from the stream, say): B hears of it on the open connection.
    const v4 = next(b.holder, 'root', (v) => v === 4)
    expect(await a.store.acceptRoot(roots[3]!, 'stream')).toBe('accepted')
    await v4
    expect(b.store.rootsFrom(4)).toEqual([roots[3]])
    const newer = next(b.holder, 'fresh', (p) => p === P)
    const f2 = fresh(0, 4)
    expect(await a.store.acceptFresh(f2, 'stream')).toBe('accepted')
    await newer
    expect(b.store.freshText(P)).toBe(f2.toString('utf8'))
    expect(nb.transport.connections.size).toBe(1)
  })

  it('rollout statements travel peer to peer: a holder behind gets the ones it lacks, keeps them on disk, and hears of a new one without reconnecting (issue 16 item 1)', async () => {
    const a = await rolloutHolder(roots, [rolloutDoc(1, 1), rolloutDoc(2, 2), rolloutDoc(3, 2)])
    const b = await rolloutHolder(roots, [rolloutDoc(1, 1)])
    const na = node(a.holder)
    const nb = node(b.holder)
    const third = next(b.holder, 'rollout', (_p, seq) => seq === 3)
    const addr = await nb.transport.listen('127.0.0.1')
    await na.transport.dial(addr.host, addr.port)
    const [product, , peer] = await third
    expect(product).toBe(P)
    expect(peer).toBe(na.transport.publicKey.toString('hex'))
    expect(b.rollouts.statements(P).map((h) => h.rollout.seq)).toEqual([1, 2, 3])
    // Kept byte for byte, and verified again when the file is read.
    const reread = await RolloutStore.open(b.file, join(b.file, '..', 'tmp'), () => b.store.root)
    expect(reread.statements(P).map((h) => h.text)).toEqual(a.rollouts.statements(P).map((h) => h.text))
    // A fourth statement reaches A (from the stream, say): B hears of it on the open connection.
    const fourth = next(b.holder, 'rollout', (_p, seq) => seq === 4)
    expect(await a.rollouts.accept(rolloutDoc(4, 3), 'stream')).toBe('accepted')
    await fourth
    expect(b.rollouts.newestSeq(P)).toBe(4)
    // A replay of a seq held changes nothing.
    expect(await b.rollouts.accept(rolloutDoc(2, 2), 'replay')).toBe('known')
    expect(nb.transport.connections.size).toBe(1)
  })

  it('a rollout statement signed by a key the root does not give the product is a protocol error; nothing is kept', async () => {
    const b = await rolloutHolder(roots, [])
    const nb = node(b.holder)
    const evil = await rawPeer(nb)
    const reported = next(b.holder, 'protocol-error')
    evil.send(2, doc(StatementKind.rollout, rolloutDoc(1, 1, generatePublisherKey())))
    const [err] = await reported
    expect(err.message).toMatch(/rollout statement/)
    await evil.closed
    expect(b.rollouts.statements(P)).toEqual([])
  })

  it('format-2 release documents travel peer to peer: a holder behind gets the newest, and hears of a newer one without reconnecting (issue 13 item 3)', async () => {
    const a = await releaseHolder([releaseDoc(2), releaseDoc(3)])
    const b = await releaseHolder([releaseDoc(2)])
    const na = node(a.holder)
    const nb = node(b.holder)
    const third = next(b.holder, 'release', (_p, rev) => rev === 3)
    const addr = await nb.transport.listen('127.0.0.1')
    await na.transport.dial(addr.host, addr.port)
    const [product, , peer] = await third
    expect(product).toBe(P)
    expect(peer).toBe(na.transport.publicKey.toString('hex'))
    expect(b.releases.newest(P)).toEqual({ rev: 3, text: releaseDoc(3) })
    // A hears of r4 (from the servers, say): B hears of it on the open connection.
    const fourth = next(b.holder, 'release', (_p, rev) => rev === 4)
    expect(a.releases.accept(releaseDoc(4), 'servers')).toBe('accepted')
    await fourth
    expect(b.releases.newest(P)?.rev).toBe(4)
    // An older one changes nothing.
    expect(b.releases.accept(releaseDoc(3), 'replay')).toBe('known')
    expect(nb.transport.connections.size).toBe(1)
  })

  it('a release document signed by a key the root does not give the product is a protocol error; one of a product not followed is ignored', async () => {
    const b = await releaseHolder([releaseDoc(2)])
    const nb = node(b.holder)
    const evil = await rawPeer(nb)
    let reported = false
    b.holder.on('protocol-error', () => { reported = true })
    // Another product's release, signed well or not, is no news here and no fault: the channel
    // stays open, so a valid r3 sent after it is taken.
    evil.send(2, doc(StatementKind.release, releaseDoc(9, pub2, '99999999-2222-4333-8444-555555555555')))
    const third = next(b.holder, 'release', (_p, rev) => rev === 3)
    evil.send(2, doc(StatementKind.release, releaseDoc(3)))
    await third
    expect(reported).toBe(false)
    const forged = next(b.holder, 'protocol-error')
    evil.send(2, doc(StatementKind.release, releaseDoc(5, generatePublisherKey())))
    const [err] = await forged
    expect(err.message).toMatch(/release document/)
    await evil.closed
    expect(b.releases.newest(P)?.rev).toBe(3)
    expect(reported).toBe(true)
  })

  it('a held release document a newer root no longer lets stand (its key retired past its revision) is dropped, not offered', async () => {
    const { store } = await trustStore(roots.slice(0, 1))
    const releases = new ReleaseDocs(() => store.root, [P])
    // Under root 1, pub1 publishes P: r5 is kept.
    expect(releases.accept(releaseDoc(5, pub1, P, 1), 'test')).toBe('accepted')
    expect(releases.newest(P)?.rev).toBe(5)
    // Root 2 retires pub1 after r3: r5 by pub1 no longer verifies, so it is not offered any more.
    await store.acceptRoots([roots[1]!], 'test')
    expect(releases.newest(P)).toBeUndefined()
    // A document of the new key takes its place.
    expect(releases.accept(releaseDoc(4, pub2, P, 2), 'test')).toBe('accepted')
  })

  it('a peer that dials while ahead brings the one it dialled up to date', async () => {
    const a = await storeWith(roots)
    const b = await storeWith(roots.slice(0, 2))
    const na = node(a.holder)
    const nb = node(b.holder)
    const v4 = next(b.holder, 'root', (v) => v === 4)
    const addr = await nb.transport.listen('127.0.0.1')
    await na.transport.dial(addr.host, addr.port)
    await v4
    expect(b.store.version).toBe(4)
    expect(a.store.version).toBe(4)
  })

  it('a holder that pinned only a publisher key adopts a first root that key endorses, then the chain after it', async () => {
    const endorsed = text(signRoot(rootBody(draft(1)), [...rootKeys, pub1]))
    const a = await storeWith([endorsed, ...roots.slice(1, 3)])
    const b = await storeWith([], { products: [P], endorsedBy: { product: P, pinnedKey: pub1.publicKey } })
    const na = node(a.holder)
    const nb = node(b.holder)
    const v3 = next(b.holder, 'root', (v) => v === 3)
    const addr = await na.transport.listen('127.0.0.1')
    await nb.transport.dial(addr.host, addr.port)
    await v3
    expect(b.store.version).toBe(3)
  })

  describe('refuses and reports a peer', () => {
    const cases: [string, () => Buffer][] = [
      ['a forged root (bad signature)', () => doc(StatementKind.root, text(signRoot(rootBody(draft(2)), [generatePublisherKey(), generatePublisherKey()])))],
      ['garbage as a root', () => doc(StatementKind.root, 'not json at all')],
      ['a fresh statement signed by another key', () => doc(StatementKind.fresh, signFresh({ product: P, rev: 9, root: 1, issuedMs: Date.now(), lifetimeS: 600 }, pub1))],
      ['a doc with trailing bytes', () => Buffer.concat([doc(StatementKind.root, roots[1]!), Buffer.of(0)])],
      ['a doc of an unknown kind', () => doc(9, roots[1]!)],
    ]
    for (const [what, frame] of cases) {
      it(what, async () => {
        const b = await storeWith(roots.slice(0, 1))
        const before = await readFile(b.file, 'utf8')
        const nb = node(b.holder)
        const evil = await rawPeer(nb)
        const reported = next(b.holder, 'protocol-error')
        evil.send(2, frame())
        const [err, peer] = await reported
        expect((err as UpswarmError).code).toBe('UPSWARM_E_PEER')
        expect(peer).toMatch(/^[0-9a-f]{64}$/)
        await evil.closed
        expect(b.store.version).toBe(1)
        expect(await readFile(b.file, 'utf8')).toBe(before)
        // The connection itself stays up: only the statements channel closed.
        expect(nb.transport.connections.size).toBe(1)
      })
    }

    it('an unknown message type', async () => {
      const b = await storeWith(roots.slice(0, 1))
      const nb = node(b.holder)
      const evil = await rawPeer(nb)
      const reported = next(b.holder, 'protocol-error')
      evil.send(5, Buffer.of(1, 2, 3))
      expect((await reported)[0].message).toMatch(/unknown message type 5/)
      await evil.closed
    })
  })

  it('answers a raw peer offer with the roots and fresh statement it lacks, and a duplicate doc is ignored', async () => {
    const b = await storeWith(roots.slice(0, 3))
    await b.store.acceptFresh(fresh(10, 3), 'test')
    const nb = node(b.holder)
    const evil = await rawPeer(nb)
    // B's own offer arrives first (type 0).
    await evil.waitFor(0, 1)
    evil.send(0, statementBytes(statementEncoders.offer, {
      entries: [{ kind: StatementKind.root, product: '', number: 1, hash: Buffer.alloc(32) }, { kind: StatementKind.fresh, product: P, number: 0, hash: Buffer.alloc(32) }],
    }))
    await evil.waitFor(2, 3)
    const docs = evil.received.filter((m) => m.type === 2).map((m) => statementDoc(m.bytes))
    expect(docs.map((d) => d.kind)).toEqual([StatementKind.root, StatementKind.root, StatementKind.fresh])
    expect(docs[0]!.text).toBe(roots[1])
    // Sending B what it holds, twice, changes nothing and reports nobody.
    let reported = false
    b.holder.on('protocol-error', () => { reported = true })
    evil.send(2, doc(StatementKind.root, roots[1]!))
    evil.send(2, doc(StatementKind.root, roots[1]!))
    evil.send(3, statementBytes(statementEncoders.wantRoots, { from: 3 }))
    await evil.waitFor(2, 4)
    expect(statementDoc(evil.received.filter((m) => m.type === 2)[3]!.bytes).text).toBe(roots[2])
    expect(reported).toBe(false)
    expect(b.store.version).toBe(3)
  })
})

function statementDoc(bytes: Uint8Array): { kind: number; text: string } {
  const state = { start: 0, end: bytes.byteLength, buffer: bytes }
  const kind = c.uint.decode(state)
  return { kind, text: Buffer.from(c.buffer.decode(state)!).toString('utf8') }
}
