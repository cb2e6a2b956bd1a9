// Compact peer addresses (BEP 23: 4-byte IPv4 + port; BEP 7: 16-byte IPv6 + port), written
// straight into the answer. Parsed IPv4 addresses are remembered by their text (a bounded table):
// a peer's address is handed out in many answers between two of its own announces, and a string
// key is cheaper to look up than a WeakMap of entries.
import { isIPv4, isIPv6 } from 'node:net'
import type { PeerEntry } from './types.ts'

const MAX_REMEMBERED = 65_536
const ipv4 = new Map<string, number>()

/** The IPv4 address as an unsigned 32-bit number, or -1 for any other address. */
export function ipv4Number(ip: string): number {
  let v = ipv4.get(ip)
  if (v === undefined) {
    v = -1
    if (isIPv4(ip)) {
      const [a, b, c, d] = ip.split('.').map(Number)
      v = ((a! << 24) | (b! << 16) | (c! << 8) | d!) >>> 0
    }
    if (ipv4.size >= MAX_REMEMBERED) ipv4.clear()
    ipv4.set(ip, v)
  }
  return v
}

const ipv4Of = (p: PeerEntry): number => ipv4Number(p.ip)

/** `head` bytes left free at the start, then 6 bytes per IPv4 peer. */
export function compactIPv4(peers: readonly PeerEntry[], head = 0): Buffer {
  let n = 0
  for (const p of peers) if (ipv4Of(p) >= 0) n++
  const out = Buffer.allocUnsafe(head + n * 6)
  let off = head
  for (const p of peers) {
    const v = ipv4Of(p)
    if (v < 0) continue
    out.writeUInt32BE(v, off)
    out.writeUInt16BE(p.port, off + 4)
    off += 6
  }
  return out
}

/** 18 bytes per IPv6 peer (BEP 7). */
export function compactIPv6(peers: PeerEntry[]): Buffer {
  const list = peers.filter((p) => isIPv6(p.ip) && !p.ip.includes('.'))
  const out = Buffer.alloc(list.length * 18)
  list.forEach((p, i) => {
    const [head, tail] = p.ip.includes('::') ? p.ip.split('::') : [p.ip, undefined]
    const h = head ? head.split(':') : []
    const t = tail ? tail.split(':') : []
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
    for (let g = 0; g < 8; g++) out.writeUInt16BE(parseInt(groups[g] ?? '0', 16) || 0, i * 18 + g * 2)
    out.writeUInt16BE(p.port, i * 18 + 16)
  })
  return out
}
