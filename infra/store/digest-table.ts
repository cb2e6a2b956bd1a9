// Compact tables keyed by SHA-256 digests (issue 13 item 6: an update of 1 000 000 files under
// 1 GiB). A Map or Set of a million 64-character hex strings costs about 110–150 bytes an entry in
// V8 (the string, the table's slot, a value object); here a digest is its 32 bytes in one buffer,
// found by open addressing over a typed array of slots, and the values are typed-array columns:
// about 50 bytes an entry. Digests are uniformly random, so their first four bytes are the hash.
// A digest is compared as bytes: its hex in either case names the same entry; the tables give
// lowercase hex back.
const KEY = 32

/** Entries in the slots at most this share: probes stay short. */
const LOAD = 0.5

/**
 * The keys and the slots. Entries are appended; a deleted one is marked dead and keeps its slot
 * (a tombstone) until the table grows, when the live entries are packed and re-slotted.
 */
export class DigestKeys {
  protected keys: Buffer
  protected dead: Uint8Array
  /** Entries appended so far (live and dead). */
  protected count = 0
  private live = 0
  /** Entry number + 1 in each slot; 0 = empty. */
  private slots: Int32Array
  private readonly probe = Buffer.allocUnsafe(KEY)

  constructor(expected = 16) {
    const capacity = Math.max(16, expected)
    this.keys = Buffer.allocUnsafe(capacity * KEY)
    this.dead = new Uint8Array(capacity)
    this.slots = new Int32Array(slotsFor(capacity))
  }

  get size(): number {
    return this.live
  }

  /**
   * Decodes a digest's hex into the probe; false for anything but 64 hex digits. (A regular
   * expression would cost three times the lookup: the decoder stops at a non-hex pair, and the
   * UTF-8 length rules out characters past ASCII, which the decoder would cut to their low byte.)
   */
  private decode(sha256: string): boolean {
    return sha256.length === 64 && Buffer.byteLength(sha256, 'utf8') === 64 && this.probe.write(sha256, 0, KEY, 'hex') === KEY
  }

  /** The entry of a digest (hex), or -1. */
  protected find(sha256: string): number {
    return this.decode(sha256) ? this.lookup() : -1
  }

  /**
   * The entry of the digest decoded into the probe, or -1. Compared a word at a time in JavaScript:
   * Buffer's compare and copy cross into C++ (about 0.1–0.2 µs a call), which at 100 000 entries
   * was most of a first install's 0.5 s in these tables.
   */
  private lookup(): number {
    const mask = this.slots.length - 1
    const head = this.probe.readUInt32LE(0)
    for (let s = this.home(head); ; s = (s + 1) & mask) {
      const e = this.slots[s]! - 1
      if (e < 0) return -1
      if (this.dead[e] === 0 && this.keys.readUInt32LE(e * KEY) === head && this.sameRest(e)) return e
    }
  }

  /** Whether entry `e`'s key is the probe past its first word. */
  private sameRest(e: number): boolean {
    const keys = this.keys
    const at = e * KEY
    for (let i = 4; i < KEY; i += 4) if (keys.readUInt32LE(at + i) !== this.probe.readUInt32LE(i)) return false
    return true
  }

  /** The entry of a digest, appended when absent; `added` says which. */
  protected findOrAdd(sha256: string): { entry: number; added: boolean } {
    if (!this.decode(sha256)) throw new TypeError(`not a SHA-256 digest: ${JSON.stringify(sha256.slice(0, 80))}`)
    const found = this.lookup()
    if (found >= 0) return { entry: found, added: false }
    // (The slots hold at least twice the capacity: slotsFor.)
    if (this.count === this.dead.length) this.grow()
    const e = this.count++
    this.keys.set(this.probe, e * KEY)
    this.dead[e] = 0
    this.place(e)
    this.live++
    return { entry: e, added: true }
  }

  has(sha256: string): boolean {
    return this.find(sha256) >= 0
  }

  /** Whether the digest was there. */
  delete(sha256: string): boolean {
    const e = this.find(sha256)
    if (e < 0) return false
    this.remove(e)
    return true
  }

  protected remove(e: number): void {
    if (this.dead[e] === 1) return
    this.dead[e] = 1
    this.live--
  }

  /**
   * A key's first slot: its first word, multiplied (Fibonacci hashing) so that every bit counts.
   * Its low bits alone would be the first byte, and keys added in sorted order (a batch asked in
   * hash order) then fill the slots one run at a time: adds took twice as long.
   */
  private home(head: number): number {
    // The slots are a power of two, 2^k: the product's top k bits (32 − k = clz32(2^k) + 1).
    return Math.imul(head, 0x9e3779b1) >>> (Math.clz32(this.slots.length) + 1)
  }

