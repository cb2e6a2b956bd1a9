// Packs (docs/formats.md §1.9; issue 13 item 4): many small units — whole-file blobs of small files,
// deltas — in one object of `upswarm-blobs`, as git packs and OSTree static deltas hold many
// objects. A pack is a container only: every unit in it is still named and verified by its own
// SHA-256 (R-VERIFY), so a reader that got a unit from a pack cannot tell it from one stored
// alone. Layout: `uint format` (2), `uint type` (5), a 4-byte little-endian length of the header
// body, the body — `uint count`, count × (`sha256`, `uint length`) sorted by hash, each once, then
// an extension list — and then the units' bytes in the listed order. The pack's id is the SHA-256
// of its header (everything before the first unit byte): the header names every unit's hash and
// length, so it fixes the whole content, and a publisher names a pack before reading its units.
import b4a from 'b4a'
import c from 'compact-encoding'
import type { Hash } from 'node:crypto'
import { nodeCrypto } from '../node-crypto.ts'
import { sha256Hex } from '../release/hash.ts'
import { UpswarmError } from '../errors.ts'
import { encodeToBytes, strictDecoding, type State, type WireEncoder } from '../swarm/wire-kit.ts'
import { NODE_FORMAT, TreeNodeError } from './tree-node.ts'

export const PACK_TYPE = 5
/** Units one pack holds at most (the header stays under ~2.4 MB). */
export const PACK_MAX_UNITS = 65_536
/** A unit larger than this is never packed: it is an object of its own (one round trip is cheap next to its bytes). */
export const PACK_UNIT_MAX = 1024 * 1024
/** What a publisher fills a pack to before it starts the next. */
export const PACK_TARGET_BYTES = 16 * 1024 * 1024
const HEADER_BODY_MAX = 4 * 1024 * 1024
const PREFIX = 6

export interface PackUnit { sha256: string; length: number }

const { decodeWith, uintAtMost } = strictDecoding(TreeNodeError, HEADER_BODY_MAX)

const bodyEncoder: WireEncoder<PackUnit[]> = {
  preencode(s, units) {
    c.uint.preencode(s, units.length)
    for (const u of units) {
      s.end += 32
      c.uint.preencode(s, u.length)
    }
    c.uint.preencode(s, 0)
  },
  encode(s, units) {
    c.uint.encode(s, units.length)
    for (const u of units) {
      c.fixed32.encode(s, b4a.from(u.sha256, 'hex'))
      c.uint.encode(s, u.length)
    }
    c.uint.encode(s, 0)
  },
}

/** The header of a pack of `units` (sorted here by hash, duplicates dropped), its id, and the units in pack order. */
export function packHeader(units: readonly PackUnit[]): { bytes: Buffer; id: string; units: PackUnit[]; bytesTotal: number } {
  const sorted = [...new Map(units.map((u) => [u.sha256, u])).values()].sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0))
  if (sorted.length < 1 || sorted.length > PACK_MAX_UNITS) throw new UpswarmError('UPSWARM_E_MANIFEST', `a pack holds 1 to ${PACK_MAX_UNITS} units, not ${sorted.length}`)
  const body = encodeToBytes(bodyEncoder, sorted)
  const bytes = Buffer.alloc(PREFIX + body.length)
  bytes[0] = NODE_FORMAT
  bytes[1] = PACK_TYPE
  bytes.writeUInt32LE(body.length, 2)
  body.copy(bytes, PREFIX)
  decodeHeaderBody(body, 'the pack being written') // never write what a reader refuses
  return { bytes, id: nodeCrypto().createHash('sha256').update(bytes).digest('hex'), units: sorted, bytesTotal: bytes.length + sorted.reduce((n, u) => n + u.length, 0) }
}

function decodeHeaderBody(body: Uint8Array, what: string): PackUnit[] {
  return decodeWith(what, body, (s: State) => {
    const n = uintAtMost(s, PACK_MAX_UNITS, 'units')
    if (n < 1) throw new TreeNodeError(`${what}: an empty pack`)
    const units: PackUnit[] = []
    for (let i = 0; i < n; i++) {
      if (s.end - s.start < 32) throw new TreeNodeError(`${what}: truncated unit ${i}`)
      const sha256 = b4a.toString((s.buffer as Uint8Array).subarray(s.start, s.start + 32), 'hex')
      s.start += 32
      const length = uintAtMost(s, PACK_UNIT_MAX, `unit ${i}: length`)
      if (i > 0 && units[i - 1]!.sha256 >= sha256) throw new TreeNodeError(`${what}: unit ${i} out of order (sorted by hash, each once)`)
      units.push({ sha256, length })
    }
    uintAtMost(s, 0, 'extensions') // none defined: a later format adds them
    return units
  })
}

