// Token bucket per source address for the internet-facing doors (HTTP, UDP). The table is
// bounded: when it is full the least recently inserted address is forgotten, so a flood of
// spoofed sources costs a fixed amount of memory.

export interface RateLimitOptions {
  /** Sustained requests per second per address. */
  perSecond: number
  /** Requests an address may send at once after being idle. */
  burst: number
  /** Most addresses remembered at once. */
  maxAddresses?: number
}

export class RateLimiter {
  readonly #perMs: number
  readonly #burst: number
  readonly #max: number
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(opts: RateLimitOptions) {
    this.#perMs = opts.perSecond / 1000
    this.#burst = opts.burst
    this.#max = opts.maxAddresses ?? 65_536
  }

  /** Takes one token for `address`; false when the address is over its rate. */
  take(address: string, now: number): boolean {
    let bucket = this.#buckets.get(address)
    if (!bucket) {
      if (this.#buckets.size >= this.#max) this.#buckets.delete(this.#buckets.keys().next().value!)
      bucket = { tokens: this.#burst, at: now }
      this.#buckets.set(address, bucket)
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs)
      bucket.at = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  /** Forgets addresses whose bucket has refilled: they are indistinguishable from new ones. */
  sweep(now: number): void {
    const refillMs = this.#burst / this.#perMs
    for (const [address, bucket] of this.#buckets) {
      if (now - bucket.at >= refillMs) this.#buckets.delete(address)
    }
  }

  get size(): number {
    return this.#buckets.size
  }
}
