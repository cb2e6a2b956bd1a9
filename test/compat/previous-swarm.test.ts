// Issue 13 item 3, docs/formats.md §5 step 8, docs/protocol.md "What a requester asks for": the
// swarm across a format change. The previous release's sharing daemon plans in format 1 (1 MiB
// pieces checked by the manifest's piece hashes); this tree's plans a product that lists format 2
// in format 2 (a large file in runs of its chunks, each chunk checked by the tree's hashes). In one
// swarm on this tree's cluster, each takes a changed large file from the other: new asks old for
// chunk runs, old asks new for fixed pieces, and both install the signed bytes (R-VERIFY).
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Swarm } from '../../actors/demo/swarm.ts'
import { tempDir } from '../helpers/cluster.ts'
import { previousRelease, type PreviousRelease } from '../helpers/previous-release.ts'

const BIG = 3.5 * 1024 * 1024

describe('the swarm with the previous release', { timeout: 300_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let swarm: Swarm
  let previous: PreviousRelease

  beforeAll(async () => {
    previous = await previousRelease()
    dir = await tempDir('upswarm-compat-swarm-')
    // Servers capped at 256 KiB/s each: a daemon that starts its run before it has met its peer
    // (the previous release's does not wait for them) still takes most of the file from the peer.
    swarm = new Swarm({ dir: dir.path, servers: 2, formats: [1, 2], serverMaxUploadRate: 256 * 1024 })
    await swarm.start()
  }, 300_000)
  afterAll(async () => {
    await swarm?.stop()
    await dir?.cleanup()
  })

  it('previous release — its daemon and this tree\'s trade a changed large file both ways, one planning in format 1, the other in format 2', async () => {
    const src = join(dir.path, 'src')
    await mkdir(join(src, 'lib'), { recursive: true })
    const publish = async (rev: number): Promise<Buffer> => {
      const big = randomBytes(BIG)
      await writeFile(join(src, 'lib', 'big.bin'), big)
      await writeFile(join(src, 'VERSION'), `r${rev}\n`)
      await swarm.publish(src, `${rev}.0`)
      await swarm.serversSynced(rev)
      return big
    }
    await publish(1)
    const old = await swarm.addClient('old', previous.cli)
    const neu = await swarm.addClient('new')
    const installed = async (dir: string, big: Buffer): Promise<void> => {
      expect((await readFile(join(dir, 'lib', 'big.bin'))).equals(big)).toBe(true)
    }

    // r2: the previous release's daemon first (from the servers), then this tree's, from it.
    const big2 = await publish(2)
    await old.start()
    await old.reached(2)
    await installed(old.dir, big2)
    await neu.start()
    const n2 = await neu.reached(2)
    expect(n2.format).toBe(2)
    expect(n2.sources.badPieces).toBe(0)
    expect(n2.bytesFromPeers).toBeGreaterThanOrEqual(BIG / 2)
    await installed(neu.dir, big2)
    // This tree's daemon does not load the release feed for a product listing format 2, but a client
    // of the previous release asks for it: from then on it carries the feed (docs/protocol.md §3).
    await neu.waitFor((e) => e.event === 'feed.release' && Number(e.rev) >= 2)

    // r3: this tree's daemon alone first, then the previous release's, from it.
    await old.stop()
    const big3 = await publish(3)
    await neu.reached(3)
    await installed(neu.dir, big3)
    await old.start()
    const o3 = await old.reached(3)
    expect(o3.sources.badPieces).toBe(0)
    expect(o3.bytesFromPeers).toBeGreaterThanOrEqual(BIG / 2)
    await installed(old.dir, big3)
    console.info(`mixed swarm: new from old ${n2.bytesFromPeers} B from peers, ${n2.bytesFromServers} from servers; old from new ${o3.bytesFromPeers} B from peers, ${o3.bytesFromServers} from servers`)
    await Promise.all([old.stop(), neu.stop()])
  })
})
