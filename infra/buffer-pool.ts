// Buffers of one size kept for reuse (issue 14 item 2): a piece read or received into a buffer
// that an earlier piece used makes no garbage for the collector. At most `max` are kept; the rest
// of a burst is left to the collector.
export class BufferPool {
  private readonly free: Buffer[] = []

  constructor(readonly size: number, private readonly max: number) {}

  /** A buffer of `size` bytes: a kept one, else a new one (its own memory, not a slice of a shared slab). */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
  }

  /** Gives a buffer taken here back, once nothing reads or writes it any more. */
  give(buffer: Buffer): void {
    if (this.free.length < this.max) this.free.push(buffer)
  }
}
