// The peers a daemon last reached (issue 11 item 1, R-DHT-2): when NATS, the tracker and the DHT
// bootstrap are all gone, a restarted daemon still dials the peers it knew, gets the release feed
// and the pieces from them. Kept in the working copy's metadata folder, bounded, newest first,
// written atomically and at most every few seconds.
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { writeFileAtomic } from '../store/working-copy/atomic.ts'

export const ADDRESS_BOOK_MAX = 64
const SAVE_EVERY_MS = 5_000

const BookSchema = z.strictObject({
  format: z.literal(1),
  peers: z.array(z.strictObject({
    host: z.string().min(1).max(255),
    port: z.number().int().min(1).max(65535),
    publicKey: z.string().regex(/^[0-9a-f]{64}$/),
    lastSeen: z.string().max(64),
  })).max(ADDRESS_BOOK_MAX),
})
export type RememberedPeer = z.infer<typeof BookSchema>['peers'][number]

export class AddressBook {
  private peers: RememberedPeer[] = []
  private readonly file: string
  private readonly tmpDir: string
  private dirty = false
  private timer: NodeJS.Timeout | undefined
  private saving: Promise<void> = Promise.resolve()

  private constructor(file: string, tmpDir: string) {
    this.file = file
    this.tmpDir = tmpDir
  }

  /** Opens the book; a missing or unreadable one is empty (it is a cache: losing it loses nothing but speed). */
  static async open(file: string, tmpDir: string): Promise<AddressBook> {
    const book = new AddressBook(file, tmpDir)
    try {
      book.peers = BookSchema.parse(JSON.parse(await readFile(file, 'utf8'))).peers
    } catch {
      book.peers = []
    }
    return book
  }

  /** Newest first. */
  list(): RememberedPeer[] {
    return [...this.peers]
  }

  /**
   * A peer's dialable address (its listening port, with its Noise key). One key may have several
   * addresses (a tracker still lists the port of an earlier process with the same key): each is
   * kept and dialled, and the dial book's backoff retires the dead ones.
   */
  remember(host: string, port: number, publicKey: string): void {
    this.peers = [{ host, port, publicKey, lastSeen: new Date().toISOString() }, ...this.peers.filter((p) => !(p.host === host && p.port === port))]
      .slice(0, ADDRESS_BOOK_MAX)
    this.dirty = true
    this.timer ??= setTimeout(() => {
      this.timer = undefined
      void this.flush()
    }, SAVE_EVERY_MS)
    this.timer.unref()
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    if (!this.dirty) return this.saving
    this.dirty = false
    const data = JSON.stringify({ format: 1, peers: this.peers }) + '\n'
    this.saving = this.saving.then(() => writeFileAtomic(this.file, data, this.tmpDir)).catch(() => {})
    return this.saving
  }
}
