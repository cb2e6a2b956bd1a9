// Issue 10 item 9, private swarms: on a real local DHT and real sockets, a node serving a private
// product admits only peers whose Noise key carries a certificate of its fleet, and announces
// under a topic derived from the fleet's secret; public products stay open to anyone.
import { afterEach, describe, expect, it } from 'vitest'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import { createFleetKey, createSwarmIdentity, productTopic, type SwarmIdentity } from '../../infra/swarm/fleet.ts'
import { PieceSession } from '../../infra/swarm/piece-protocol.ts'
import type { FleetOptions } from '../../infra/swarm/transport.ts'
import { clusterInfo } from '../helpers/cluster.ts'
import { makeNode, type Node } from './swarm-fixtures.ts'

const YEAR_S = 365 * 24 * 60 * 60
const fleet = createFleetKey()
const secret = randomBytes(32)
const later = (): number => Math.floor(Date.now() / 1000) + YEAR_S
const member = (name: string): SwarmIdentity => createSwarmIdentity(fleet, secret, name, later())

const blob = randomBytes(100_000)
const sha = createHash('sha256').update(blob).digest('hex')

const nodes: Node[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.transport.close()))
})

interface Peer { node: Node; sessions: PieceSession[]; refused: string[] }

/** A node on the suite's DHT whose every connection gets a piece session (serving `blob` when `serves`). */
function peer(opts: { identity?: SwarmIdentity; keyPair?: SwarmIdentity['keyPair']; admit?: FleetOptions['admit']; serves?: boolean } = {}): Peer {
  const sessions: PieceSession[] = []
  const refused: string[] = []
  const serve = opts.serves ? async (s: string, offset: number, length: number) => (s === sha ? blob.subarray(offset, offset + length) : null) : undefined
  const node = makeNode((stream) => sessions.push(new PieceSession(stream, serve ? { serve } : {})), {
    keyPair: opts.keyPair ?? opts.identity?.keyPair ?? NoiseSecretStream.keyPair(),
    bootstrap: parseBootstrap(clusterInfo().dhtBootstrap),
    fleet: { identity: opts.identity ?? null, admit: opts.admit ?? 'anyone' },
  })
  node.transport.on('refused', (_peer, reason) => refused.push(reason))
  nodes.push(node)
  return { node, sessions, refused }
}

/** Dials `server` over TCP from `client` and asks for the blob on the client's new session. */
async function fetchOverTcp(client: Peer, server: Peer): Promise<Buffer> {
  const addr = server.node.transport.tcpAddress ?? await server.node.transport.listen('127.0.0.1')
  const delivered = client.node.nextConnection()
  await client.node.transport.dial(addr.host, addr.port).catch(() => {})
  await delivered
  return client.sessions.at(-1)!.request(sha, 0, blob.length)
}

const refusal = async (p: Peer): Promise<string> => p.refused[0] ?? (await once(p.node.transport, 'refused'))[1] as string

describe('private swarm — admission by fleet certificate', () => {
  const outsiders: [string, () => Peer, RegExp][] = [
    ['no certificate', () => peer(), /presented no fleet certificate/],
    ['a certificate of another fleet', () => peer({ identity: createSwarmIdentity(createFleetKey(), secret, 'intruder', later()) }), /another fleet/],
    ['a member\'s certificate on another Noise key', () => peer({ identity: member('stolen'), keyPair: NoiseSecretStream.keyPair() }), /another Noise key/],
  ]
  for (const [what, make, reason] of outsiders) {
    it(`private swarm — a peer with ${what} gets no piece of a private product`, async () => {
      const server = peer({ identity: member('server-1'), admit: 'members', serves: true })
      const outsider = make()
      await expect(fetchOverTcp(outsider, server)).rejects.toMatchObject({ code: 'UPSWARM_E_PEER' })
      expect(await refusal(server)).toMatch(reason)
      expect(server.sessions).toHaveLength(0)
    })
  }

  it('private swarm — two fleet members find each other by the private topic and exchange pieces; an outsider finds nobody by the public one', async () => {
    const product = randomUUID()
    const a = peer({ identity: member('client-a'), admit: 'members', serves: true })
    await a.node.transport.join(productTopic(product, 3, secret), { server: true, client: false })

    const outsider = peer()
    await outsider.node.transport.join(productTopic(product, 3), { server: false, client: true })
    await outsider.node.transport.flush()
    expect(outsider.node.transport.connections.size).toBe(0)
    expect(a.refused).toEqual([])

    const b = peer({ identity: member('client-b'), admit: 'members' })
    const connected = b.node.nextConnection()
    await b.node.transport.join(productTopic(product, 3, secret), { server: false, client: true })
    const { info } = await connected
    expect(info.member).toBe('client-a')
    expect(b4hex(await b.sessions[0]!.request(sha, 0, blob.length))).toBe(b4hex(blob))
  })

  it('private swarm — a node with an identity still serves public products to anyone, and tells members apart', async () => {
    const server = peer({ identity: member('server-2'), admit: 'anyone', serves: true })
    const outsider = peer()
    expect(b4hex(await fetchOverTcp(outsider, server))).toBe(b4hex(blob))
    expect((await server.node.nextConnection()).info.member).toBeNull()
    const fellow = peer({ identity: member('client-c'), admit: 'members' })
    expect(b4hex(await fetchOverTcp(fellow, server))).toBe(b4hex(blob))
    expect((await server.node.nextConnection()).info.member).toBe('client-c')
  })
})

const b4hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
