// Issue 12: no role keeps retry loops or timers outside its machine. Every decision over time —
// a retry, a backoff, a hold, a sweep, a re-announce, a heartbeat — is an `after` delay of a
// statechart in machines/. What may still call setTimeout/setInterval outside machines is listed
// here, file by file, with its kind (docs/decisions.md "Timers belong to the machines"): a
// deadline on one I/O step, the wake-up of waiters, a protocol's own retransmission or keep-alive,
// or a timer only used when the module runs without a machine. A new timer anywhere else fails
// this test until it moves into a machine or is added here with its reason.
import { readdir, readFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '../..')

type Kind = 'deadline' | 'wake-up' | 'protocol' | 'standalone' | 'not a role'

/** file → how many timer calls it holds, and why they are not a machine's. */
const ALLOWED: Record<string, { calls: number; kind: Kind; why: string }> = {
  'actors/demo/swarm.ts': { calls: 3, kind: 'not a role', why: 'the demo waits for its own clients, the servers and the notary, each with a deadline' },
  'actors/operator/prune.ts': { calls: 1, kind: 'deadline', why: "an operator command's bounded wait for a consumer's subjects to reach the node" },
  'actors/publisher/feed.ts': { calls: 2, kind: 'deadline', why: 'how long one publish waits for a server that seeds the feed' },
  'actors/repo-server/bulk.ts': { calls: 1, kind: 'protocol', why: "HTTP/1.1 on the bulk port's own TLS connections: a kept-open connection's idle close and a request's read bound (node's keepAliveTimeout and headersTimeout), one net idle timer per connection" },
  'actors/share-daemon/peers.ts': { calls: 4, kind: 'wake-up', why: "downloads wait for the peer table to change, bounded; a busy peer's cool-off wakes them" },
  'infra/cluster/children.ts': { calls: 1, kind: 'deadline', why: 'SIGKILL after the grace period of a SIGTERM' },
  'infra/cluster/nats-cluster.ts': { calls: 2, kind: 'deadline', why: 'a nats-server must say it is ready within its start-up bound' },
  'infra/cluster/reach.ts': { calls: 1, kind: 'deadline', why: 'a probe of a route or an advertised address gives up when nothing answers' },
  'infra/http/pinned-https.ts': { calls: 1, kind: 'deadline', why: 'an exchange with a bulk port (a range, a batch of units) waits what its client said it waits, as a NATS request does' },
  'infra/repo-client.ts': { calls: 1, kind: 'protocol', why: "a proxy's \"no server\" asked again (one that just started has not heard the servers' heartbeats yet), bounded" },
  'infra/nats/connect.ts': { calls: 1, kind: 'deadline', why: 'one request without an answer' },
  'infra/nats/leases.ts': { calls: 2, kind: 'protocol', why: "a held lease's keep-alive (like a TCP keep-alive) and the wait while a prune holds it" },
  'infra/nats/retry.ts': { calls: 1, kind: 'protocol', why: 'one request again after "no responders" (a consumer or stream still electing), bounded' },
  'infra/store/lock-file.ts': { calls: 1, kind: 'deadline', why: 'waiting for another process to let go of the working copy, bounded' },
  'infra/store/working-copy/control-wire.ts': { calls: 1, kind: 'deadline', why: 'update waits for the sharing daemon to take the run, bounded, then fails naming the socket and --no-daemon' },
  'infra/store/working-copy/lock.ts': { calls: 1, kind: 'deadline', why: "a command waits for another live process (the copy's daemon keeping its history after it answered) to let go of the working copy, bounded, then fails naming it" },
  'infra/store/working-copy/monitor-wire.ts': { calls: 1, kind: 'deadline', why: "status waits for the file monitor's answer, bounded, then walks the tree" },
  'infra/store/working-copy/tree-watch.ts': { calls: 1, kind: 'deadline', why: "a monitor's question waits for its cookie's event, bounded" },
  'infra/swarm/address-book.ts': { calls: 1, kind: 'wake-up', why: 'coalesces writes of the peer address file' },
  'infra/swarm/fleet.ts': { calls: 1, kind: 'deadline', why: "a peer's fleet certificate within the handshake bound" },
  'infra/swarm/piece-protocol.ts': { calls: 2, kind: 'deadline', why: 'a piece request and a stalled transfer' },
  'infra/swarm/release-feed.ts': { calls: 2, kind: 'deadline', why: 'waiting for a peer to hold feed blocks, bounded' },
  'infra/swarm/token-bucket.ts': { calls: 2, kind: 'wake-up', why: 'the upload rate limit lets the next bytes go (take, and the next waiter of takeInTurn)' },
  'infra/swarm/transport.ts': { calls: 4, kind: 'deadline', why: 'dial and handshake bounds' },
  'infra/tracker-client/udp-door.ts': { calls: 2, kind: 'protocol', why: "BEP 15's own retransmission of a UDP request" },
  'infra/tracker/bucket-writer.ts': { calls: 2, kind: 'standalone', why: 'the retry interval only without a machine (ownTimer: the tracker drives retryLate from its statechart); a bound on the flush at close' },
  'infra/tracker/registry.ts': { calls: 2, kind: 'standalone', why: 'the sweep and the batched bucket writes\' flush, only without a machine (ownTimers); the tracker drives both from its statechart' },
}

/** Calls that start a timer: setTimeout/setInterval and the promise form imported as delay/sleep. */
const TIMER = /\bset(?:Timeout|Interval)\s*\(|\b(?:delay|sleep)\s*\(/g

async function sources(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const f of await readdir(join(ROOT, dir), { recursive: true })) {
    if (f.endsWith('.ts') && !f.endsWith('.d.ts')) out.push(join(dir, f))
  }
  return out
}

/** Timer calls in code, comments left out. */
function timerCalls(source: string): number {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
  return [...code.matchAll(TIMER)].length
}

describe('role timers', () => {
  it('timers — outside machines/, only the reviewed deadlines, wake-ups and protocol timers remain (no retry loop or backoff of a role)', async () => {
    const found: Record<string, number> = {}
    for (const file of [...(await sources('actors')), ...(await sources('infra'))]) {
      // The inspector's own send budget is the inspection machinery, not a role (issue 12 item 3).
      if (file.startsWith(join('infra', 'inspect'))) continue
      const n = timerCalls(await readFile(join(ROOT, file), 'utf8'))
      if (n > 0) found[relative(ROOT, join(ROOT, file))] = n
    }
    expect(found).toEqual(Object.fromEntries(Object.entries(ALLOWED).map(([f, a]) => [f, a.calls])))
  })
})
