// The CLI's start-up (issues 13 and 15): bin/upswarm.mjs compiles the one-file build with V8's code
// cache. A copy of the build runs here in a directory of its own: the first run writes the cache,
// the next one uses it, a new command adds its code, and a damaged cache is refused by V8 and
// written anew, with the same output every time.
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { tempDir } from '../helpers/cluster.ts'
import { runNode } from '../helpers/node-run.ts'

describe('start-up — the code cache', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let cli: string
  let cache: string
  const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_TIMINGS: '1' }
  delete env.UPSWARM_NATS
  delete env.UPSWARM_CODE_CACHE

  beforeAll(async () => {
    tmp = await tempDir('upswarm-code-cache-')
    for (const d of ['bin', 'dist']) await mkdir(join(tmp.path, d))
    for (const f of ['bin/upswarm.mjs', 'dist/upswarm.cjs', 'dist/upswarm.cjs.map', 'package.json']) await copyFile(join(PROJECT_ROOT, f), join(tmp.path, f))
    await symlink(join(PROJECT_ROOT, 'node_modules'), join(tmp.path, 'node_modules'))
    cli = join(tmp.path, 'bin', 'upswarm.mjs')
    cache = join(tmp.path, 'dist', 'upswarm.cjs.cache')
  })
  afterAll(async () => tmp?.cleanup())

  const run = async (args: string[]) => {
    const r = await runNode([cli, ...args], env)
    return { ...r, cache: /upswarm timings: code cache (\w+)/.exec(r.stderr)?.[1] }
  }
  const commands = async () => (await readFile(`${cache}.commands`, 'utf8')).split('\n').filter(Boolean)

  it('start-up — the first run writes the cache, the next uses it, each new command adds its code, a damaged cache is rewritten', async () => {
    const first = await run(['help'])
    expect(first).toMatchObject({ code: 0, cache: 'none' })
    expect(first.stdout).toMatch(/^Usage: upswarm/m)
    expect((await readFile(cache)).length).toBeGreaterThan(100_000)
    expect(await commands()).toEqual(['help'])

    const second = await run(['help'])
    expect(second).toMatchObject({ code: 0, cache: 'used', stdout: first.stdout })
    expect(await commands()).toEqual(['help'])

    // Another command: used for what it shares, then written again with its own code.
    const none = join(tmp.path, 'none')
    const status = await run(['status', none, '--offline'])
    expect(status).toMatchObject({ code: 1, cache: 'used' })
    expect(status.stderr).toContain(`${none} is not an upswarm working copy`)
    expect(await commands()).toEqual(['help', 'status'])
    const sizeWithStatus = (await readFile(cache)).length

    // Damaged: V8 refuses it, the command runs as before, and the cache is made again.
    await writeFile(cache, Buffer.alloc(sizeWithStatus, 7))
    const damaged = await run(['help'])
    expect(damaged).toMatchObject({ code: 0, cache: 'rejected', stdout: first.stdout })
    expect(await commands()).toEqual(['help'])
    expect((await run(['help'])).cache).toBe('used')
  })
})
