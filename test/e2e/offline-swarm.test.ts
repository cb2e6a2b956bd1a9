// Issue 11 item 1 (R-DHT-2) end to end: NATS, the servers, the tracker and the DHT bootstrap all
// gone — and the first NATS address a blackhole that accepts connections and never answers. A
// daemon restarted with the same (dead) configuration dials the peers it remembers, learns the
// new release from their feed and installs it from them. The same for a product published in
// format 2 only (issue 13 item 3): no feed, no format-1 manifest — the release document comes on
// the statements channel, the tree nodes and files on the piece channel.
import net from 'node:net'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Swarm } from '../../actors/demo/swarm.ts'
import { generateTree, mutateTree } from '../../actors/demo/tree-gen.ts'
import * as updater from '../../actors/updater/index.ts'
import { tempDir } from '../helpers/cluster.ts'

for (const formats of [[1], [2]]) {
  describe(`offline swarm (formats ${formats.join(',')})`, { timeout: 240_000 }, () => {
    let dir: { path: string; cleanup: () => Promise<void> }
    let swarm: Swarm
    let blackhole: net.Server | undefined

    beforeAll(async () => {
      dir = await tempDir('upswarm-offline-swarm-')
      swarm = new Swarm({ dir: dir.path, servers: 1, weights: [1], formats })
      await swarm.start()
    }, 120_000)
    afterAll(async () => {
      blackhole?.close()
      await swarm?.stop().catch(() => {})
      await dir?.cleanup()
    })

    it(`share-daemon — with NATS (one address a blackhole), servers, tracker and DHT bootstrap all gone, a restarted daemon dials the peers it remembers and updates from them (formats ${formats.join(',')})`, async () => {
      const src = join(dir.path, 'src')
      await generateTree(src, { files: 12, totalBytes: 512 * 1024, seed: 'offline-r1' })
      await swarm.publish(src, '1')
      await swarm.serversSynced(1)
      const [a, b] = await Promise.all([swarm.addClient('off-a'), swarm.addClient('off-b')])
      // a first, so that b finds a in the tracker's list at its start and dials it: a dial that
      // succeeded is an address b keeps (a peer that dialled in tells no listening port of its own).
      await a.start()
      await b.start()
      // They meet through the tracker, and b keeps a's address.
      // The address b keeps for a must be the one a listens on (a tracker may also list an older port of the same key).
      await expect.poll(async () => {
        const book = await readFile(join(b.dir, '.upswarm', 'peers.json'), 'utf8').catch(() => '{"peers":[]}')
        return (JSON.parse(book) as { peers: Array<{ publicKey: string; port: number }> }).peers.map((p) => `${p.publicKey}:${p.port}`)
      }, { timeout: 90_000, interval: 250 }).toContain(`${String(a.ready!.publicKey)}:${String(a.ready!.port)}`)
      await b.stop()

      await mutateTree(src, { seed: 'offline-r2', changeFraction: 0.5, add: 2, remove: 1 })
      const published = await swarm.publish(src, '2')
      if (formats.includes(1)) {
        // The release must be in the feed the servers seed, or no daemon can learn it from a peer.
        expect(published.feed, 'the publish appended r2 to the release feed').toMatchObject({ appended: true })
        await a.reached(2)
        // b, restarted with no NATS, learns of r2 from a's release feed: a must hold r2 there (from the
        // servers' swarm) before the servers go, not only have installed it (through NATS).
        await a.waitFor((e) => e.event === 'feed.release' && (e as { rev?: number }).rev === 2)
      } else {
        // Format 2 only: a holds r2's release document (from the servers) and its tree, and passes
        // the document on to peers on the statements channel.
        const done = await a.reached(2)
        expect(done.format).toBe(2)
        await a.waitFor((e) => e.event === 'release.doc' && (e as { rev?: number }).rev === 2)
      }

      // Issue 13 item 5: a daemon of a product whose root lists format 2 learns of releases from
    // release documents and never loads the release feed (Hypercore and its RocksDB storage).
    const maps = await readFile(`/proc/${a.child!.pid}/maps`, 'utf8')
    expect(maps.includes('rocksdb-native'), 'the release feed\'s storage is loaded').toBe(!formats.includes(2))

    // Everything but the client daemons goes away.
      for (const role of [...swarm.launched.children.keys()]) await swarm.stopRole(role)
      const natsUrl = new URL(swarm.launched.endpoints.nats![0]!)
      await swarm.launched.cluster!.stop()
      blackhole = net.createServer(() => {}).listen(Number(natsUrl.port), '127.0.0.1')
      await once(blackhole, 'listening')

      await b.start()
      const done = await b.reached(2)
      expect(done.format).toBe(formats.includes(1) ? 1 : 2)
      expect(done.bytesFromServers).toBe(0)
      expect(done.bytesFromPeers).toBeGreaterThan(0)
      const status = await updater.status(b.dir)
      expect(status.rev).toBe(2)
      expect(status.files.filter((f) => f.status !== 'current')).toEqual([])
    })
  })
}
