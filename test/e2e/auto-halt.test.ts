// Issue 16 item 2 end to end, with real processes on an `up` deployment (credentials and TLS): five
// `upswarm daemon --auto` clients, each its own identity, check the program after every install
// (`--health-cmd`). r2 ships the file that makes the check fail. Every client that installs r2
// goes back to r1 by itself from local history and alerts the administrators; the deployment's
// notary, holding the root's halt key for the product, counts the failures per distinct client
// and, at three, halts r2 with a statement signed by that key. Afterwards every copy is at r1, and
// the alerts on UPSWARM_ALERTS name r2, r1 and the health check, one per client that took it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Swarm, isRevertOf, type SwarmClient } from '../../actors/demo/swarm.ts'
import { rollout } from '../../actors/operator/rollout.ts'
import { status } from '../../actors/updater/index.ts'
import { FULL } from '../../infra/formats/rollout.ts'
import { readAlerts, type StoredAlert } from '../../infra/nats/alert-reader.ts'
import { writeTree } from '../helpers/trees.ts'

const CLIENTS = 5
const HEALTH = 'test ! -e "$UPSWARM_DIR/BROKEN"'

describe('automatic halt', { timeout: 300_000 }, () => {
  let dir: string
  let swarm: Swarm
  let clients: SwarmClient[]

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'upswarm-auto-halt-'))
    swarm = new Swarm({ dir, servers: 1 })
    await swarm.start()
    await writeTree(join(dir, 'src'), { 'app.txt': 'version 1\n', 'lib/data.bin': Buffer.alloc(100_000, 7) })
    await swarm.publish(join(dir, 'src'), 'r1')
    await swarm.serversSynced(1)
    await rollout({ nc: swarm.publisherNc, product: swarm.product, rev: 1, keys: [swarm.key], action: { percent: FULL } })
    clients = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => swarm.addClient(`h${i + 1}`)))
    await Promise.all(clients.map((c) => c.start(['--health-cmd', HEALTH, '--health-timeout', '30'])))
  }, 300_000)

  afterAll(async () => {
    await swarm?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('rollout — a release whose health check fails on three distinct clients halts itself; the clients that took it are back on the previous revision, with alerts', async () => {
    const since = Date.now()
    await writeTree(join(dir, 'src'), { 'app.txt': 'version 2\n' })
    await writeFile(join(dir, 'src', 'BROKEN'), 'this build does not start\n')
    await swarm.publish(join(dir, 'src'), 'r2')
    await swarm.serversSynced(2)
    await rollout({ nc: swarm.publisherNc, product: swarm.product, rev: 2, keys: [swarm.key], action: { percent: FULL } })

    const halted = await swarm.haltOf(2, 180_000)
    expect(halted.seq).toBeGreaterThan(2)
    // Every client that started r2 ends that run reverted; none stays on r2.
    const took = clients.filter((c) => c.startedTo(2))
    await Promise.all(took.map((c) => c.waitFor(isRevertOf(2), 120_000)))
    expect(took.length).toBeGreaterThanOrEqual(3)
    for (const c of clients) {
      const s = await status(c.dir)
      expect({ client: c.name, rev: s.rev }).toEqual({ client: c.name, rev: 1 })
      if (took.includes(c)) expect(s.reverted).toMatchObject({ rev: 2, to: 1, phase: 'health' })
    }

    // One health alert per client that took r2, each from that client's own identity.
    const alerts: StoredAlert[] = []
    await readAlerts(swarm.nc, { product: swarm.product, sinceMs: since }, (a) => alerts.push(a))
    const health = alerts.filter((a) => (a.body as { type?: string }).type === 'health')
    expect(health.map((a) => a.body)).toEqual(took.map(() => expect.objectContaining({ type: 'health', product: swarm.product, rev: 2, to: 1, phase: 'health' })))
    expect(new Set(health.map((a) => a.from)).size).toBe(took.length)
  })
})
