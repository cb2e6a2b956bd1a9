// The format-2 requests of a repository server and of the proxy (docs/formats.md §1.8; issue 13
// item 3): `meta` answers a signed document as it was received (a release, the newest fresh
// statement, the roots from a version on), `nodes` answers tree nodes by hash — at most
// NODES_MAX_HASHES asked, at most NODES_MAX_REPLY bytes answered, the rest named for the next ask.
// The reply is binary (compact-encoding): `uint count`, count × (`sha256`, `bytes`), then
// `uint left`, left × `sha256`. Nodes are checked against their hashes by whoever reads them.
import b4a from 'b4a'
import c from 'compact-encoding'
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import type { NatsConnection } from '../nats/connect.ts'
import { proxySubject } from '../nats/names.ts'
import { request } from '../nats/request.ts'
import { UUID_RE } from '../release/manifest.ts'
import { HEX64 } from './envelope.ts'
import { NODE_MAX_BYTES, nodeHash } from './tree-node.ts'
import { MAX_WAIT_MS } from '../nats/busy.ts'

export const NODES_MAX_HASHES = 1024
export const NODES_MAX_REPLY = 4 * 1024 * 1024

const Product = z.string().regex(UUID_RE, 'product ids are lowercase UUIDs')
export const MetaRequest = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('release'), product: Product, rev: z.number().int().min(1).optional() }),
  z.object({ kind: z.literal('fresh'), product: Product }),
  z.object({ kind: z.literal('root'), from: z.number().int().min(1) }),
])
export type MetaRequest = z.infer<typeof MetaRequest>

export const NodesRequest = z.object({
  product: Product,
  hashes: z.array(z.string().regex(HEX64, 'node hashes are 64 hex characters')).min(1).max(NODES_MAX_HASHES),
})
export type NodesRequest = z.infer<typeof NodesRequest>

/**
 * Issue 13 item 4: many small units (whole files of at most UNITS_MAX_BYTES) in one request to the
 * assigned server, answered like `nodes` (same reply layout, same limits): a first install of many
 * small files costs a request per 4 MiB instead of one per file. A unit the server does not hold is
 * neither sent nor left: the client fetches it the per-file way.
 */
/** How long a client waits for a `range` or `units` answer (issue 14: a capped server answers busy past it). */
export const WaitMs = z.number().int().min(1).max(MAX_WAIT_MS)

export const UnitsRequest = z.object({
  hashes: z.array(z.string().regex(HEX64, 'unit hashes are 64 hex characters')).min(1).max(NODES_MAX_HASHES),
  // How long the client waits for the answer (issue 14): a capped server answers busy rather than
  // let the batch time out in its upload queue. A server of the previous release strips it.
  waitMs: WaitMs.optional(),
})
export type UnitsRequest = z.infer<typeof UnitsRequest>
/** The largest unit a `units` request carries. */
export const UNITS_MAX_BYTES = 1024 * 1024

/**
 * The room of a nodes-layout reply (`nodes`, `units`): called with each item's size in the order
 * asked, it says whether that item still fits under NODES_MAX_REPLY with room kept to name every
 * hash not yet taken; the first item always fits.
 */
export function replyBudget(asked: number): (bytes: number) => boolean {
  let size = 16
  let taken = 0
  return (bytes) => {
    const next = size + 32 + 4 + bytes
    if (taken > 0 && next > NODES_MAX_REPLY - 32 * (asked - taken)) return false
    size = next
    taken++
    return true
  }
}

/** The nodes reply: `found` in the order asked, until the next would pass NODES_MAX_REPLY; the rest are `left`. */
export function encodeNodesReply(found: ReadonlyArray<readonly [string, Uint8Array]>, left: readonly string[]): Buffer {
  const s = c.state()
  c.uint.preencode(s, found.length)
  for (const [, bytes] of found) {
    c.fixed32.preencode(s, b4a.alloc(32))
    c.uint8array.preencode(s, bytes)
  }
  c.uint.preencode(s, left.length)
  s.end += 32 * left.length
  s.buffer = b4a.allocUnsafe(s.end)
  c.uint.encode(s, found.length)
  for (const [hash, bytes] of found) {
    c.fixed32.encode(s, b4a.from(hash, 'hex'))
    c.uint8array.encode(s, bytes)
  }
  c.uint.encode(s, left.length)
  for (const hash of left) c.fixed32.encode(s, b4a.from(hash, 'hex'))
  return s.buffer as Buffer
}

/** Decodes a nodes reply; every node must hash to the name it comes with (R-VERIFY) and be one that was asked. */
export function decodeNodesReply(bytes: Uint8Array, asked: readonly string[], where: string, what: 'node' | 'unit' = 'node'): { nodes: Map<string, Uint8Array>; left: string[] } {
  const wanted = new Set(asked)
  const bad = (why: string): never => {
    throw new UpswarmError('UPSWARM_E_PEER', `${what}s reply from ${where}: ${why}`)
  }
  const s = { start: 0, end: bytes.length, buffer: bytes }
  const nodes = new Map<string, Uint8Array>()
  const left: string[] = []
  try {
    const count = c.uint.decode(s)
    if (count > asked.length) bad(`${count} ${what}s for ${asked.length} hashes asked`)
    for (let i = 0; i < count; i++) {
      const hash = b4a.toString(c.fixed32.decode(s), 'hex')
      const node = c.uint8array.decode(s)
      if (!wanted.has(hash)) bad(`${what} ${hash} was not asked for`)
      if (node.length > NODE_MAX_BYTES || nodeHash(node) !== hash) bad(`${what} ${hash} does not hash to its name`)
      nodes.set(hash, node)
    }
    const n = c.uint.decode(s)
    if (n > asked.length) bad(`${n} hashes left for ${asked.length} asked`)
    for (let i = 0; i < n; i++) left.push(b4a.toString(c.fixed32.decode(s), 'hex'))
  } catch (err) {
    if (err instanceof UpswarmError) throw err
    bad(`malformed (${(err as Error).message})`)
  }
  if (s.start !== s.end) bad('trailing bytes')
  return { nodes, left }
}

/**
 * The client's side of `upswarm.proxy.nodes` (docs/formats.md §1.8): every node of `hashes`,
 * asked in batches of NODES_MAX_HASHES and again for what a reply leaves, each verified.
 */
export async function fetchNodes(nc: NatsConnection, product: string, hashes: readonly string[], subject = proxySubject('nodes'), onReply?: (bytes: number) => void): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>()
  let todo = [...new Set(hashes)]
  while (todo.length > 0) {
    const ask = todo.slice(0, NODES_MAX_HASHES)
    const reply = await request(nc, subject, { product, hashes: ask }, 10_000)
    onReply?.(reply.byteLength)
    const { nodes, left } = decodeNodesReply(reply, ask, subject)
    if (nodes.size === 0) throw new UpswarmError('UPSWARM_E_PEER', `nodes reply from ${subject} carries none of the ${ask.length} nodes asked`)
    for (const [h, b] of nodes) out.set(h, b)
    todo = [...left.filter((h) => !out.has(h)), ...todo.slice(ask.length)]
  }
  return out
}

/** A signed document by `upswarm.proxy.meta` (or a server's `meta`), as the server received it. */
export async function fetchMeta(nc: NatsConnection, req: MetaRequest, subject = proxySubject('meta')): Promise<string> {
  return Buffer.from(await request(nc, subject, req, 10_000)).toString('utf8')
}