  private place(e: number): void {
    const mask = this.slots.length - 1
    let s = this.home(this.keys.readUInt32LE(e * KEY))
    while (this.slots[s] !== 0) s = (s + 1) & mask
    this.slots[s] = e + 1
  }

  /** Room for half as many again as the live entries: the dead ones dropped, the live ones packed in order. */
  private grow(): void {
    const capacity = Math.max(16, Math.ceil(this.live * 1.5))
    const order = new Int32Array(this.live)
    let n = 0
    for (let e = 0; e < this.count; e++) if (this.dead[e] === 0) order[n++] = e
    const keys = Buffer.allocUnsafe(capacity * KEY)
    // With nothing deleted the keys stay in order: one copy.
    if (n === this.count) keys.set(this.keys.subarray(0, n * KEY))
    else for (let i = 0; i < n; i++) keys.set(this.keys.subarray(order[i]! * KEY, order[i]! * KEY + KEY), i * KEY)
    this.keys = keys
    this.dead = new Uint8Array(capacity)
    this.moved(order, capacity)
    this.count = n
    this.slots = new Int32Array(slotsFor(capacity))
    for (let e = 0; e < n; e++) this.place(e)
  }

  /** A subclass's columns follow the entries packed by grow: entry i is the old entry order[i]. */
  protected moved(_order: Int32Array, _capacity: number): void {}

  protected hexAt(e: number): string {
    return this.keys.toString('hex', e * KEY, e * KEY + KEY)
  }

  /** The live digests, as hex. */
  *keysHex(): IterableIterator<string> {
    for (let e = 0; e < this.count; e++) if (this.dead[e] === 0) yield this.hexAt(e)
  }
}

/** Slots for `capacity` entries at a load of at most LOAD (a power of two: probes wrap by a mask). */
function slotsFor(capacity: number): number {
  let n = 16
  while (n * LOAD < capacity) n *= 2
  return n
}

/** A set of SHA-256 digests (hex in, hex out). */
export class DigestSet extends DigestKeys {
  add(sha256: string): this {
    this.findOrAdd(sha256)
    return this
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.keysHex()
  }
}

/** Where a unit lies: the pack (by name), its offset and length there. */
export interface PackedAt { pack: string; offset: number; length: number }

/** Digest → (pack, offset, length), the pack names interned. */
export class PackedUnitTable extends DigestKeys {
  // (`declare`: set by the constructor and by moved(), never reset by a field initialiser after super().)
  private declare packNo: Uint32Array
  private declare offsets: Float64Array
  private declare lengths: Uint32Array
  private readonly packs: string[] = []
  private readonly packIds = new Map<string, number>()

  constructor(expected = 16) {
    super(expected)
    const capacity = this.dead.length
    this.packNo = new Uint32Array(capacity)
    this.offsets = new Float64Array(capacity)
    this.lengths = new Uint32Array(capacity)
  }

  get(sha256: string): PackedAt | undefined {
    const e = this.find(sha256)
    return e < 0 ? undefined : this.at(e)
  }

  /** Adds a unit unless the table has it; whether it was added. */
  addIfAbsent(sha256: string, u: PackedAt): boolean {
    // (A pack holds small units: a unit of 4 GiB or more is none of its business.)
    if (!(u.length >= 0 && u.length <= 0xffff_ffff)) throw new RangeError(`unit ${sha256} of ${u.length} bytes cannot be a packed unit`)
    const { entry, added } = this.findOrAdd(sha256)
    if (!added) return false
    let p = this.packIds.get(u.pack)
    if (p === undefined) {
      p = this.packs.push(u.pack) - 1
      this.packIds.set(u.pack, p)
    }
    this.packNo[entry] = p
    this.offsets[entry] = u.offset
    this.lengths[entry] = u.length
    return true
  }

  /** Removes every unit of a pack. */
  deletePack(pack: string): void {
    const p = this.packIds.get(pack)
    if (p === undefined) return
    for (let e = 0; e < this.count; e++) if (this.dead[e] === 0 && this.packNo[e] === p) this.remove(e)
  }

  private at(e: number): PackedAt {
    return { pack: this.packs[this.packNo[e]!]!, offset: this.offsets[e]!, length: this.lengths[e]! }
  }

  protected override moved(order: Int32Array, capacity: number): void {
    const packNo = new Uint32Array(capacity)
    const offsets = new Float64Array(capacity)
    const lengths = new Uint32Array(capacity)
    for (let i = 0; i < order.length; i++) {
      const e = order[i]!
      packNo[i] = this.packNo[e]!
      offsets[i] = this.offsets[e]!
      lengths[i] = this.lengths[e]!
    }
    this.packNo = packNo
    this.offsets = offsets
    this.lengths = lengths
  }
}
