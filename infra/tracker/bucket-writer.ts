// Writes to a KV bucket as pipelined JetStream publishes: each put or delete is a plain publish
// whose reply subject is one shared inbox, and the stream's acks are matched by sequence number.
// Unlike `kv.put` (one request with its own promise, timer and stack trace each) an announce costs
// one publish; unlike a bare publish, a write lost while a stream leader is being elected is
// noticed and sent again. A retry never overwrites a newer write of the same key.
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node'
import { inboxPrefixOf } from '../nats/identity.ts'

export interface BucketWriterOptions {
  /** Subject of a key in the bucket (`$KV.<bucket>.<key>`). */
  subjectOf: (key: string) => string
  timeoutMs?: number
  /**
   * false: no timer of its own; the owner calls `retryLate()` every `retryEveryMs(timeoutMs)` (the
   * tracker's statechart does, issue 12: no timers outside a role's machine). Default true.
   */
  ownTimer?: boolean
  maxAttempts?: number
  /** Most writes awaiting their ack; beyond it new writes are dropped. */
  maxInFlight?: number
  /** A write given up on (NATS down, too many attempts, queue full): the caller may write it later. */
  onDropped?: (key: string) => void
  /** Called when acks bring the writes in flight down to `drainBelow` (the caller may send more). */
  onDrain?: () => void
  drainBelow?: number
}

interface Pending {
  key: string
  value: string | Uint8Array | null
  sentAt: number
  attempts: number
}

export const DEFAULT_WRITE_TIMEOUT_MS = 2_000
/** How often late writes are looked for: twice per timeout. */
export const retryEveryMs = (timeoutMs = DEFAULT_WRITE_TIMEOUT_MS): number => Math.max(100, timeoutMs / 2)

export class BucketWriter {
  readonly #nc: NatsConnection
  readonly #opts: Required<Omit<BucketWriterOptions, 'onDropped' | 'onDrain'>> & Pick<BucketWriterOptions, 'onDropped' | 'onDrain'>
  readonly #prefix: string
  readonly #pending = new Map<number, Pending>()
  /** key → sequence of its newest write: only that one is ever retried. */
  readonly #latest = new Map<string, number>()
  readonly #sub: Subscription
  readonly #timer: NodeJS.Timeout | undefined
  #seq = 0
  #dropped = 0
  #idle: (() => void)[] = []

  constructor(nc: NatsConnection, opts: BucketWriterOptions) {
    this.#nc = nc
    // Under the connection's own inbox prefix: an identity may subscribe to its inbox only (with
    // the default `_INBOX.` every ack was refused, and every write sent again until dropped).
    this.#prefix = createInbox(inboxPrefixOf(nc))
    this.#opts = { timeoutMs: DEFAULT_WRITE_TIMEOUT_MS, maxAttempts: 5, maxInFlight: 100_000, drainBelow: 0, ownTimer: true, ...opts }
    this.#sub = nc.subscribe(`${this.#prefix}.*`, { callback: (err, msg) => (err ? undefined : this.#ack(msg)) })
    if (this.#opts.ownTimer) {
      this.#timer = setInterval(() => this.retryLate(), retryEveryMs(this.#opts.timeoutMs))
      this.#timer.unref()
    }
  }

  put(key: string, value: string | Uint8Array): void {
    this.#send({ key, value, sentAt: 0, attempts: 0 })
  }

  delete(key: string): void {
    this.#send({ key, value: null, sentAt: 0, attempts: 0 })
  }

  get inFlight(): number {
    return this.#pending.size
  }

  get dropped(): number {
    return this.#dropped
  }

  /** Resolves when every write is acknowledged or given up, or after `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    if (this.#pending.size === 0) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => this.#idle.push(resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ])
    clearTimeout(timer)
  }

  close(): void {
    clearInterval(this.#timer)
    this.#sub.unsubscribe()
  }

  #send(p: Pending): void {
    if (this.#nc.isClosed() || (p.attempts === 0 && this.#pending.size >= this.#opts.maxInFlight)) return this.#drop(p.key)
    const seq = ++this.#seq
    p.attempts++
    p.sentAt = Date.now()
    this.#pending.set(seq, p)
    this.#latest.set(p.key, seq)
    const reply = `${this.#prefix}.${seq}`
    try {
      if (p.value !== null) {
        this.#nc.publish(this.#opts.subjectOf(p.key), p.value, { reply })
      } else {
        const h = headers()
        h.set('KV-Operation', 'DEL')
        this.#nc.publish(this.#opts.subjectOf(p.key), undefined, { reply, headers: h })
      }
    } catch {
      this.#done(seq, p)
      this.#drop(p.key)
      this.#maybeIdle()
    }
  }

  #ack(msg: Msg): void {
    const seq = Number(msg.subject.slice(this.#prefix.length + 1))
    const p = this.#pending.get(seq)
    if (!p) return
    // A JetStream ack is {"stream":…,"seq":…}; a refusal carries "error", a status (503) has no body.
    const ok = msg.data.byteLength > 0 && !msg.headers?.hasError && !Buffer.from(msg.data).includes('"error"')
    if (!ok) {
      p.sentAt = 0 // retried by the next tick, not at once: the stream may be electing a leader
      return
    }
    this.#done(seq, p)
    this.#maybeIdle()
    if (this.#pending.size === this.#opts.drainBelow) this.#opts.onDrain?.()
  }

  /**
   * Sends again every write unacknowledged for `timeoutMs`, doubled at each attempt (a stream that
   * is slow, not gone, is not sent each write again and again), and drops it after `maxAttempts`.
   */
  retryLate(): void {
    const now = Date.now()
    for (const [seq, p] of this.#pending) {
      if (p.sentAt > now - this.#opts.timeoutMs * 2 ** (p.attempts - 1)) continue
      this.#done(seq, p)
      if (this.#latest.has(p.key)) continue // a newer write of this key is on its way
      if (p.attempts >= this.#opts.maxAttempts) this.#drop(p.key)
      else this.#send(p)
    }
    this.#maybeIdle()
  }

  #done(seq: number, p: Pending): void {
    this.#pending.delete(seq)
    if (this.#latest.get(p.key) === seq) this.#latest.delete(p.key)
  }

  #maybeIdle(): void {
    if (this.#pending.size === 0) for (const resolve of this.#idle.splice(0)) resolve()
  }

  #drop(key: string): void {
    this.#dropped++
    this.#opts.onDropped?.(key)
  }
}
