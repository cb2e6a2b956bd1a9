// Issue 13 item 1: the short commands start within 1.5× of `node -e 0` (bench/startup.ts measures
// it) because they run only what they use. This guards the structure, not the time: each command
// runs from the build under V8's coverage, and every function that ran is traced back to its source
// module through the bundle's source map (test/helpers/executed-modules.ts).
import { randomUUID } from 'node:crypto'
import { cp, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, update } from '../../actors/updater/index.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { fastStatus } from '../../actors/cli/dispatch.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { CLI, runCounted } from '../helpers/executed-modules.ts'
import { publishLocal, writeTree } from '../helpers/local-publish.ts'
import { runNode } from '../helpers/node-run.ts'

/** Packages a short command must not run: validation, statecharts, the NATS client. */
const HEAVY = /^node_modules\/(zod|xstate|@nats-io)\//

describe('start-up — short commands run no zod, xstate or NATS', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let wc: string
  let repo: string
  const key = generatePublisherKey()
  const product = randomUUID()

  beforeAll(async () => {
    tmp = await tempDir('upswarm-startup-modules-')
    repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 'src'), { 'a.txt': 'alpha', 'b.txt': 'beta', 'd/c.txt': 'gamma' })
    await publishLocal(repo, { key, product, src: join(tmp.path, 'src') })
    wc = join(tmp.path, 'wc')
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source: new DirectorySource(repo) })
    // r2 for the rollback below (wc stays at r1).
    await writeTree(join(tmp.path, 'src'), { 'a.txt': 'alpha, r2' })
    await publishLocal(repo, { key, product, src: join(tmp.path, 'src') })
  })
  afterAll(async () => tmp?.cleanup())

  /** Runs the CLI under coverage; returns its result, the source modules it ran, and those of them that are heavy. */
  async function running(args: string[]) {
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.UPSWARM_NATS
    const { r, ran, bundleRan, builds } = await runCounted(args, env)
    return { r, ran, bundleRan, builds, heavy: [...ran].filter((m) => HEAVY.test(m)) }
  }

  it('start-up — the coverage finds xstate and the NATS client in commands that use them', async () => {
    // (Otherwise the checks below would pass for want of anything to find.) `update` with an
    // unreachable server dials (NATS); a rollback from local history runs the update-run statechart.
    const dial = await running(['update', wc, '--nats', 'nats://127.0.0.1:1'])
    expect(dial.r.code).not.toBe(0)
    expect(dial.heavy.some((m) => m.startsWith('node_modules/@nats-io/'))).toBe(true)
    const other = join(tmp.path, 'wc-rollback')
    await init(other, { product, publicKey: key.publicKey, rev: 1, source: new DirectorySource(repo) })
    await update(other, { source: new DirectorySource(repo) })
    const back = await running(['rollback', other, '--rev', '1'])
    expect(back.r.code).toBe(0)
    expect(back.heavy.some((m) => m.startsWith('node_modules/xstate/'))).toBe(true)
    expect(back.ran.has('machines/update-run.machine.ts')).toBe(true)
  })

  it('start-up — `upswarm --version` prints the version from package.json and runs nothing of the build', async () => {
    const { version } = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
    const { r, bundleRan } = await running(['--version'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`${version}\n`)
    expect(bundleRan).toBe(false)
  })

  it('start-up — `upswarm help` lists the commands and runs no zod, xstate or NATS', async () => {
    const { r, heavy, ran } = await running(['help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: upswarm/m)
    for (const cmd of ['init', 'status', 'update', 'publish', 'daemon']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'))
    expect([...ran].some((m) => m.startsWith('node_modules/commander/'))).toBe(true)
    expect(heavy).toEqual([])
  })

  it('start-up — `upswarm status --offline` of a small unchanged copy reports every path current from its own build and runs no zod, xstate, NATS or commander', async () => {
    const { r, ran, heavy, builds } = await running(['status', wc, '--offline'])
    expect(builds).toEqual(['status.cjs'])
    expect([...ran].filter((m) => m.startsWith('node_modules/commander/'))).toEqual([])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    // a.txt, b.txt, d and d/c.txt; nothing else listed.
    expect(r.stdout.trim().split('\n').slice(1)).toEqual(['4 current'])
    expect(ran.has('actors/updater/status.ts')).toBe(true)
    expect(heavy).toEqual([])
  })

  it('start-up — `upswarm status --offline` of an unchanged copy loads no node:crypto (it hashes nothing; loading it was 13 ms of a start)', async () => {
    // node's own list of the builtins it loaded, written at exit by a script run first (-r).
    const listed = join(tmp.path, 'builtins.txt')
    const preload = join(tmp.path, 'list-builtins.cjs')
    await writeFile(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(listed)}, process.moduleLoadList.join('\\n')))\n`)
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.UPSWARM_NATS
    // The first status after an install writes the stat index (which hashes versions); the no-op is the next.
    expect((await runNode([CLI, 'status', wc, '--offline'], env)).code).toBe(0)
    const r = await runNode(['-r', preload, CLI, 'status', wc, '--offline'], env)
    expect(r).toMatchObject({ code: 0, stderr: '' })
    const builtins = (await readFile(listed, 'utf8')).split('\n')
    // (The list is node's: it names the modules the command did load.)
    expect(builtins).toContain('NativeModule vm')
    expect(builtins.filter((m) => /^NativeModule (crypto|internal\/crypto\/)/.test(m))).toEqual([])
  })

  it('start-up — the fast path of `status --offline` prints and exits as the full command line does, on a copy and on a directory that is none', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.UPSWARM_NATS
    for (const args of [['status', wc, '--offline'], ['status', '--json', wc, '--offline'], ['status', join(tmp.path, 'none'), '--offline'], ['status', join(tmp.path, 'none'), '--offline', '--json']]) {
      expect(fastStatus(args)).toBeDefined()
      const viaTable = await runNode([CLI, ...args], env)
      // A flag the table does not know sends the same command through commander (the status
      // build hands it to the whole build).
      const viaCommander = await runNode([CLI, ...args, '--nats', 'nats://127.0.0.1:1'], env)
      expect(fastStatus([...args, '--nats', 'nats://127.0.0.1:1'])).toBeUndefined()
      expect(viaTable).toEqual(viaCommander)
    }
  })

  it('start-up — the build carries zod\'s English messages only, and a malformed config is still reported in words', async () => {
    const meta = JSON.parse(await readFile(join(PROJECT_ROOT, 'dist', 'meta.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> }
    const bundled = Object.keys(meta.outputs[join('dist', 'upswarm.cjs')]!.inputs).filter((m) => m.includes('zod/v4/locales/'))
    expect(bundled.sort()).toEqual(['node_modules/zod/v4/locales/en.js', 'node_modules/zod/v4/locales/index.js'])
    expect(Object.keys(meta.outputs[join('dist', 'status.cjs')]!.inputs).filter((m) => m.startsWith('node_modules/zod/'))).toEqual([])
    const broken = join(tmp.path, 'broken')
    await cp(wc, broken, { recursive: true })
    const configFile = join(broken, '.upswarm', 'config.json')
    await writeFile(configFile, JSON.stringify({ ...JSON.parse(await readFile(configFile, 'utf8')), historyDepth: 'lots' }))
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.UPSWARM_NATS
    const { r, ran, builds } = await runCounted(['status', broken, '--offline'], env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`working copy config ${configFile} is malformed at historyDepth: Invalid input: expected number, received string`)
    // The status build leaves zod in node_modules, and the coverage sees it run there (so the
    // checks above that find no zod in a no-op status would find one that ran).
    expect(builds).toEqual(['status.cjs'])
    expect([...ran].some((m) => HEAVY.test(m) && m.startsWith('node_modules/zod/'))).toBe(true)
  })

  it('start-up — the dispatch table takes only `status DIR --offline [--json]`', () => {
    expect(fastStatus(['status', 'w', '--offline'])).toEqual({ dir: 'w', json: false })
    expect(fastStatus(['status', '--json', '--offline', 'w'])).toEqual({ dir: 'w', json: true })
    for (const args of [['status', 'w'], ['status', '--offline'], ['status', 'w', 'x', '--offline'], ['status', 'w', '--offline', '--help'], ['status', 'w', '--offline', '--offline'],
      ['status', 'w', '--offline', '-h'], ['update', 'w', '--offline'], ['status', '', '--offline'], ['status', 'w', '--offline', '--nats=x']]) {
      expect(fastStatus(args), args.join(' ')).toBeUndefined()
    }
  })
})
