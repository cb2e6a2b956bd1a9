// Fault suite, disk full (issue 11; item 8 "a clear error, nothing half-written"): the working
// copy lives on a small tmpfs (mount -t tmpfs, root only; skipped elsewhere), filled so that
// r2 does not fit — each run leaves a different amount free, so the disk runs out at a different
// step (download, staging, journal, history, state). The update must fail with an UpswarmError
// naming ENOSPC or the space, leave exactly r1 with nothing half-written, and succeed once the
// space is freed; `status` answers on the full disk. Full: 30 runs and a control; short: 2 and the control.
// Disk full during a server's sync: disk-full-server-sync.test.ts.
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, statfs, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, status, update } from '../../actors/updater/index.ts'
import { isUpswarmError } from '../../infra/errors.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { readState } from '../../infra/store/working-copy/meta.ts'
import { tempDir } from '../helpers/cluster.ts'
import { leftovers } from '../helpers/crash-fixture.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, snapshotTree, writeTree } from '../helpers/local-publish.ts'
import { canMountTmpfs } from '../helpers/tmpfs.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const RUNS = sized(3, 31)
const DISK = '8m'

const CAN_MOUNT = canMountTmpfs()

describe('faults — disk full during an update', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let disk = ''
  let repo: string
  const key = generatePublisherKey()
  const product = randomUUID()
  const trees: Record<number, Record<string, string>> = {}

  beforeAll(async () => {
    if (!CAN_MOUNT) return
    tmp = await tempDir('upswarm-faults-disk-')
    repo = join(tmp.path, 'repo')
    const big = (n: number, seed: string): string => Array.from({ length: n }, (_, i) => `${seed} line ${i} ${'x'.repeat(60)}\n`).join('')
    await writeTree(join(tmp.path, 's1'), { 'a.txt': 'a1\n', 'lib/one.bin': big(2_000, 'one-r1') })
    await writeTree(join(tmp.path, 's2'), { 'a.txt': 'a2\n', 'lib/one.bin': big(3_000, 'one-r2'), 'lib/two.bin': big(6_000, 'two'), 'lib/deep/three.bin': big(4_000, 'three') })
    for (const rev of [1, 2]) {
      await publishLocal(repo, { key, product, src: join(tmp.path, `s${rev}`) })
      trees[rev] = await snapshotTree(join(tmp.path, `s${rev}`))
    }
    disk = await mkdtemp(join(tmpdir(), 'upswarm-faults-small-disk-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${DISK}`, 'tmpfs', disk])
  })
  afterAll(async () => {
    if (disk) {
      execFileSync('umount', [disk])
      await rm(disk, { recursive: true, force: true })
    }
    await tmp?.cleanup()
  })

  it.skipIf(!CAN_MOUNT)('faults — a full disk: a clear error, exactly r1, then success once space is freed', { timeout: sized(60_000, 600_000) }, async () => {
    const figures = new FaultFigures('faults-disk-full', `Disk full: updates into a ${DISK} tmpfs left with little free space`)
    const rnd = random()
    const outcomes = { failedClearly: 0, fitted: 0, unclear: 0, halfWritten: 0, succeededAfter: 0 }
    const codes = new Map<string, number>()
    const statusOnFull = new Map<string, number>()
    let needBytes = 0
    for (let run = 0; run < RUNS; run++) {
      figures.runs++
      const wc = join(disk, 'wc')
      const filler = join(disk, 'filler')
      try {
        const source = new DirectorySource(repo)
        await init(wc, { product, publicKey: key.publicKey, rev: 1, source })
        // How much r2 takes, measured by the first run on a disk with room (it is the control).
        const free = async (): Promise<number> => { const s = await statfs(disk); return s.bavail * s.bsize }
        if (run === 0) {
          const before = await free()
          await update(wc, { source, alerts: new RecordingAlerts() })
          needBytes = before - (await free())
          expect(await snapshotTree(wc)).toEqual(trees[2])
          await rm(wc, { recursive: true })
          continue
        }
        // Leave between 0 and 90% of what the update needs.
        const leave = Math.floor(rnd() * 0.9 * needBytes)
        await writeFile(filler, Buffer.alloc(Math.max(0, (await free()) - leave)))
        const err = await update(wc, { source, alerts: new RecordingAlerts() }).then(() => undefined, (e: unknown) => e)
        if (err === undefined) {
          outcomes.fitted++
        } else {
          const code = isUpswarmError(err) ? err.code : 'not an UpswarmError'
          codes.set(code, (codes.get(code) ?? 0) + 1)
          if (isUpswarmError(err) && /ENOSPC|space/i.test((err as Error).message)) outcomes.failedClearly++
          else {
            outcomes.unclear++
            figures.fail(`run ${run} (${leave} B free): unclear error ${code}: ${(err as Error).message}`)
          }
          const problems = [
            ...(JSON.stringify(await snapshotTree(wc)) === JSON.stringify(trees[1]) ? [] : ['the tree is not r1']),
            ...((await readState(layoutOf(wc))).current === 1 ? [] : ['the state is not r1']),
            ...(await leftovers(wc)),
          ]
          // The user can still ask what state the copy is in: `status` is read-only and answers on a full disk.
          const st = await status(wc).then((r) => (r.rev === 1 ? 'ok' : `r${r.rev}`), (e: unknown) => `${isUpswarmError(e) ? e.code : 'error'}${/ENOSPC/.test((e as Error).message) ? ' (ENOSPC)' : ''}`)
          statusOnFull.set(st, (statusOnFull.get(st) ?? 0) + 1)
          if (st !== 'ok') figures.fail(`run ${run} (${leave} B free): status on the full disk: ${st}`)
          if (problems.length) {
            outcomes.halfWritten++
            figures.fail(`run ${run} (${leave} B free): ${problems.join('; ')}`)
          }
        }
        await rm(filler, { force: true })
        await update(wc, { source, alerts: new RecordingAlerts() })
        if (JSON.stringify(await snapshotTree(wc)) === JSON.stringify(trees[2]) && (await leftovers(wc)).length === 0) outcomes.succeededAfter++
        else figures.fail(`run ${run}: the update after freeing space did not leave exactly r2`)
      } catch (err) {
        figures.fail(`run ${run}: ${(err as Error).message}`)
      } finally {
        await rm(filler, { force: true })
        await rm(wc, { recursive: true, force: true })
      }
    }
    const runs = RUNS - 1
    const goals = await figures.finish({
      parameters: { runs, disk: DISK, updateNeedsBytes: needBytes },
      rows: [{
        runs, 'failed with a clear error': outcomes.failedClearly, 'fitted after all': outcomes.fitted, 'unclear error': outcomes.unclear,
        'half-written': outcomes.halfWritten, 'r2 after freeing space': outcomes.succeededAfter, codes: [...codes].map(([c, n]) => `${c} ×${n}`).join(', '),
        'status on the full disk': [...statusOnFull].map(([c, n]) => `${c} ×${n}`).join(', '),
      }],
      goals: [
        zero('half-written working copies', outcomes.halfWritten, `of ${runs}`),
        zero('unclear errors', outcomes.unclear, `of ${runs}`),
        { goal: 'success once space is freed', met: outcomes.succeededAfter === runs, detail: `${outcomes.succeededAfter} of ${runs}` },
        { goal: 'status answers at r1 on the full disk', met: (statusOnFull.get('ok') ?? 0) === runs - outcomes.fitted, detail: [...statusOnFull].map(([c, n]) => `${c} ×${n}`).join(', ') || 'none' },
      ],
      notes: ['run 0 is the control: r2 installed on the empty disk, measuring what it takes; each later run leaves a random 0–90% of that free'],
    })
    expect(missed(goals)).toEqual([])
  })
})
