// Fault suite, disk full during a server's sync (issue 11; items 6 and 8, R-SERVER): a repository
// server whose store lives on a small tmpfs (mount -t tmpfs, root only; skipped elsewhere) syncs
// r1, then r2, which does not fit. Two ways, alternately: the disk is already too full when the
// server starts (r1 fits, r2 not), or it fills up while r2 copies (a filler written when the
// server starts writing one of r2's blobs). The server must keep nothing half-written (every stored
// blob verifies, no temporary file, state.json and the served revisions still at r1, r2 neither
// counted as synced nor served), say so clearly (heartbeat `stalled`, which `stats` shows, and a
// `sync.no-space` alert naming ENOSPC and the store), not park r2 (it is the disk's fault), and
// sync r2 once space is freed. Full: 20 runs and a control; short: 2 and the control.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, watch, type FSWatcher } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import type { Msg, NatsConnection } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { publish } from '../../actors/publisher/publish.ts'
import { judgeHeartbeat, ReleaseCeiling } from '../../actors/proxy/heartbeats.ts'
import { Pool } from '../../actors/proxy/pool.ts'
import type { Heartbeat } from '../../infra/nats/heartbeat.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { RELEASE_STREAM, alertSubject, releaseSubject, serverConsumer, serverHeartbeat } from '../../infra/nats/names.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { blobsOf } from '../../infra/release/manifest.ts'
import { FANOUT_MARKER } from '../../infra/store/blob-store.ts'
import { TrustStore, pinProduct } from '../../infra/release/trust.ts'
import { freeBytes } from '../../infra/store/disk-space.ts'
import { connectionAndDir, newProduct, roleConnection } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'
import { canMountTmpfs } from '../helpers/tmpfs.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const RUNS = sized(3, 21)
const DISK = '8m'
const WAIT_MS = 60_000

const CAN_MOUNT = canMountTmpfs()