/**
 * Reads a pack as it streams, checking everything a reader must before it keeps a byte: the header
 * hashes to the pack's id, it is canonical, every unit hashes to its name, nothing is missing and
 * nothing trails. `onUnit` hears each unit once it verified (its offset in the pack, its bytes).
 */
export class PackReader {
  private head: Buffer[] = []
  private headBytes = 0
  private headerLength = -1
  /** Units in order, their offsets in the pack, once the header is read. */
  units: (PackUnit & { offset: number })[] | null = null
  private unit = 0
  private unitHash: Hash | null = null
  /** The digest of a unit that came whole in one chunk (hashed at once). */
  private wholeDigest: string | undefined
  private unitParts: Buffer[] = []
  private unitGot = 0
  private offset = 0

  constructor(readonly id: string, private readonly where: string, private readonly onUnit?: (u: PackUnit & { offset: number }, bytes: Buffer) => void | Promise<void>) {}

  private fail(message: string): never {
    throw new UpswarmError('UPSWARM_E_HASH_MISMATCH', `pack ${this.id.slice(0, 16)}… from ${this.where}: ${message}; refusing it`)
  }

  /** The header's bytes, once they are in (what a reader that needs only the index stops after). */
  get headerDone(): boolean {
    return this.units !== null
  }

  async push(chunk: Uint8Array): Promise<void> {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    if (!this.units) {
      this.head.push(buf)
      this.headBytes += buf.length
      if (this.headerLength < 0 && this.headBytes >= PREFIX) {
        const p = Buffer.concat(this.head)
        this.head = [p]
        if (p[0] !== NODE_FORMAT || p[1] !== PACK_TYPE) this.fail(`it starts ${p[0]}, ${p[1]}, not a format-${NODE_FORMAT} pack (type ${PACK_TYPE})`)
        const body = p.readUInt32LE(2)
        if (body > HEADER_BODY_MAX) this.fail(`a header of ${body} bytes (at most ${HEADER_BODY_MAX})`)
        this.headerLength = PREFIX + body
      }
      if (this.headerLength < 0 || this.headBytes < this.headerLength) return
      const all = Buffer.concat(this.head)
      this.head = []
      const header = all.subarray(0, this.headerLength)
      if (nodeCrypto().createHash('sha256').update(header).digest('hex') !== this.id) this.fail('its header does not hash to its id')
      let units: PackUnit[]
      try {
        units = decodeHeaderBody(header.subarray(PREFIX), `pack ${this.id.slice(0, 16)}…`)
      } catch (err) {
        this.fail((err as Error).message)
      }
      let at = this.headerLength
      this.units = units.map((u) => {
        const o = { ...u, offset: at }
        at += u.length
        return o
      })
      this.offset = this.headerLength
      buf = all.subarray(this.headerLength)
    }
    while (buf.length > 0 || (this.unit < this.units.length && this.units[this.unit]!.length === 0 && this.unitGot === 0)) {
      const u = this.units[this.unit]
      if (!u) this.fail(`${buf.length} bytes after its last unit`)
      // A whole unit in hand (most are, in a batch's reply) is hashed in one call, with no Hash object.
      const whole = this.unitGot === 0 && buf.length >= u.length
      const take = whole ? u.length : Math.min(u.length - this.unitGot, buf.length)
      const part = buf.subarray(0, take)
      if (whole) this.wholeDigest = sha256Hex(part)
      else (this.unitHash ??= nodeCrypto().createHash('sha256')).update(part)
      if (this.onUnit) this.unitParts.push(part)
      this.unitGot += take
      this.offset += take
      buf = buf.subarray(take)
      if (this.unitGot === u.length) await this.finishUnit(u)
    }
  }

  private async finishUnit(u: PackUnit & { offset: number }): Promise<void> {
    const digest = this.wholeDigest ?? this.unitHash!.digest('hex')
    this.wholeDigest = undefined
    if (digest !== u.sha256) this.fail(`unit ${this.unit} (${u.sha256.slice(0, 16)}…) does not hash to its name`)
    const bytes = this.unitParts.length === 1 ? this.unitParts[0]! : Buffer.concat(this.unitParts)
    this.unitHash = null
    this.unitParts = []
    this.unitGot = 0
    this.unit++
    await this.onUnit?.(u, bytes)
  }

  /** The pack ended: everything it announced must have come. */
  async end(): Promise<void> {
    if (!this.units) this.fail('it ended inside its header')
    // Empty units at the very end come with no byte after them.
    while (this.unit < this.units.length && this.units[this.unit]!.length === 0) {
      this.unitHash ??= nodeCrypto().createHash('sha256')
      await this.finishUnit(this.units[this.unit]!)
    }
    if (this.unit < this.units.length) this.fail(`it ended after ${this.unit} of its ${this.units.length} units`)
  }
}
