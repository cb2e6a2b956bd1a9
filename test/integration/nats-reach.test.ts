// Issue 17 item 5: bad addresses get a clear line and a status, never a silent stall. A node whose
// advertised address does not reach it is named with why (`up` logs it and writes it into
// endpoints.json `warnings`); a host waiting for other hosts' peers says, while it waits and when
// it gives up, which of its route URLs do not answer.
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Authority } from '../../infra/auth/authority.ts'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { freePorts } from '../../infra/cluster/ports.ts'
import { advertisedMismatch, natsServerName, unreachableRoutes } from '../../infra/cluster/reach.ts'
import { tempDir } from '../helpers/cluster.ts'

describe('addresses an operator gave, checked', { timeout: 60_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let authority: Authority
  let right: NatsCluster
  let wrong: NatsCluster

  beforeAll(async () => {
    dir = await tempDir('upswarm-reach-')
    authority = await Authority.open(join(dir.path, 'auth'))
    right = await NatsCluster.start({ dir: join(dir.path, 'right'), nodes: 1, authority, advertise: '127.0.0.1' })
    // Bound to 127.0.0.1 but telling clients 127.0.0.2 (a typo; on Linux all of 127/8 is this host, and nothing listens there).
    wrong = await NatsCluster.start({ dir: join(dir.path, 'wrong'), nodes: 1, authority, advertise: '127.0.0.2' })
  }, 60_000)

  afterAll(async () => {
    await wrong?.stop()
    await right?.stop()
    await dir?.cleanup()
  })

  it('nats-reach — an advertised address that does not reach the node is named, with why; the right one passes', async () => {
    expect(await right.checkAdvertised()).toEqual([])
    const lines = await wrong.checkAdvertised()
    expect(lines).toEqual([`n1: the advertised address, dialled from this host, 127.0.0.2:${wrong.nodes[0]!.port} does not reach it (ECONNREFUSED); clients and other hosts are told to use it: check --advertise (behind NAT without hairpinning this host may not reach it)`])
    // Another NATS server at the address: its INFO names it.
    expect(await advertisedMismatch('127.0.0.1', right.nodes[0]!.port, 'n7')).toBe(`127.0.0.1:${right.nodes[0]!.port} reaches another NATS server (n1)`)
    expect(natsServerName('INFO {"server_name":"h2-n1","port":4222}')).toBe('h2-n1')
    expect(natsServerName('SSH-2.0-OpenSSH_9.2')).toBeUndefined()
  })

  it('nats-reach — something that is not NATS at the advertised address is named as such', async () => {
    const other: Server = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'))
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
    const port = (other.address() as { port: number }).port
    try {
      expect(await advertisedMismatch('127.0.0.1', port, 'n1')).toBe(`127.0.0.1:${port} reaches something that is not a NATS server`)
    } finally {
      other.close()
    }
  })

  it('nats-reach — a route port that accepts but stays silent (TLS routes: the dialler speaks first) is reachable; a closed one is not', async () => {
    const silent: Server = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const port = (silent.address() as { port: number }).port
    const [closed] = await freePorts(1)
    try {
      expect(await unreachableRoutes([`nats-route://127.0.0.1:${port}`, `nats-route://127.0.0.1:${closed}`], 300))
        .toEqual([`nats-route://127.0.0.1:${closed}: unreachable (ECONNREFUSED)`])
    } finally {
      silent.close()
    }
  })

  it('nats-reach — a host waiting for peers behind a route that does not answer says so while waiting and when it gives up', async () => {
    // One call: a port handed out here is not handed out again for the node.
    const [closed, client, cluster, monitor] = await freePorts(4)
    const said: string[] = []
    const start = NatsCluster.start({
      dir: join(dir.path, 'lonely'), nodes: 1, authority, namePrefix: 'h1', routes: [`nats-route://127.0.0.1:${closed}`], expectPeers: 2,
      ports: { client: client!, cluster: cluster!, monitor: monitor! }, peersTimeoutMs: 15_000, onWait: (line) => said.push(line),
    })
    const unreachable = `nats-route://127.0.0.1:${closed}: unreachable (ECONNREFUSED)`
    await expect(start).rejects.toMatchObject({ code: 'UPSWARM_E_CLUSTER_START', message: expect.stringContaining(unreachable) })
    expect(said.length).toBeGreaterThanOrEqual(1)
    expect(said[0]).toMatch(/^waiting for 2 JetStream peers \(the meta group so far: .*\); /)
    expect(said[0]).toContain(unreachable)
  })
})
