// Issue 13 item 1: the short commands start within 1.5× of `node -e 0` (bench/startup.ts measures
// it) because they load only what they use. This guards the structure, not the time: each command
// runs from the build with a loader hook logging every module it loads (test/helpers/load-log.mjs),
// and the build's metafile (dist/meta.json) says which chunks hold zod, xstate or the NATS client.
import { randomUUID } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init } from '../../actors/updater/index.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { fastStatus } from '../../actors/cli/dispatch.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree } from '../helpers/local-publish.ts'
import { runNode } from '../helpers/node-run.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.mjs')
const LOAD_LOG = join(PROJECT_ROOT, 'test', 'helpers', 'load-log.mjs')
/** Packages a short command must not load: validation, statecharts, the NATS client. */
const HEAVY = /node_modules\/(zod|xstate|@nats-io)\//

interface Metafile { outputs: Record<string, { inputs: Record<string, unknown> }> }

describe('start-up — short commands load no zod, xstate or NATS', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let wc: string
  let heavyChunks: string[]
  let meta: Metafile
  const urlOf = (out: string) => pathToFileURL(join(PROJECT_ROOT, out)).href

  beforeAll(async () => {
    tmp = await tempDir('upswarm-startup-modules-')
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 'src'), { 'a.txt': 'alpha', 'b.txt': 'beta', 'd/c.txt': 'gamma' })
    await publishLocal(repo, { key, product, src: join(tmp.path, 'src') })
    wc = join(tmp.path, 'wc')
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source: new DirectorySource(repo) })
    meta = JSON.parse(await readFile(join(PROJECT_ROOT, 'dist', 'meta.json'), 'utf8')) as Metafile
    heavyChunks = Object.entries(meta.outputs).filter(([out, o]) => out.endsWith('.js') && Object.keys(o.inputs).some((i) => HEAVY.test(i))).map(([out]) => out)
  })
  afterAll(async () => tmp?.cleanup())

  /** Runs the CLI with the loader hook; returns its result and the URLs of the modules it loaded. */
  async function loading(name: string, args: string[]) {
    const log = join(tmp.path, `${name}.loaded`)
    await rm(log, { force: true })
    const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_LOAD_LOG: log }
    delete env.UPSWARM_NATS
    const r = await runNode(['--import', pathToFileURL(LOAD_LOG).href, CLI, ...args], env)
    const loaded = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean)
    return { r, loaded, heavy: [...loaded.filter((u) => HEAVY.test(u)), ...heavyChunks.map(urlOf).filter((u) => loaded.includes(u))] }
  }

  it('start-up — the metafile finds zod, xstate and the NATS client in chunks of the build', () => {
    // (Otherwise the checks below would pass for want of anything to find.)
    expect(heavyChunks.length).toBeGreaterThan(2)
  })

  it('start-up — `upswarm --version` prints the version from package.json and loads nothing of the build', async () => {
    const { version } = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
    const { r, loaded } = await loading('version', ['--version'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`${version}\n`)
    expect(loaded.filter((u) => u.includes('/dist/'))).toEqual([])
  })

  it('start-up — `upswarm help` lists the commands and loads no zod, xstate or NATS', async () => {
    const { r, heavy } = await loading('help', ['help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: upswarm/m)
    for (const cmd of ['init', 'status', 'update', 'publish', 'daemon']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'))
    expect(heavy).toEqual([])
  })

  it('start-up — `upswarm status --offline` of a small unchanged copy reports every path current and loads no zod, xstate, NATS or commander', async () => {
    const { r, loaded, heavy } = await loading('status', ['status', wc, '--offline'])
    const commanderChunks = Object.entries(meta.outputs).filter(([out, o]) => out.endsWith('.js') && Object.keys(o.inputs).some((i) => i.includes('node_modules/commander/'))).map(([out]) => urlOf(out))
    expect(commanderChunks.length).toBeGreaterThan(0)
    expect(loaded.filter((u) => commanderChunks.includes(u))).toEqual([])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    // a.txt, b.txt, d and d/c.txt; nothing else listed.
    expect(r.stdout.trim().split('\n').slice(1)).toEqual(['4 current'])
    expect(loaded.some((u) => u.includes('/dist/chunks/'))).toBe(true)
    expect(heavy).toEqual([])
  })

  it('start-up — the fast path of `status --offline` prints and exits as the full command line does, on a copy and on a directory that is none', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.UPSWARM_NATS
    for (const args of [['status', wc, '--offline'], ['status', '--json', wc, '--offline'], ['status', join(tmp.path, 'none'), '--offline'], ['status', join(tmp.path, 'none'), '--offline', '--json']]) {
      expect(fastStatus(args)).toBeDefined()
      const viaTable = await runNode([CLI, ...args], env)
      // A flag the table does not know sends the same command through commander.
      const viaCommander = await runNode([CLI, ...args, '--nats', 'nats://127.0.0.1:1'], env)
      expect(fastStatus([...args, '--nats', 'nats://127.0.0.1:1'])).toBeUndefined()
      expect(viaTable).toEqual(viaCommander)
    }
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
