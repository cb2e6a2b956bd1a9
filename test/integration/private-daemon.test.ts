// Issue 10 item 9 at the sharing daemon: a working copy made with `init --private` is shared
// with fleet members only, under the fleet's secret topics and tracker id (real NATS tracker,
// the suite's DHT, real sockets).
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDaemon, type Daemon } from '../../actors/share-daemon/index.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import { Authority } from '../../infra/auth/authority.ts'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { trackerSubject } from '../../infra/nats/names.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import { loadSwarmIdentity, privateProductId, productTopic, type SwarmIdentity } from '../../infra/swarm/fleet.ts'
import { clusterInfo, newProduct, tempDir, testConnection } from '../helpers/cluster.ts'
import { closed, makeNode } from './swarm-fixtures.ts'

describe('daemon — private product', () => {
  let nc: NatsConnection
  let tracker: Tracker
  let dir: Awaited<ReturnType<typeof tempDir>>
  let authority: Authority
  const identity = async (name: string): Promise<{ file: string; id: SwarmIdentity }> => {
    const { file } = await authority.issueSwarmIdentity({ kind: 'client', name })
    return { file, id: await loadSwarmIdentity(file) }
  }

  beforeAll(async () => {
    nc = await testConnection('private-daemon')
    tracker = await startTracker({ nc, id: `private-${process.pid}` })
    dir = await tempDir('upswarm-private-daemon-')
    authority = await Authority.open(`${dir.path}/auth`)
  })
  afterAll(async () => {
    await tracker?.close()
    await nc?.close()
    await dir?.cleanup()
  })

  it('daemon — a private copy needs a fleet identity, announces only the secret id, and admits members only, on TCP and on the DHT', async () => {
    const product = newProduct()
    const wcDir = `${dir.path}/wc`
    await WorkingCopy.create(wcDir, { format: 1, product, publicKey: randomBytes(32).toString('hex'), clientId: 'private', historyDepth: 2, private: true })
    const bootstrap = parseBootstrap(clusterInfo().dhtBootstrap)
    await expect(startDaemon({ dir: wcDir, nc, bootstrap: clusterInfo().dhtBootstrap })).rejects.toMatchObject({ code: 'UPSWARM_E_CONFIG', message: expect.stringMatching(/private.*--swarm-identity/) })

    const mine = await identity('laptop-a')
    const announced: string[] = []
    let firstAnnounce!: () => void
    const announcedOnce = new Promise<void>((resolve) => (firstAnnounce = resolve))
    const watch = nc.subscribe(trackerSubject('announce', '*'), {
      callback: (_err, msg) => {
        announced.push((msg.json() as { product: string }).product)
        firstAnnounce()
      },
    })
    let daemon: Daemon | undefined
    const outsider = makeNode(() => {}, { bootstrap, dhtHost: '127.0.0.1' })
    const member = await identity('laptop-b')
    const fellow = makeNode(() => {}, { keyPair: member.id.keyPair, bootstrap, fleet: { identity: member.id, admit: 'members' } })
    try {
      daemon = await startDaemon({ dir: wcDir, nc, host: '127.0.0.1', bootstrap: clusterInfo().dhtBootstrap, swarmIdentity: mine.file, announceIntervalMs: 100 })
      expect(daemon.publicKey).toBe(mine.id.keyPair.publicKey.toString('hex'))
      await announcedOnce
      expect(announced).toContain(privateProductId(mine.id.topicSecret, product))
      expect(announced).not.toContain(product)

      // Outsider over TCP: the connection is closed, the daemon never counts it as a peer.
      const refused = new Promise<string>((resolve) => daemon!.once('peer.connected', () => resolve('connected')))
      await outsider.transport.dial('127.0.0.1', daemon.port)
      await closed((await outsider.nextConnection()).stream)
      expect(daemon.connections()).toEqual([])

      // Outsider on the DHT, by the public topic: nobody.
      await outsider.transport.join(productTopic(product), { server: false, client: true })
      await outsider.transport.flush()
      expect(daemon.connections()).toEqual([])

      // A member by the private topic: admitted.
      await fellow.transport.join(productTopic(product, undefined, member.id.topicSecret), { server: false, client: true })
      expect(await refused).toBe('connected')
      expect((await fellow.nextConnection()).info.member).toBe('laptop-a')
      expect(daemon.connections().map((c) => c.key)).toEqual([member.id.keyPair.publicKey.toString('hex')])
    } finally {
      watch.unsubscribe()
      await daemon?.close()
      await outsider.transport.close()
      await fellow.transport.close()
    }
  })
})
