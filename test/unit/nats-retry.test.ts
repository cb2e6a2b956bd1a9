// A pull right after an ephemeral consumer is made can find no responder (its subjects have not
// reached every node yet): such a failure is retried briefly; any other is not.
import { describe, expect, it } from 'vitest'
import { isNoResponders, withRetry } from '../../infra/nats/retry.ts'

describe('nats retry', () => {
  it('retry — "no responders" (code 503, NoRespondersError or the message) is retried and then succeeds; another error is thrown at once', async () => {
    const named = Object.assign(new Error('x'), { name: 'NoRespondersError' })
    for (const err of [named, Object.assign(new Error('status'), { code: 503 }), new Error('503 no responders')]) expect(isNoResponders(err)).toBe(true)
    for (const err of [new Error('timeout'), Object.assign(new Error('x'), { code: 404 }), undefined]) expect(isNoResponders(err)).toBe(false)
    let calls = 0
    const ok = await withRetry(async () => {
      if (++calls < 3) throw Object.assign(new Error('no responders'), { code: 503 })
      return 'delivered'
    }, { attempts: 10, initialDelayMs: 1, retryable: isNoResponders })
    expect([ok, calls]).toEqual(['delivered', 3])
    calls = 0
    await expect(withRetry(async () => {
      calls++
      throw new Error('permission or anything else')
    }, { attempts: 10, initialDelayMs: 1, retryable: isNoResponders })).rejects.toThrow(/anything else/)
    expect(calls).toBe(1)
  })
})
