// Issue 13 item 2 through the command line: `upswarm monitor DIR` says READY with its socket,
// `upswarm status --json` then says the monitor answered (a no-op reads no index and lstats
// nothing; a new file is reported), SIGTERM stops it and removes the socket, and status without
// it walks again and says why.
import { execFile, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init } from '../../actors/updater/index.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const run = promisify(execFile)
const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

async function statusJson(dir: string): Promise<{ monitor: string; files: { path: string; status: string }[] }> {
  const { stdout } = await run(process.execPath, [CLI, 'status', dir, '--offline', '--json'])
  return JSON.parse(stdout)
}

describe('upswarm monitor (CLI)', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let wc: string

  beforeAll(async () => {
    tmp = await tempDir('upswarm-monitor-cli-')
    const key = generatePublisherKey()
    const product = randomUUID()
    const spec: TreeSpec = {}
    for (let i = 0; i < 50; i++) spec[`d${i % 5}/f${i}.txt`] = `file ${i}\n`
    await writeTree(join(tmp.path, 'src'), spec)
    await publishLocal(join(tmp.path, 'repo'), { key, product, src: join(tmp.path, 'src') })
    wc = join(tmp.path, 'wc')
    await init(wc, { product, publicKey: key.publicKey, source: new DirectorySource(join(tmp.path, 'repo')) })
  }, 120_000)
  afterAll(async () => tmp?.cleanup())

  it('monitor — READY with its socket; status uses it and reports a new file; SIGTERM removes the socket and status walks again', async () => {
    const child = spawn(process.execPath, [CLI, 'monitor', wc], { stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    try {
      const lines = createInterface({ input: child.stdout })
      const [line] = await Promise.race([once(lines, 'line') as Promise<[string]>, exited.then(() => { throw new Error('the monitor exited before READY') })])
      expect(line.startsWith('READY ')).toBe(true)
      const ready = JSON.parse(line.slice(6))
      expect(ready).toMatchObject({ role: 'monitor', socket: join(wc, '.upswarm', 'monitor.sock'), directories: 6 })
      // The first status records the monitor's token; the second is answered by it.
      await statusJson(wc)
      expect((await statusJson(wc)).monitor).toBe('changes')
      await writeFile(join(wc, 'd2', 'new.txt'), 'new\n')
      const after = await statusJson(wc)
      expect(after.monitor).toBe('changes')
      expect(after.files.filter((f) => f.status !== 'current')).toEqual([{ path: 'd2/new.txt', status: 'unversioned' }])
      child.kill('SIGTERM')
      expect(await exited).toEqual([0, null])
      expect(existsSync(ready.socket)).toBe(false)
      expect((await statusJson(wc)).monitor).toBe('no monitor runs')
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })
})
