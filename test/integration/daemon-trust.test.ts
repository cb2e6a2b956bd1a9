// Issue 10 item 7 at the sharing daemon (R-DHT-2): with no NATS, tracker or server, a rotation of
// the publisher key that reaches one daemon reaches the other through the swarm (the suite's DHT,
// real sockets), and the daemon that learnt it follows the new key's release feed.
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startDaemon, type Daemon } from '../../actors/share-daemon/index.ts'
import { encodeEnvelope } from '../../infra/formats/envelope.ts'
import { signFresh } from '../../infra/formats/fresh.ts'
import { draftOf, rootBody, signRoot, type SignedRoot } from '../../infra/formats/root.ts'
import { TrustStore } from '../../infra/formats/trust-store.ts'
import { signRollout } from '../../infra/formats/rollout.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { clusterInfo, newProduct, tempDir } from '../helpers/cluster.ts'

const DAY = 86_400_000
const rootKeys = [generatePublisherKey(), generatePublisherKey()]
const freshKey = generatePublisherKey()
const pub1 = generatePublisherKey()
const pub2 = generatePublisherKey()
const text = (s: SignedRoot): string => encodeEnvelope(s.env).toString('utf8')

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

describe('daemon — root of trust over the swarm', () => {
  it('daemon — a publisher key rotation, a fresh statement and a rollout statement learnt by one daemon reach another that has no NATS, which follows the new key\'s feed and its stage', async () => {
    const product = newProduct()
    const v1 = signRoot(rootBody({
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: rootKeys.map((k) => k.publicKey), rootThreshold: 2,
      freshKeys: [freshKey.publicKey], products: { [product]: { publish: [pub1.publicKey] } },
    }), rootKeys)
    const d2 = draftOf(v1.root)
    d2.version = 2
    d2.products[product] = { publish: [pub2.publicKey], retired: [{ key: pub1.publicKey, lastRev: 0 }] }
    const v2 = text(signRoot(rootBody(d2), rootKeys))

    const dir = await tempDir('upswarm-daemon-trust-')
    cleanups.push(dir.cleanup)
    const daemons: Daemon[] = []
    const logs: string[][] = [[], []]
    const logged = new EventEmitter<{ line: [daemon: number, line: string] }>()
    for (const i of [0, 1]) {
      const wcDir = join(dir.path, `wc${i}`)
      await WorkingCopy.create(wcDir, { format: 1, product, publicKey: pub1.publicKey, clientId: `trust-${i}`, historyDepth: 2 })
      const layout = layoutOf(wcDir)
      await (await TrustStore.open(layout.trust, layout.tmp)).pin(text(v1), 'init --root')
      const daemon = await startDaemon({ dir: wcDir, host: '127.0.0.1', bootstrap: clusterInfo().dhtBootstrap, log: (m) => { logs[i]!.push(m); logged.emit('line', i, m) } })
      cleanups.push(() => daemon.close())
      daemons.push(daemon)
    }
    const [a, b] = daemons as [Daemon, Daemon]
    const connected = new Promise<void>((resolve) => {
      if (b.connections().some((c) => c.key === a.publicKey)) resolve()
      b.on('peer.connected', (key) => { if (key === a.publicKey) resolve() })
    })
    await connected

    // A learns root 2 (as its stream follower would): B, with no NATS, gets it from A.
    const rotated = new Promise<[number, string]>((resolve) => b.on('trust.root', (version, peer) => resolve([version, peer])))
    const followed = new Promise<string>((resolve) => b.on('trust.feed', (key) => resolve(key)))
    expect(await a.trust.acceptRoot(v2, 'stream')).toBe('accepted')
    expect(await rotated).toEqual([2, a.publicKey])
    expect(b.trust.version).toBe(2)
    const saved = JSON.parse(await readFile(layoutOf(join(dir.path, 'wc1')).trust, 'utf8')) as { roots: string[] }
    expect(saved.roots).toEqual([text(v1), v2])
    expect(logs[1]).toContainEqual(JSON.stringify({ event: 'trust.root', version: 2, peer: a.publicKey }))
    expect(await followed).toBe(pub2.publicKey)

    // A fresh statement signed under root 2 goes the same way.
    const fresh = new Promise<string>((resolve) => b.on('trust.fresh', (p) => resolve(p)))
    await a.trust.acceptFresh(signFresh({ product, rev: 0, root: 2, issuedMs: Date.now(), lifetimeS: 600 }, freshKey), 'stream')
    expect(await fresh).toBe(product)

    // Issue 16 item 1: a rollout statement by the new key goes the same way, and B's stage follows it.
    const staged = new Promise<[number, number]>((resolve) => b.on('rollout.statement', (seq, rev) => resolve([seq, rev])))
    const rolloutLine = JSON.stringify({ event: 'trust.rollout', product, seq: 1, peer: a.publicKey })
    // Logged once the channel has handed the statement to the store, which tells the stage first.
    const saidSo = new Promise<void>((resolve) => logged.on('line', (i, line) => { if (i === 1 && line === rolloutLine) resolve() }))
    const statement = signRollout({ product, seq: 1, rev: 1, release: 'a'.repeat(64), state: 'active', percent: 10_000, issuedMs: Date.now() }, [pub2])
    expect(await a.rollouts.accept(statement, 'stream')).toBe('accepted')
    expect(await staged).toEqual([1, 1])
    expect(b.rollouts.statements(product).map((h) => h.text)).toEqual([statement.toString('utf8')])
    await saidSo
    expect(logs[1]).toContainEqual(rolloutLine)
  })
})
