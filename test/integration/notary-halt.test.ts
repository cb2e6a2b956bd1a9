// Issue 16 item 2 on a real cluster (credentials + TLS): the notary, holding the root's halt key,
// counts the health alerts of a revision per distinct client identity and halts it by itself at
// the threshold. Three failures from one identity do not halt; from three identities they do,
// with a statement signed by the halt key that verifies under the root.
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNotary, type Notary } from '../../actors/notary/index.ts'
import { rollout } from '../../actors/operator/rollout.ts'
import { publish } from '../../actors/publisher/publish.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { keyIdOf } from '../../infra/formats/envelope.ts'
import { appendRoot } from '../../infra/formats/meta-stream.ts'
import { rootBody, rootText, signRoot, type SignedRoot } from '../../infra/formats/root.ts'
import { readRollouts } from '../../infra/formats/rollout-stream.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'

describe('notary halts', { timeout: 180_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let connect: (name: string, identity?: { kind: 'admin' | 'publisher' | 'notary' | 'client'; name: string }) => Promise<NatsConnection>
  const conns: NatsConnection[] = []
  let notary: Notary
  let root: SignedRoot
  const product = newProduct()
  const [rootKey, freshKey, pub, haltKey] = Array.from({ length: 4 }, () => generatePublisherKey())

  beforeAll(async () => {
    dir = await tempDir('upswarm-notary-halt-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    connect = async (name, identity) => {
      const nc = await own.connect(name, identity)
      conns.push(nc)
      return nc
    }
    const body = rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey!.publicKey], rootThreshold: 1, freshKeys: [freshKey!.publicKey], products: { [product]: { publish: [pub!.publicKey] } } }) as Record<string, any>
    body.keys[keyIdOf(haltKey!.publicKey)] = { alg: 'ed25519', public: haltKey!.publicKey }
    body.products[product].halt = { keys: [keyIdOf(haltKey!.publicKey)], threshold: 1 }
    root = signRoot(body, [rootKey!])
    await appendRoot(await connect('halt-admin'), rootText(root))
    const publisher = await connect('halt-publisher', { kind: 'publisher', name: 'publisher' })
    for (const rev of [1, 2]) {
      await writeTree(join(dir.path, `src${rev}`), { 'app.txt': `version ${rev}\n` })
      await publish({ nc: publisher, src: join(dir.path, `src${rev}`), product, key: pub!, trust: join(dir.path, 'trust.json'), skipFeed: true })
    }
    await rollout({ nc: publisher, product, rev: 2, action: { percent: 10_000 }, keys: [pub!] })
    notary = await startNotary({
      nc: await connect('halt-notary', { kind: 'notary', name: 'notary' }), freshKey: freshKey!, rootText: rootText(root),
      dataDir: join(dir.path, 'notary'), haltKey: haltKey!, maxFailures: 3,
    })
  }, 180_000)
  afterAll(async () => {
    await notary?.close()
    for (const nc of conns) await nc.close().catch(() => {})
    await cluster?.stop()
    await dir?.cleanup()
  })

  const alert = (rev: number, at: string) => ({ type: 'health' as const, product, clientId: 'x', rev, to: rev - 1, phase: 'health' as const, reason: 'exited with 1', at })
  /** Resolves with the count after the notary has counted the next `n` health alerts. */
  const counted = (n: number): Promise<{ failures: number; halted: boolean }> => new Promise((resolve) => {
    let seen = 0
    const off = notary.halter!.onCounted((e) => {
      if (++seen < n) return
      off()
      resolve(e)
    })
  })

  it('notary — three health failures of a revision from one client do not halt it; from three distinct clients they do, signed by the halt key', async () => {
    const one = jetStreamAlertSink(await connect('halt-c1', { kind: 'client', name: 'halt-c1' }))
    const thrice = counted(3)
    for (const i of [1, 2, 3]) await one.publish(alert(2, `2026-11-30T14:0${i}:00.000Z`))
    expect(await thrice).toEqual({ product, rev: 2, from: 'halt-c1', failures: 1, halted: false })
    expect((await readRollouts(conns[0]!, product, root.root)).statements.map((s) => s.rollout.state)).toEqual(['active'])

    const two = counted(2)
    for (const name of ['halt-c2', 'halt-c3']) await jetStreamAlertSink(await connect(name, { kind: 'client', name })).publish(alert(2, '2026-11-30T14:05:00.000Z'))
    expect(await two).toMatchObject({ rev: 2, failures: 3, halted: true })
    const statements = (await readRollouts(conns[0]!, product, root.root)).statements
    expect(statements.map((s) => [s.rollout.seq, s.rollout.rev, s.rollout.state])).toEqual([[1, 2, 'active'], [2, 2, 'halted']])
    const haltEnv = JSON.parse(statements[1]!.text) as { signatures: { keyid: string }[] }
    expect(haltEnv.signatures.map((s) => s.keyid)).toEqual([keyIdOf(haltKey!.publicKey)])

    // A fourth identity's failure counts, but a halted revision is not halted again.
    const four = counted(1)
    await jetStreamAlertSink(await connect('halt-c4', { kind: 'client', name: 'halt-c4' })).publish(alert(2, '2026-11-30T14:06:00.000Z'))
    expect(await four).toMatchObject({ failures: 4, halted: true })
    expect((await readRollouts(conns[0]!, product, root.root)).statements).toHaveLength(2)
  })
})
