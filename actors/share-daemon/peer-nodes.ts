// Tree nodes from peers (issue 13 item 3, R-DHT-2 for format 2; docs/protocol.md §3): a node is
// asked on `upswarm/pieces` like a blob, by its SHA-256 from offset 0 for up to NODE_MAX_BYTES
// (a shorter answer is the whole node), of one connected peer after another until one holds it.
// The bytes must hash to the node's name before they count; a peer whose bytes do not is banned,
// as for a bad piece. The caller (the updater's tree walk) decodes and checks the node against
// the hash its parent names (R-VERIFY), as for nodes from the servers.
import { UpswarmError } from '../../infra/errors.ts'
import { NODE_MAX_BYTES, nodeHash } from '../../infra/formats/tree-node.ts'
import { eachLimited } from '../../infra/parallel.ts'
import type { PeerSet } from './peers.ts'

/** Nodes asked of peers at once. */
const NODES_AT_ONCE = 8
const NODE_REQUEST_TIMEOUT_MS = 10_000

export async function nodesFromPeers(peers: PeerSet, hashes: readonly string[], opts: { signal?: AbortSignal } = {}): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>()
  await eachLimited([...new Set(hashes)], NODES_AT_ONCE, async (hash) => {
    const asked = peers.all().filter((p) => !p.session.closed)
    // Each node starts at another peer, so one slow peer does not carry every request.
    const start = parseInt(hash.slice(0, 8), 16) % Math.max(1, asked.length)
    for (let i = 0; i < asked.length; i++) {
      const p = asked[(start + i) % asked.length]!
      if (p.session.closed) continue
      let bytes: Uint8Array
      try {
        bytes = await p.session.request(hash, 0, NODE_MAX_BYTES, { timeoutMs: NODE_REQUEST_TIMEOUT_MS, ...(opts.signal ? { signal: opts.signal } : {}) })
      } catch {
        if (opts.signal?.aborted) throw opts.signal.reason
        continue // not held there (not-found), busy, or gone: the next peer
      }
      if (nodeHash(bytes) !== hash) {
        peers.ban(p.key, `sent ${bytes.length} bytes for tree node ${hash} that do not hash to its name`)
        continue
      }
      out.set(hash, bytes)
      return
    }
    throw new UpswarmError('UPSWARM_E_NO_SERVER', `tree node ${hash.slice(0, 16)}…: no server answered, and none of the ${asked.length} connected peer(s) holds it`)
  })
  return out
}
