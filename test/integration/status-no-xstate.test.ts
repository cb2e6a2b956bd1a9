// Issue 12 item 2, issue 13: `upswarm status --offline` classifies through the table compiled from
// the file-status statechart, so the compiled CLI runs no xstate for it. The command runs under
// V8's coverage, each function that ran traced back to its source module
// (test/helpers/executed-modules.ts).
import { randomUUID } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init } from '../../actors/updater/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree } from '../helpers/local-publish.ts'
import { runCounted } from '../helpers/executed-modules.ts'

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

  it('status — `upswarm status --offline` of a small working copy classifies every path and runs no xstate', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.UPSWARM_NATS
    const { r, ran } = await runCounted(['status', wc, '--offline'], env)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^modified\s+b\.txt$/m)
    expect(r.stdout).toMatch(/^3 current$/m)
    // The coverage sees the modules that ran: the classification, through the compiled table.
    expect(ran.has('actors/updater/status.ts')).toBe(true)
    expect(ran.has('machines/generated/file-status-table.ts')).toBe(true)
    expect([...ran].filter((m) => m.startsWith('node_modules/xstate/') || /^machines\/.*\.machine\.ts$/.test(m))).toEqual([])
  })
})
