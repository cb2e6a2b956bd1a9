// A binary-safe query-string parser. BitTorrent puts raw 20-byte info hashes and peer ids in the
// query (percent-encoded bytes, not UTF-8), which URLSearchParams would mangle. Bounded: at most
// `maxParams` pairs; any malformed escape rejects the whole query.

export type Query = Map<string, Buffer[]>

export class QueryError extends Error {
  override readonly name = 'QueryError'
}

export function parseQuery(raw: string, maxParams = 64): Query {
  const out: Query = new Map()
  if (raw === '') return out
  const pairs = raw.split('&', maxParams + 1)
  if (pairs.length > maxParams) throw new QueryError(`more than ${maxParams} query parameters`)
  for (const pair of pairs) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const name = decode(eq < 0 ? pair : pair.slice(0, eq)).toString('latin1')
    const value = decode(eq < 0 ? '' : pair.slice(eq + 1))
    const list = out.get(name)
    if (list) list.push(value)
    else out.set(name, [value])
  }
  return out
}

function decode(s: string): Buffer {
  const bytes = Buffer.allocUnsafe(s.length * 3)
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x25 /* % */) {
      const hi = hexValue(s.charCodeAt(i + 1))
      const lo = hexValue(s.charCodeAt(i + 2))
      if (hi < 0 || lo < 0) throw new QueryError(`bad percent-escape "${s.slice(i, i + 3)}"`)
      bytes[n++] = hi * 16 + lo
      i += 2
    } else if (c === 0x2b /* + */) {
      bytes[n++] = 0x20
    } else if (c < 0x80) {
      bytes[n++] = c
    } else {
      // A raw non-ASCII character (a lenient client): keep its UTF-8 bytes.
      n += bytes.write(s[i]!, n, 'utf8')
    }
  }
  return bytes.subarray(0, n)
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  return -1
}

/** Percent-encodes every byte that is not unreserved (RFC 3986), as BitTorrent clients do. */
export function encodeBytes(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`
  }
  return out
}
