import { afterEach, describe, expect, it, vi } from 'vitest'
import { createHash } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TokenBucket } from '../../infra/swarm/token-bucket.ts'
import { loadOrCreateKeyPair, topicFor } from '../../infra/swarm/transport.ts'
import { tempDir } from '../helpers/cluster.ts'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  vi.useRealTimers()
  for (const c of cleanups.splice(0)) await c()
})

describe('swarm transport parts', () => {
  it('swarm — topicFor hashes the fixed prefix, the product and the revision', () => {
    const product = '1b4e28ba-2fa1-11d2-883f-0016d3cca427'
    const expected = createHash('sha256').update(`upswarm:topic:${product}:7`).digest()
    expect(topicFor(product, 7).equals(expected)).toBe(true)
    expect(topicFor(product).equals(createHash('sha256').update(`upswarm:topic:${product}`).digest())).toBe(true)
    expect(topicFor(product, 7)).toHaveLength(32)
    expect(topicFor(product, 7).equals(topicFor(product, 8))).toBe(false)
    expect(() => topicFor(product, 0)).toThrow(/revision/)
    expect(() => topicFor('')).toThrow(/product/)
  })

  it('swarm — loadOrCreateKeyPair creates the node key once, keeps it, and refuses a damaged file', async () => {
    const dir = await tempDir('upswarm-nodekey-')
    cleanups.push(dir.cleanup)
    const file = join(dir.path, 'sub', 'node.key')
    const a = await loadOrCreateKeyPair(file)
    const b = await loadOrCreateKeyPair(file)
    expect(a.publicKey).toHaveLength(32)
    expect(a.secretKey).toHaveLength(64)
    expect(b.publicKey.equals(a.publicKey)).toBe(true)
    expect(b.secretKey.equals(a.secretKey)).toBe(true)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    const body = JSON.parse(await readFile(file, 'utf8')) as { publicKey: string }
    body.publicKey = '00'.repeat(32)
    await writeFile(file, JSON.stringify(body))
    await expect(loadOrCreateKeyPair(file)).rejects.toMatchObject({ code: 'UPSWARM_E_CONFIG' })
    await writeFile(file, 'not json')
    await expect(loadOrCreateKeyPair(file)).rejects.toMatchObject({ code: 'UPSWARM_E_CONFIG' })
  })

  it('swarm — the upload token bucket lets a burst through, then makes the next taker wait for its debt', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const bucket = new TokenBucket(1000) // 1000 B/s, 1000 B burst
    let done = false
    await bucket.take(1000) // the burst
    const second = bucket.take(500).then(() => { done = true })
    await vi.advanceTimersByTimeAsync(499)
    expect(done).toBe(false)
    await vi.advanceTimersByTimeAsync(2)
    await second
    expect(done).toBe(true)

    const ac = new AbortController()
    const third = bucket.take(10_000, ac.signal)
    ac.abort(new Error('closed'))
    await expect(third).rejects.toThrow('closed')
    await expect(new TokenBucket(0).take(1 << 30)).resolves.toBeUndefined() // 0 = unlimited
    expect(() => new TokenBucket(-1)).toThrow(/upload rate/)

    // Promised bytes count as backlog until released; a release never drives it below zero.
    const promised = new TokenBucket(1000)
    expect(promised.backlogSeconds()).toBe(0)
    promised.reserve(3000)
    expect(promised.backlogSeconds()).toBeCloseTo(2, 1) // 3000 promised, 1000 in the bucket
    promised.release(3000)
    promised.release(10)
    expect(promised.reserved).toBe(0)
    expect(promised.backlogSeconds()).toBe(0)
  })

  it('swarm — takers in turn go first come first served, or lowest rank first; one withdrawn while it waits leaves the queue, and the one behind it moves up at once (issue 14)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    try {
      const bucket = new TokenBucket(1000) // 1000 B/s, 1000 B burst
      const went: string[] = []
      const ask = (name: string, bytes: number, signal?: AbortSignal): Promise<void> =>
        bucket.takeInTurn(bytes, signal).then(() => { went.push(name) }, (err: Error) => { went.push(`${name}: ${err.message}`) })
      const b = new AbortController()
      const c = new AbortController()
      const all = [ask('a', 1000), ask('b', 1000, b.signal), ask('c', 1000, c.signal), ask('d', 1000), ask('e', 1000)]
      await vi.advanceTimersByTimeAsync(0)
      expect(went).toEqual(['a', 'b']) // the burst, then b overdraws by one piece
      b.abort(new Error('withdrawn'))
      c.abort(new Error('withdrawn'))
      await vi.advanceTimersByTimeAsync(0)
      // b had its turn already (too late to withdraw); c is withdrawn while it waits: never sent.
      expect(went).toEqual(['a', 'b', 'c: withdrawn'])
      // d moves up to c's place: it goes when b's debt is repaid (1 s), not after c's bytes too (2 s).
      await vi.advanceTimersByTimeAsync(999)
      expect(went).toEqual(['a', 'b', 'c: withdrawn'])
      await vi.advanceTimersByTimeAsync(2)
      expect(went).toEqual(['a', 'b', 'c: withdrawn', 'd'])
      await vi.advanceTimersByTimeAsync(1000)
      expect(went).toEqual(['a', 'b', 'c: withdrawn', 'd', 'e'])
      await Promise.all(all)
      // Ranked: when a turn comes, the lowest rank at that moment goes (a server's least-sent piece).
      const sent = new Map<string, number>([['x', 2], ['y', 0], ['z', 1]])
      const ranked = ['x', 'y', 'z'].map((k) => bucket.takeInTurn(1000, undefined, () => sent.get(k)!).then(() => { went.push(k) }))
      sent.set('z', 5) // read when the turn comes, not when asked
      await vi.advanceTimersByTimeAsync(3003)
      await Promise.all(ranked)
      expect(went.slice(-3)).toEqual(['y', 'x', 'z'])
      // Unlimited: no waiting; withdrawn before asking: refused.
      await expect(new TokenBucket(0).takeInTurn(1 << 30)).resolves.toBeUndefined()
      const gone = new AbortController()
      gone.abort(new Error('gone'))
      await expect(bucket.takeInTurn(1, gone.signal)).rejects.toThrow('gone')
    } finally {
      vi.useRealTimers()
    }
  })
})
