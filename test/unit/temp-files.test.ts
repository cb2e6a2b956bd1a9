// Non-negotiable 4 (a killed process loses nothing) and R-UPDATE-3: a run's crash recovery clears
// the temporary files a dead writer left in the copy's temporary directories, and only those. The
// copy's other writers (the daemon's address book, trust and rollout stores, `status`) write
// there outside the run's lock, in this process or another one.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { holdTemp, tempName } from '../../infra/store/temp-files.ts'
import { writeFileAtomic } from '../../infra/store/working-copy/atomic.ts'
import { recoverWorkingCopy } from '../../infra/store/working-copy/journal.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { tempDir } from '../helpers/cluster.ts'

let tmp: { path: string; cleanup: () => Promise<void> }
beforeEach(async () => { tmp = await tempDir('upswarm-temp-files-') })
afterEach(async () => tmp?.cleanup())

const noStep = (): void => undefined

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' })
  await once(child, 'exit')
  return child.pid!
}

describe('temporary files and crash recovery', () => {
  it('recovery removes the files of dead writers and of old names, and keeps those being written here or by a live process', async () => {
    const layout = layoutOf(tmp.path)
    const historyTmp = join(tmp.path, 'history-tmp')
    await mkdir(layout.tmp, { recursive: true })
    await mkdir(historyTmp, { recursive: true })
    const held = holdTemp(layout.tmp)
    const stamp = `${Date.now()}-0123456789ab`
    const files = {
      held: held.path,
      liveOther: join(layout.tmp, `${process.ppid}-${stamp}`),
      dead: join(layout.tmp, `${await deadPid()}-${stamp}`),
      mineNotHeld: tempName(layout.tmp),
      oldName: join(layout.tmp, `${Date.now()}-0123456789ab`),
      historyDead: join(historyTmp, `${await deadPid()}-${stamp}`),
    }
    for (const f of Object.values(files)) await writeFile(f, 'x')

    expect(await recoverWorkingCopy(layout, noStep, historyTmp)).toBe('none')
    expect((await readdir(layout.tmp)).sort()).toEqual([basename(files.held), basename(files.liveOther)].sort())
    expect(await readdir(historyTmp)).toEqual([])

    held.release()
    await recoverWorkingCopy(layout, noStep, historyTmp)
    expect(await readdir(layout.tmp)).toEqual([basename(files.liveOther)])
  })

  it('a write outside the run\'s lock that overlaps the run\'s recovery lands whole, every time', async () => {
    const layout = layoutOf(tmp.path)
    const historyTmp = join(tmp.path, 'history-tmp')
    const data = Buffer.alloc(1 << 20, 7)
    for (let i = 0; i < 20; i++) {
      const target = join(tmp.path, `store-${i}.json`)
      await Promise.all([writeFileAtomic(target, data, layout.tmp), recoverWorkingCopy(layout, noStep, historyTmp)])
      expect((await readFile(target)).equals(data)).toBe(true)
    }
    expect(await readdir(layout.tmp)).toEqual([])
  })
})
