// Bencoding (BEP 3): the encoding of every BitTorrent HTTP tracker response. Written here rather
// than taken from a package so that decoding is bounded: a hostile body can cost neither
// unbounded depth nor unbounded memory.
import b4a from 'b4a'

/** A dictionary is a plain object, or a Map when keys are binary (scrape's info hashes). */
export type BValue = number | string | Uint8Array | BValue[] | { [key: string]: BValue } | Map<string | Uint8Array, BValue>

/** Encodes integers, strings (UTF-8), byte strings, lists and dictionaries (keys sorted bytewise). */
export function bencode(value: BValue): Buffer {
  const parts: Uint8Array[] = []
  encodeInto(value, parts)
  return Buffer.concat(parts)
}

function encodeInto(value: BValue, parts: Uint8Array[]): void {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`bencode: ${value} is not a safe integer`)
    parts.push(b4a.from(`i${value}e`))
  } else if (typeof value === 'string') {
    const bytes = b4a.from(value)
    parts.push(b4a.from(`${bytes.byteLength}:`), bytes)
  } else if (value instanceof Uint8Array) {
    parts.push(b4a.from(`${value.byteLength}:`), value)
  } else if (Array.isArray(value)) {
    parts.push(b4a.from('l'))
    for (const item of value) encodeInto(item, parts)
    parts.push(b4a.from('e'))
  } else {
    const entries = value instanceof Map ? [...value] : Object.entries(value)
    const keyed = entries.map(([k, v]) => [typeof k === 'string' ? b4a.from(k) : k, v] as const)
    // Keys are sorted as raw byte strings (BEP 3).
    keyed.sort((a, b) => b4a.compare(a[0], b[0]))
    parts.push(b4a.from('d'))
    for (const [key, item] of keyed) {
      encodeInto(key, parts)
      encodeInto(item, parts)
    }
    parts.push(b4a.from('e'))
  }
}

/** A decoded value: byte strings stay bytes (peer ids and compact peers are binary). */
export type BDecoded = number | Uint8Array | BDecoded[] | Map<string, BDecoded>

export interface DecodeLimits {
  maxDepth?: number
  maxItems?: number
}

export class BencodeError extends Error {
  override readonly name = 'BencodeError'
}

/** Decodes one bencoded value that must span the whole input. Throws BencodeError on any defect. */
export function bdecode(input: Uint8Array, limits: DecodeLimits = {}): BDecoded {
  const maxDepth = limits.maxDepth ?? 32
  let items = limits.maxItems ?? 100_000
  let pos = 0

  const fail = (what: string): never => {
    throw new BencodeError(`bencode: ${what} at byte ${pos}`)
  }
  const readInt = (end: number): number => {
    const text = b4a.toString(input, 'latin1', pos, end)
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) fail(`bad integer "${text.slice(0, 24)}"`)
    const n = Number(text)
    if (!Number.isSafeInteger(n)) fail('integer out of range')
    pos = end + 1
    return n
  }
  const indexOf = (byte: number): number => {
    const i = input.indexOf(byte, pos)
    if (i < 0) fail('unterminated value')
    return i
  }
  const readValue = (depth: number): BDecoded => {
    if (depth > maxDepth) fail('nesting too deep')
    if (--items < 0) fail('too many items')
    const c = input[pos]
    if (c === undefined) return fail('unexpected end')
    if (c === 0x69 /* i */) {
      pos++
      return readInt(indexOf(0x65 /* e */))
    }
    if (c === 0x6c /* l */) {
      pos++
      const list: BDecoded[] = []
      while (input[pos] !== 0x65) list.push(readValue(depth + 1))
      pos++
      return list
    }
    if (c === 0x64 /* d */) {
      pos++
      const dict = new Map<string, BDecoded>()
      while (input[pos] !== 0x65) {
        const key = readValue(depth + 1)
        if (!(key instanceof Uint8Array)) fail('dictionary key is not a string')
        dict.set(b4a.toString(key as Uint8Array, 'latin1'), readValue(depth + 1))
      }
      pos++
      return dict
    }
    if (c >= 0x30 && c <= 0x39) {
      const colon = indexOf(0x3a /* : */)
      const text = b4a.toString(input, 'latin1', pos, colon)
      if (!/^(0|[1-9][0-9]*)$/.test(text)) fail(`bad string length "${text.slice(0, 24)}"`)
      const len = Number(text)
      const start = colon + 1
      if (len > input.byteLength - start) fail('string longer than input')
      pos = start + len
      return input.subarray(start, pos)
    }
    return fail(`unexpected byte 0x${c.toString(16)}`)
  }

  const value = readValue(0)
  if (pos !== input.byteLength) fail('trailing bytes')
  return value
}