/** Files under `dir` (recursively), relative paths. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1))
  }
  return out.sort()
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer)
  return h.digest('hex')
}

describe('faults — disk full during a repository server\'s sync', () => {
  const fx = connectionAndDir('upswarm-faults-server-disk-')
  const key = generatePublisherKey()
  const product = newProduct()
  let disk = ''
  let trust = ''
  let conn: NatsConnection
  const id = `diskfull${process.pid}`
  const seqs: Record<number, number> = {}
  /** The server's alerts on the product and its heartbeats, as they are published. */
  let alerts: Collected
  let heartbeats: Collected

  beforeAll(async () => {
    if (!CAN_MOUNT) return
    trust = join(fx.dir, 'trust.json')
    await pinProduct(trust, product, key.publicKey)
    const rnd = random()
    const bytes = (n: number): string => Array.from({ length: n }, () => Math.floor(rnd() * 36).toString(36)).join('')
    await writeTree(join(fx.dir, 's1'), { 'a.txt': 'a1\n', 'lib/small.bin': bytes(64 * 1024) })
    await writeTree(join(fx.dir, 's2'), { 'a.txt': 'a2\n', 'lib/small.bin': bytes(64 * 1024), 'lib/one.bin': bytes(1_200_000), 'lib/two.bin': bytes(1_500_000), 'lib/deep/three.bin': bytes(1_100_000) })
    const jsm = await jetstreamManager(fx.nc)
    for (const rev of [1, 2]) {
      await publish({ nc: fx.nc, src: join(fx.dir, `s${rev}`), product, key, trust, skipFeed: true })
      seqs[rev] = (await jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(product) }))!.seq
    }
    disk = await mkdtemp(join(tmpdir(), 'upswarm-faults-server-small-disk-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${DISK}`, 'tmpfs', disk])
    conn = await roleConnection({ kind: 'server', name: id })
    alerts = collect(fx.nc, alertSubject(product, id))
    heartbeats = collect(fx.nc, serverHeartbeat(id))
  })
  afterAll(async () => {
    alerts?.stop()
    heartbeats?.stop()
    await (await jetstreamManager(fx.nc)).consumers.delete(RELEASE_STREAM, serverConsumer(id)).catch(() => undefined)
    await conn?.close()
    if (disk) {
      execFileSync('umount', [disk])
      await rm(disk, { recursive: true, force: true })
    }
  })

  it.skipIf(!CAN_MOUNT)('faults — a server whose disk cannot hold a release keeps nothing half-written, says so (stats, alert), parks nothing, and syncs it once space is freed', { timeout: sized(180_000, 900_000) }, async () => {
    const figures = new FaultFigures('faults-disk-full-server-sync', `Disk full during a repository server's sync: a ${DISK} tmpfs store`)
    const rnd = random()
    const jsm = await jetstreamManager(fx.nc)
    const dataDir = join(disk, 'store')
    const filler = join(disk, 'filler')
    const row = (mode: string) => ({
      mode, runs: 0, 'waited for space': 0, 'fitted after all': 0, 'refused before copying': 0, 'ran out mid-copy': 0, 'whole blobs kept while waiting': 0,
      'half-written': 0, 'clear error': 0, 'alert sent': 0, parked: 0, 'r2 after freeing space': 0,
    })
    const rows = { before: row('disk too full at start'), during: row('disk fills during the copy') }
    let halfWritten = 0
    let unclear = 0
    let parkedAny = 0
    let notSynced = 0
    let needR1 = 0
    let needR2 = 0
    for (let run = 0; run < RUNS; run++) {
      const mode = run % 2 === 1 ? 'before' : 'during'
      const r = rows[mode]
      let server: RepoServer | undefined
      let watcher: FSWatcher | undefined
      try {
        await rm(dataDir, { recursive: true, force: true })
        await rm(filler, { force: true })
        const empty = await freeBytes(disk)
        const start = (): Promise<RepoServer> => startRepoServer({
          nc: conn, id, dataDir, trust: new TrustStore(trust), heartbeatMs: 60_000, spacePollMs: 50,
        })
        if (run === 0) {
          // The control: r1 and r2 on the empty disk, measuring what each takes.
          server = await start()
          await waitFor(server.actor, () => (server!.store.synced[product] ?? 0) >= 1, { timeout: WAIT_MS })
          needR1 = empty - (await freeBytes(disk))
          await waitFor(server.actor, () => (server!.store.synced[product] ?? 0) >= 2, { timeout: WAIT_MS })
          needR2 = empty - (await freeBytes(disk)) - needR1
          continue
        }
        figures.runs++
        r.runs++
        const alertsBefore = alerts.msgs.length
        const beatsBefore = heartbeats.msgs.length
        // Each run leaves a random 0–90 % of what r2 takes beyond what r1 took (during the copy:
        // 0–25 %, less than its smallest large file, of what is left then).
        const leave = Math.floor(rnd() * (mode === 'before' ? 0.9 : 0.25) * needR2)
        const fill = async (keep: number): Promise<void> => {
          await writeFile(filler, Buffer.alloc(Math.max(0, (await freeBytes(disk)) - keep))).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOSPC') throw err
          })
        }
        if (mode === 'before') await fill(needR1 + leave)
        // During the copy: the disk fills up when the server starts writing the k-th blob of r2
        // (BlobStore.put creates a temporary file per blob), after its free-space check passed.
        let r2Started = false
        let filling: Promise<void> = Promise.resolve()
        if (mode === 'during') {
          const tmpBlobs = join(dataDir, 'blobs', 'tmp')
          await mkdir(tmpBlobs, { recursive: true })
          const k = 1 + Math.floor(rnd() * 3)
          let seen = 0
          watcher = watch(tmpBlobs, (event, name) => {
            if (!r2Started || event !== 'rename' || !name || !existsSync(join(tmpBlobs, name))) return
            if (++seen === k) filling = fill(leave)
          })
        }
        server = await start()
        const s = server
        s.actor.subscribe((snap) => {
          if (snap.matches({ sync: 'syncing' }) && snap.context.pending?.seq === seqs[2]) r2Started = true
        })
        const outcome = await waitFor(s.actor, (snap) => snap.matches({ sync: 'waitingForSpace' }) || (s.store.synced[product] ?? 0) >= 2, { timeout: WAIT_MS })
        watcher?.close()
        await filling
        if (!outcome.matches({ sync: 'waitingForSpace' })) {
          r['fitted after all']++
          continue
        }
        r['waited for space']++
        const hb = s.heartbeat()
        const reason = hb.stalled?.reason ?? ''
        if (/copy ran out of space/.test(outcome.context.lastError ?? '')) r['ran out mid-copy']++
        else r['refused before copying']++
        // Nothing half-written: every blob file verifies, no temporary file, r2 recorded nowhere.
        const problems: string[] = []
        // The store's layout marker, written with its first directory, is not a blob.
        const stored = (await filesUnder(join(dataDir, 'blobs'))).filter((f) => f !== FANOUT_MARKER)
        for (const f of stored) {
          if (f.startsWith('tmp/')) problems.push(`temporary blob file ${f} left`)
          else if ((await sha256Of(join(dataDir, 'blobs', f))) !== f.split('/').at(-1)) problems.push(`blob ${f} does not verify`)
        }
        const r1Blobs = new Set(blobsOf(s.store.release(product, 1)!.release.manifest).keys())
        if (stored.some((f) => !r1Blobs.has(f.split('/').at(-1)!))) r['whole blobs kept while waiting']++
        const tmpLeft = await readdir(join(dataDir, 'tmp')).catch(() => [])
        if (tmpLeft.length > 0) problems.push(`temporary files ${tmpLeft.join(', ')} left`)
        const onDisk = JSON.parse(await readFile(join(dataDir, 'state.json'), 'utf8')) as { synced: Record<string, number> }
        if (onDisk.synced[product] !== 1) problems.push(`state.json says r${onDisk.synced[product]}`)
        if (s.store.synced[product] !== 1 || hb.synced[product] !== 1) problems.push(`r2 counted as synced (store r${s.store.synced[product]}, heartbeat r${hb.synced[product]})`)
        if (s.store.revisions(product).some((v) => v.rev === 2)) problems.push('r2 served')
        if (problems.length > 0) {
          halfWritten++
          r['half-written']++
          figures.fail(`run ${run} (${mode}, ${leave} B left): ${problems.join('; ')}`)
        }
        // A clear error where operators look: the heartbeat (what `stats` shows) and an alert.
        // The stall goes out in a heartbeat at once; a proxy's pool (what `stats` answers) keeps it.
        const beat = await heartbeats.after(beatsBefore, (m) => m.json<Heartbeat>().stalled?.seq === seqs[2])
        const pool = new Pool()
        const verdict = beat ? await judgeHeartbeat(beat, new ReleaseCeiling(async () => 2)) : { dropped: 'no heartbeat with the stall' }
        if (!('dropped' in verdict)) pool.heartbeat(verdict.id, verdict.status)
        const stats = pool.view().find((v) => v.id === id)?.stalled
        pool.stop()
        if (/ENOSPC/.test(reason) && reason.includes(dataDir) && hb.stalled?.seq === seqs[2] && stats?.seq === seqs[2] && stats?.reason === hb.stalled?.reason) r['clear error']++
        else {
          unclear++
          figures.fail(`run ${run} (${mode}): unclear or missing stall in the heartbeat: ${reason || JSON.stringify(hb.stalled)}`)
        }
        const alert = await alerts.after(alertsBefore, (m) => m.json<{ type: string; seq: number }>().type === 'sync.no-space' && m.json<{ seq: number }>().seq === seqs[2])
        if (alert && /ENOSPC/.test(alert.json<{ reason: string }>().reason)) r['alert sent']++
        else figures.fail(`run ${run} (${mode}): no sync.no-space alert`)
        if (s.store.parked.length > 0) {
          parkedAny++
          r.parked++
          figures.fail(`run ${run} (${mode}): parked ${JSON.stringify(s.store.parked)}`)
        }
        // Space is freed: r2 syncs, whole and verified, and the stall is over.
        await rm(filler, { force: true })
        await waitFor(s.actor, () => (s.store.synced[product] ?? 0) >= 2, { timeout: WAIT_MS })
        const r2 = s.store.release(product, 2)!.release.manifest
        const wrong = []
        for (const sha of blobsOf(r2).keys()) {
          if ((await sha256Of(s.store.blobs.path(sha))) !== sha) wrong.push(sha)
        }
        if (wrong.length === 0 && s.heartbeat().stalled === undefined && s.store.parked.length === 0) r['r2 after freeing space']++
        else {
          notSynced++
          figures.fail(`run ${run} (${mode}): after freeing space: ${wrong.length} blobs wrong, stalled ${JSON.stringify(s.heartbeat().stalled)}`)
        }
      } catch (err) {
        figures.fail(`run ${run} (${mode}): ${(err as Error).message}`)
      } finally {
        watcher?.close()
        await server?.close()
        await rm(filler, { force: true })
      }
    }
    const runs = RUNS - 1
    const waited = rows.before['waited for space'] + rows.during['waited for space']
    const goals = await figures.finish({
      parameters: { runs, disk: DISK, r1Bytes: needR1, r2Bytes: needR2 },
      rows: Object.values(rows),
      goals: [
        zero('half-written stores (a blob that does not verify, a temporary file, r2 counted or served while waiting)', halfWritten, `of ${waited} that waited`),
        zero('unclear errors (no stall naming ENOSPC and the store in the heartbeat and in a proxy\'s stats)', unclear, `of ${waited}`),
        zero('releases parked for a full disk', parkedAny, `of ${waited}`),
        { goal: 'r2 synced once space is freed', met: notSynced === 0 && figures.failures.length === 0, detail: `${rows.before['r2 after freeing space'] + rows.during['r2 after freeing space']} of ${waited}` },
        { goal: 'the disk ran out in every run', met: waited === runs, detail: `${waited} of ${runs}` },
      ],
      notes: [
        'run 0 is the control: r1 and r2 synced on the empty disk, measuring what each takes; each later run leaves a random 0–90% of what r2 takes',
        '"disk too full at start": the filler is written before the server starts (r1 fits); "disk fills during the copy": it is written when the server starts writing the 1st–3rd blob of r2, after its free-space check passed',
      ],
    })
    expect(missed(goals)).toEqual([])
  })
})

interface Collected {
  readonly msgs: Msg[]
  /** The first message from index `from` on that `pred` accepts, waited for (bounded by WAIT_MS). */
  after(from: number, pred: (m: Msg) => boolean): Promise<Msg | undefined>
  stop(): void
}

/** Every message on `subject` from now on, kept in arrival order. */
function collect(nc: NatsConnection, subject: string): Collected {
  const msgs: Msg[] = []
  const waiters = new Set<() => void>()
  const sub = nc.subscribe(subject, {
    callback: (_err, m) => {
      msgs.push(m)
      for (const w of waiters) w()
    },
  })
  return {
    msgs,
    async after(from, pred) {
      const deadline = Date.now() + WAIT_MS
      for (;;) {
        const found = msgs.slice(from).find(pred)
        if (found || Date.now() > deadline) return found
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer)
            waiters.delete(done)
            resolve()
          }
          const timer = setTimeout(done, deadline - Date.now())
          waiters.add(done)
        })
      }
    },
    stop: () => sub.unsubscribe(),
  }
}
