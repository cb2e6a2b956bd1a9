// docs/formats.md §1.5 (issue 16 item 1): rollout statements. A client's stage is a stable hash of
// its identity (growing 5% → 25% keeps the first 5%); the highest seq per revision decides; a halt
// key can only halt; --auto leaves a halted revision for the newest one that is not.
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { rootBody, signRoot, type Root } from '../../infra/formats/root.ts'
import { autoTarget, signRollout, stageOf, verifyRollout, type Rollout, type RolloutDraft } from '../../infra/formats/rollout.ts'
import { keyIdOf } from '../../infra/formats/envelope.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'

const [rootKey, freshKey, pub, rolloutKey, haltKey] = Array.from({ length: 5 }, () => generatePublisherKey())
const product = randomUUID()

function root(): Root {
  const body = rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey!.publicKey], rootThreshold: 1, freshKeys: [freshKey!.publicKey], products: { [product]: { publish: [pub!.publicKey] } } }) as Record<string, any>
  for (const k of [rolloutKey!, haltKey!]) body.keys[keyIdOf(k.publicKey)] = { alg: 'ed25519', public: k.publicKey }
  body.products[product].rollout = { keys: [keyIdOf(rolloutKey!.publicKey)], threshold: 1 }
  body.products[product].halt = { keys: [keyIdOf(haltKey!.publicKey)], threshold: 1 }
  return signRoot(body, [rootKey!]).root
}
const st = (seq: number, rev: number, state: Rollout['state'], percent: number, rings: string[] = []): Rollout =>
  ({ type: 'rollout', format: 2, product, seq, rev, release: 'ab'.repeat(32), state, percent, rings, issued: '2026-11-30T00:00:00Z' })
const draft = (over: Partial<RolloutDraft>): RolloutDraft => ({ product, seq: 1, rev: 2, release: 'ab'.repeat(32), state: 'active', percent: 500, issuedMs: Date.now(), ...over })

describe('rollout statements', () => {
  it('rollout — the rollout key signs any state, the halt key only a halt, anyone else nothing', () => {
    const r = root()
    expect(verifyRollout(signRollout(draft({}), [rolloutKey!]), r, 'test').rollout).toMatchObject({ state: 'active', percent: 500 })
    expect(verifyRollout(signRollout(draft({ state: 'halted' }), [haltKey!]), r, 'test').rollout.state).toBe('halted')
    expect(() => verifyRollout(signRollout(draft({ percent: 10_000 }), [haltKey!]), r, 'test')).toThrow(/not signed by the rollout role \(a halt key may only halt\)/)
    expect(() => verifyRollout(signRollout(draft({}), [pub!]), r, 'test')).toThrow(/refusing it/)
    expect(() => signRollout(draft({ percent: 10_001 }), [rolloutKey!])).toThrow(/percent/)
  })

  it('rollout — a product whose root names no rollout role rolls out with its publish keys (formats.md §1.2)', () => {
    const body = rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey!.publicKey], rootThreshold: 1, freshKeys: [freshKey!.publicKey], products: { [product]: { publish: [pub!.publicKey] } } })
    const plain = signRoot(body, [rootKey!]).root
    expect(verifyRollout(signRollout(draft({}), [pub!]), plain, 'test').rollout.percent).toBe(500)
    expect(() => verifyRollout(signRollout(draft({}), [rolloutKey!]), plain, 'test')).toThrow(/not signed by the rollout role/)
  })

  it('rollout — stages are stable and nested: the clients in 5% are all in 25%, about a quarter of 2000 are in 25%', () => {
    const clients = Array.from({ length: 2000 }, (_, i) => `client-key-${i}`)
    const in5 = clients.filter((c) => stageOf(product, c) < 500)
    const in25 = clients.filter((c) => stageOf(product, c) < 2500)
    expect(in5.every((c) => in25.includes(c))).toBe(true)
    expect(in25.length).toBeGreaterThan(400)
    expect(in25.length).toBeLessThan(600)
    expect(stageOf(product, 'client-key-7')).toBe(stageOf(product, 'client-key-7'))
  })

  it('rollout — --auto takes the newest revision its stage allows; a replayed older 100% does not undo a halt; a halt sends clients back, nothing else does', () => {
    const inside = Array.from({ length: 200 }, (_, i) => `k${i}`).find((k) => stageOf(product, k) < 2000)!
    const outside = Array.from({ length: 200 }, (_, i) => `k${i}`).find((k) => stageOf(product, k) >= 2000)!
    const revs = [{ rev: 1 }, { rev: 2, staged: true }]
    expect(autoTarget(revs, [], product, { key: inside }, 1)).toBeUndefined() // staged, no statement yet: nobody
    const at20 = [st(1, 2, 'active', 2000)]
    expect(autoTarget(revs, at20, product, { key: inside }, 1)).toBe(2)
    expect(autoTarget(revs, at20, product, { key: outside }, 1)).toBeUndefined()
    expect(autoTarget(revs, [...at20, st(2, 2, 'active', 0, ['canary'])], product, { key: outside, ring: 'canary' }, 1)).toBe(2)
    const halted = [st(1, 2, 'active', 10_000), st(2, 2, 'halted', 10_000)]
    expect(autoTarget(revs, halted, product, { key: inside }, 2)).toBe(1)
    expect(autoTarget(revs, [...halted, st(1, 2, 'active', 10_000)], product, { key: inside }, 2)).toBe(1) // replay of seq 1
    expect(autoTarget(revs, at20, product, { key: outside }, 2)).toBeUndefined() // installed by hand beyond its stage: stays
    expect(autoTarget(revs, [st(1, 2, 'paused', 10_000)], product, { key: inside }, 2)).toBeUndefined()
    expect(autoTarget(revs, [st(1, 2, 'paused', 10_000)], product, { key: inside }, 1)).toBeUndefined()
  })
})
