// The CLI's start-up (issues 13 and 15): bin/upswarm.cjs compiles the one-file build with V8's code
// cache, one per command. A copy of the build runs here in a directory of its own: the first run
// of a command writes its cache, the next one uses it, another command has its own, and a damaged
// cache is refused by V8 and written anew, with the same output every time.
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { tempDir } from '../helpers/cluster.ts'
import { runNode } from '../helpers/node-run.ts'

describe('start-up — the code cache', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let cli: string
  const cacheOf = (command: string, build = 'upswarm.cjs'): string => join(tmp.path, 'dist', `${build}.${command}.cache`)
  const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_TIMINGS: '1' }
  delete env.UPSWARM_NATS
  delete env.UPSWARM_CODE_CACHE

  beforeAll(async () => {
    tmp = await tempDir('upswarm-code-cache-')
    for (const d of ['bin', 'dist']) await mkdir(join(tmp.path, d))
    for (const f of ['bin/upswarm.cjs', 'bin/upswarm.mjs', 'dist/upswarm.cjs', 'dist/upswarm.cjs.map', 'dist/status.cjs', 'dist/status.cjs.map', 'package.json']) await copyFile(join(PROJECT_ROOT, f), join(tmp.path, f))
    await symlink(join(PROJECT_ROOT, 'node_modules'), join(tmp.path, 'node_modules'))
    cli = join(tmp.path, 'bin', 'upswarm.cjs')
  })
  afterAll(async () => tmp?.cleanup())

  const run = async (args: string[]) => {
    const r = await runNode([cli, ...args], env)
    return { ...r, cache: /upswarm timings: code cache (\w+)/.exec(r.stderr)?.[1] }
  }

  it('start-up — the first run of a command writes its cache, the next uses it, another command has its own, a damaged cache is rewritten', async () => {
    const first = await run(['help'])
    expect(first).toMatchObject({ code: 0, cache: 'none' })
    expect(first.stdout).toMatch(/^Usage: upswarm/m)
    const helpCache = await readFile(cacheOf('help'))
    expect(helpCache.length).toBeGreaterThan(100_000)

    const second = await run(['help'])
    expect(second).toMatchObject({ code: 0, cache: 'used', stdout: first.stdout })
    expect((await readFile(cacheOf('help'))).equals(helpCache)).toBe(true)

    // Another command: a cache of its own, the help cache untouched. `status --offline` runs
    // from its own build (dist/status.cjs), with a cache of that build.
    const none = join(tmp.path, 'none')
    const status = await run(['status', none, '--offline'])
    expect(status).toMatchObject({ code: 1, cache: 'none' })
    expect(status.stderr).toContain(`${none} is not an upswarm working copy`)
    expect((await readFile(cacheOf('status', 'status.cjs'))).length).toBeGreaterThan(20_000)
    expect((await run(['status', none, '--offline'])).cache).toBe('used')
    await expect(readFile(cacheOf('status'))).rejects.toMatchObject({ code: 'ENOENT' })
    expect((await readFile(cacheOf('help'))).equals(helpCache)).toBe(true)

    // Damaged: V8 refuses it, the command runs as before, and the cache is made again.
    await writeFile(cacheOf('help'), Buffer.alloc(helpCache.length, 7))
    const damaged = await run(['help'])
    expect(damaged).toMatchObject({ code: 0, cache: 'rejected', stdout: first.stdout })
    expect((await run(['help'])).cache).toBe('used')
  })

  it('start-up — the builds are ASCII, so the entry reads them as latin1 without changing a character', async () => {
    for (const build of ['upswarm.cjs', 'status.cjs']) {
      const bytes = await readFile(join(tmp.path, 'dist', build))
      expect(bytes.findIndex((b) => b > 0x7f), build).toBe(-1)
    }
  })

  it('start-up — bin/upswarm.mjs, the entry of earlier releases (service units name it), runs the same CLI', async () => {
    const version = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')).version as string
    const old = await runNode([join(tmp.path, 'bin', 'upswarm.mjs'), '--version'], env)
    expect(old).toMatchObject({ code: 0, stdout: `${version}\n` })
    const help = await runNode([join(tmp.path, 'bin', 'upswarm.mjs'), 'help'], env)
    expect(help.code).toBe(0)
    expect(help.stdout).toBe((await run(['help'])).stdout)
  })
})
