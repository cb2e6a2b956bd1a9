// Issue 13 item 6: `returnMemory` runs a full garbage collection when much memory lies outside
// V8's heap (an update's stat index buffers), and does nothing otherwise.
import { describe, expect, it } from 'vitest'
import { returnMemory } from '../../infra/memory.ts'

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('memory', () => {
  it('returnMemory — collects when more than 128 MiB lie outside the heap: an unreachable object is gone afterwards', async () => {
    let held: Buffer[] | undefined = Array.from({ length: 3 }, () => Buffer.alloc(64 * 1024 * 1024, 1))
    let garbage: object | undefined = { big: held }
    const ref = new WeakRef(garbage)
    garbage = undefined
    // (A WeakRef's target lives until the job that made it ends.)
    await tick()
    expect(process.memoryUsage().external).toBeGreaterThan(128 * 1024 * 1024)
    held = undefined
    expect(returnMemory()).toBe(true)
    expect(ref.deref()).toBeUndefined()
  })
})
