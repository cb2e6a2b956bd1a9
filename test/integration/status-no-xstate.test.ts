// Issue 12 item 2, issue 13: `upswarm status --offline` classifies through the table compiled from
// the file-status statechart, so the compiled CLI loads no xstate for it. The command runs with a
// loader hook that logs every module it loads; the build's metafile (dist/meta.json) says which
// chunks of dist/ hold xstate or a statechart.
import { randomUUID } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init } from '../../actors/updater/index.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree } from '../helpers/local-publish.ts'
import { runNode } from '../helpers/node-run.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.mjs')
const LOAD_LOG = join(PROJECT_ROOT, 'test', 'helpers', 'load-log.mjs')

interface Metafile { outputs: Record<string, { entryPoint?: string; inputs: Record<string, unknown>; imports: { path: string; kind: string }[] }> }

describe('status — a short command', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let wc: string
  beforeAll(async () => {
    tmp = await tempDir('upswarm-status-no-xstate-')
    const key = generatePublisherKey()
    const product = randomUUID()
    const repo = join(tmp.path, 'repo')
    await writeTree(join(tmp.path, 'src'), { 'a.txt': 'alpha', 'b.txt': 'beta', 'd/c.txt': 'gamma' })
    await publishLocal(repo, { key, product, src: join(tmp.path, 'src') })
    wc = join(tmp.path, 'wc')
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source: new DirectorySource(repo) })
    await writeFile(join(wc, 'b.txt'), 'changed by hand')
  })
  afterAll(async () => tmp?.cleanup())

  it('status — `upswarm status --offline` of a small working copy classifies every path and loads no xstate', async () => {
    const log = join(tmp.path, 'loaded.txt')
    const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_LOAD_LOG: log }
    delete env.UPSWARM_NATS
    const r = await runNode(['--import', pathToFileURL(LOAD_LOG).href, CLI, 'status', wc, '--offline'], env)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^modified\s+b\.txt$/m)
    expect(r.stdout).toMatch(/^3 current$/m)

    const loaded = new Set((await readFile(log, 'utf8')).split('\n').filter(Boolean))
    const meta = JSON.parse(await readFile(join(PROJECT_ROOT, 'dist', 'meta.json'), 'utf8')) as Metafile
    const urlOf = (out: string) => pathToFileURL(join(PROJECT_ROOT, out)).href
    const holding = (pred: (input: string) => boolean) => Object.entries(meta.outputs)
      .filter(([out, o]) => out.endsWith('.js') && Object.keys(o.inputs).some(pred)).map(([out]) => out)
    const xstateChunks = holding((i) => i.includes('node_modules/xstate/'))
    const machineChunks = holding((i) => /^machines\/.*\.machine\.ts$/.test(i))
    // The hook sees the chunks the command loads, and the metafile finds xstate and the machines.
    const updater = Object.entries(meta.outputs).find(([, o]) => o.entryPoint === 'actors/updater/index.ts')
    expect(updater && loaded.has(urlOf(updater[0]))).toBe(true)
    expect(xstateChunks.length).toBeGreaterThan(0)
    const fileStatusChunk = holding((i) => i === 'machines/file-status.machine.ts')
    expect(fileStatusChunk).toHaveLength(1)
    expect(meta.outputs[fileStatusChunk[0]!]!.imports.map((i) => i.path).some((p) => xstateChunks.includes(p))).toBe(true)

    expect([...xstateChunks, ...machineChunks].filter((out) => loaded.has(urlOf(out)))).toEqual([])
    expect([...loaded].filter((u) => u.includes('/node_modules/xstate/'))).toEqual([])
  })
})
