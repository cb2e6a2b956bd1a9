// Which addresses from the tracker the daemon dials, and when. The tracker lists every address
// it is given, and a stale entry, a BitTorrent client or an invented address never completes a
// Noise handshake: such an address is tried again after a doubling backoff, and after
// MAX_DIAL_FAILURES it is dropped for DROPPED_FOR_MS however often the tracker lists it; after
// that a fresh report gives it a fresh start. Peers behind NAT are unaffected: they dial us, and
// the DHT's own connections never pass through here.

export const DIAL_BACKOFF_MS = 5_000
export const MAX_DIAL_FAILURES = 3
export const DROPPED_FOR_MS = 30 * 60_000
/** Addresses remembered at once; the oldest record is forgotten first. */
export const MAX_DIAL_RECORDS = 4_096

export interface DialBookOptions {
  now?: () => number
  backoffMs?: number
  maxFailures?: number
  droppedForMs?: number
  maxRecords?: number
}

interface DialRecord {
  failures: number
  /** Not dialled again before this time (ms). */
  notBefore: number
  dialling: boolean
}

export class DialBook {
  readonly #now: () => number
  readonly #backoffMs: number
  readonly #maxFailures: number
  readonly #droppedForMs: number
  readonly #maxRecords: number
  readonly #records = new Map<string, DialRecord>()

  constructor(opts: DialBookOptions = {}) {
    this.#now = opts.now ?? Date.now
    this.#backoffMs = opts.backoffMs ?? DIAL_BACKOFF_MS
    this.#maxFailures = opts.maxFailures ?? MAX_DIAL_FAILURES
    this.#droppedForMs = opts.droppedForMs ?? DROPPED_FOR_MS
    this.#maxRecords = opts.maxRecords ?? MAX_DIAL_RECORDS
  }

  /** The book's key of a peer as the tracker lists it: its address and the key it claims. */
  static key(ip: string, port: number, publicKey?: string): string {
    return `${ip}:${port}/${publicKey ?? ''}`
  }

  /** Starts a dial to `key` and returns true, or returns false when it is in flight, backing off or dropped. */
  begin(key: string): boolean {
    const now = this.#now()
    let record = this.#records.get(key)
    if (record && (record.dialling || now < record.notBefore)) return false
    if (record && record.failures >= this.#maxFailures) {
      // Dropped long enough: the tracker still lists it, so it gets a fresh start.
      this.#records.delete(key)
      record = undefined
    }
    if (!record) {
      if (this.#records.size >= this.#maxRecords) this.#records.delete(this.#records.keys().next().value!)
      record = { failures: 0, notBefore: 0, dialling: false }
      this.#records.set(key, record)
    }
    record.dialling = true
    return true
  }

  /**
   * The dial begun for `key` ended: a connection forgets its failures, a failure backs off or
   * drops it. Returns how long `key` is now left alone (ms; 0 after a connection).
   */
  end(key: string, connected: boolean): number {
    const record = this.#records.get(key)
    if (connected || !record) {
      this.#records.delete(key)
      return 0
    }
    record.dialling = false
    record.failures++
    const wait = record.failures >= this.#maxFailures ? this.#droppedForMs : this.#backoffMs * 2 ** (record.failures - 1)
    record.notBefore = this.#now() + wait
    return wait
  }
}
