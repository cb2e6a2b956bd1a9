// Issue 13 item 4: a directory the run makes where nothing was (`owned`) gets its new files
// written straight into it; undoing the journal removes it with all it holds, while a plain
// mkdir is only removed when empty. A journal with owned directories is format 2, which a client
// that does not know them refuses rather than undoing by halves.
import { statSync } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { newJournal, readJournal, runJournal, undoJournal, writeJournal } from '../../infra/store/working-copy/journal.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { tempDir } from '../helpers/cluster.ts'

let tmp: { path: string; cleanup: () => Promise<void> }
beforeEach(async () => { tmp = await tempDir('upswarm-journal-owned-') })
afterEach(async () => tmp?.cleanup())

const noStep = (): void => undefined

describe('apply journal — owned directories', () => {
  it('is format 2 only with an owned directory, and reads back as written', async () => {
    const layout = layoutOf(tmp.path)
    await mkdir(layout.tmp, { recursive: true })
    expect(newJournal(0, 1, [{ op: 'mkdir', path: 'plain', mode: 0o755 }]).format).toBe(1)
    const journal = newJournal(0, 1, [{ op: 'mkdir', path: 'new', mode: 0o750, owned: true }])
    expect(journal.format).toBe(2)
    await writeJournal(layout, journal, noStep)
    expect(await readJournal(layout)).toEqual(journal)
    expect(JSON.parse(await readFile(layout.journal, 'utf8'))).toMatchObject({ format: 2, ops: [{ op: 'mkdir', path: 'new', owned: true }] })
  })

  it('run gives the owned directory its mode; undo removes it with the files written into it, and is a no-op run again', async () => {
    const layout = layoutOf(tmp.path)
    await mkdir(layout.tmp, { recursive: true })
    const journal = newJournal(0, 1, [
      { op: 'mkdir', path: 'plain', mode: 0o755 },
      { op: 'mkdir', path: 'new', mode: 0o750, owned: true },
      { op: 'mkdir', path: 'new/deep', mode: 0o755, owned: true },
    ])
    // As the download phase does: the owned directories made first, files written in place.
    await mkdir(join(tmp.path, 'new/deep'), { recursive: true, mode: 0o700 })
    await writeFile(join(tmp.path, 'new/deep/a.txt'), 'a')
    await writeFile(join(tmp.path, 'new/b.txt'), 'b')
    await runJournal(layout, journal, noStep)
    expect(statSync(join(tmp.path, 'new')).mode & 0o777).toBe(0o750)
    // The user puts a file of their own into the plain directory: undo leaves it (and its directory).
    await writeFile(join(tmp.path, 'plain/mine.txt'), 'mine')
    await undoJournal(layout, journal, noStep)
    expect((await readdir(tmp.path)).sort()).toEqual(['.upswarm', 'plain'])
    expect(await readFile(join(tmp.path, 'plain/mine.txt'), 'utf8')).toBe('mine')
    await undoJournal(layout, journal, noStep)
    expect((await readdir(tmp.path)).sort()).toEqual(['.upswarm', 'plain'])
  })
})
