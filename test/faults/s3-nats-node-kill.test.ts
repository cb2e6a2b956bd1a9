// Fault suite S3 (issue 11; ARCHITECTURE: the release log is an R3 JetStream stream on nodes with
// sync_interval: always): one nats-server node of a real 3-node cluster (TLS, credentials) is
// killed with SIGKILL at a random moment of a publish and started again during the next one. A
// publish that fails is run again, as an operator would. Afterwards the product's release subject
// holds exactly r1, r2, r3 once each: lost 0, duplicated 0. Full: 20 runs; short: 1.
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publish } from '../../actors/publisher/publish.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { natsServerBinary } from '../../infra/cluster/nats-server-bin.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { RELEASE_STREAM, releaseSubject } from '../../infra/nats/names.ts'
import { withRetry } from '../../infra/nats/retry.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { readReleaseChain } from '../../infra/release/release-log.ts'
import { startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const RUNS = sized(1, 20)
const RETRIES = 5

describe('faults S3 — a NATS node killed and restarted during publishes', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let pub: NatsConnection
  let admin: NatsConnection
  const key = generatePublisherKey()

  beforeAll(async () => {
    dir = await tempDir('upswarm-faults-s3-')
    const own = await startOwnCluster(dir.path)
    cluster = own.cluster
    pub = await own.connect('faults-s3-publisher', { kind: 'publisher', name: 'publisher' })
    admin = await own.connect('faults-s3-admin')
  }, 150_000)
  afterAll(async () => {
    await pub?.close()
    await admin?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  it('faults S3 — no release lost or duplicated', { timeout: sized(120_000, 900_000) }, async () => {
    const figures = new FaultFigures('faults-s3-nats-node-kill', 'S3: one NATS node killed (SIGKILL) and restarted during publishes')
    const rnd = random()
    const trust = join(dir.path, 'trust.json')
    let lost = 0
    let duplicated = 0
    let failedPublishes = 0
    let killedDuringPublish = 0
    let publishMs = 0
    const kills: Record<string, number> = {}
    for (let run = 0; run < RUNS; run++) {
      figures.runs++
      const product = randomUUID()
      const tree = async (rev: number): Promise<string> => {
        const src = join(dir.path, `src-${run}-${rev}`)
        await writeTree(src, { 'big.bin': randomContent(256 * 1024 + Math.floor(rnd() * 512 * 1024)), 'rev.txt': String(rev) })
        return src
      }
      /** A publish, run again after a failure (bounded); resolves with the revision it reports. */
      const publishOnce = async (src: string): Promise<number> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return (await publish({ nc: pub, src, product, key, trust })).rev
          } catch (err) {
            failedPublishes++
            if (attempt >= RETRIES) throw err
          }
        }
      }
      try {
        const t0 = performance.now()
        const revs = [await publishOnce(await tree(1))]
        publishMs = publishMs ? (publishMs + (performance.now() - t0)) / 2 : performance.now() - t0
        // r2: a node dies at a random moment of the publish.
        const victim = cluster.nodes[Math.floor(rnd() * cluster.nodes.length)]!
        kills[victim.name] = (kills[victim.name] ?? 0) + 1
        const src2 = await tree(2)
        const pending = publishOnce(src2)
        let settled = false
        void pending.finally(() => { settled = true }).catch(() => undefined)
        // The fault's moment is the one deliberate wait: random, up to one mean publish time.
        await new Promise((r) => setTimeout(r, rnd() * publishMs))
        if (!settled) killedDuringPublish++
        await victim.kill('SIGKILL')
        revs.push(await pending)
        // r3: the node comes back while it is being published.
        const src3 = await tree(3)
        const [r3] = await Promise.all([publishOnce(src3), victim.start()])
        revs.push(r3)
        // What the stream holds for the product, read through the R3 stream once it has a leader.
        const count = await withRetry(async () => {
          const info = await (await jetstreamManager(admin)).streams.info(RELEASE_STREAM, { subjects_filter: releaseSubject(product) })
          return info.state.subjects?.[releaseSubject(product)] ?? 0
        }, { attempts: 30 })
        const chain = await withRetry(() => readReleaseChain(admin, product, (k) => k === key.publicKey), { attempts: 30 })
        const head = chain.head?.release.manifest.rev ?? 0
        // Every message past three is a second copy of a release (the chain reports it as skipped).
        const dup = Math.max(0, count - 3)
        const missing = Math.max(0, 3 - head) + (revs.join() === '1,2,3' ? 0 : 1)
        if (dup) duplicated += dup
        if (missing) lost += missing
        if (dup || missing || count !== 3) figures.fail(`run ${run}: publishes reported ${revs.join(',')}, the subject holds ${count} messages, head r${head}, skipped ${JSON.stringify(chain.skipped)}`)
      } catch (err) {
        figures.fail(`run ${run}: ${(err as Error).message}`)
        lost++
        for (const n of cluster.nodes) if (!n.running) await n.start()
      }
    }
    const bin = natsServerBinary()
    const goals = await figures.finish({
      parameters: { runs: RUNS, retriesPerPublish: RETRIES, nodes: 3, syncAlways: bin.supportsSyncAlways, natsServer: bin.version.join('.'), meanPublishMs: Math.round(publishMs) },
      rows: [{
        runs: RUNS, 'publishes': RUNS * 3, 'killed mid-publish': killedDuringPublish, 'failed attempts (run again)': failedPublishes,
        lost, duplicated, 'kills per node': Object.entries(kills).map(([n, k]) => `${n} ×${k}`).join(', '),
      }],
      goals: [zero('releases lost', lost, `of ${RUNS * 3}`), zero('releases duplicated', duplicated, `of ${RUNS * 3}`)],
      notes: ['each run: r1; r2 with a SIGKILL of a random node at a random moment up to one mean publish time; r3 while the node starts again; then the release subject is read back'],
    })
    expect(missed(goals)).toEqual([])
  })
})
