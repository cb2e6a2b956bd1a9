// Issue 11 item 9: strict decimal revisions and numbers on the command line (usage errors exit
// 2 and name the flag and the value), commander's own usage errors exit 2, a failed init leaves
// no directory it made, and messages that said nothing useful say what is wrong and what to do.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, rollback } from '../../actors/updater/index.ts'
import { isUpswarmError } from '../../infra/errors.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { scanTree } from '../../infra/release/scan.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree } from '../helpers/local-publish.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr })
    })
  })
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false)

describe('strict input', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let repo: string
  const key = generatePublisherKey()
  const product = randomUUID()

  beforeAll(async () => {
    tmp = await tempDir('upswarm-strict-input-')
    repo = join(tmp.path, 'repo')
    const src = join(tmp.path, 'src')
    await writeTree(src, { 'a.txt': 'a\n' })
    await publishLocal(repo, { key, product, src })
  })
  afterAll(async () => tmp?.cleanup())

  it('cli — a revision or number that is not plain decimal digits is a usage error naming the flag and value (exit 2)', async () => {
    const wc = join(tmp.path, 'nowhere')
    for (const value of ['-1', 'abc', '0x1', ' 1', '1e1', '0', '1.5', '']) {
      for (const args of [['rollback', wc, '--rev', value], ['update', wc, '--rev', value]]) {
        const r = await cli(...args, '--json')
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
        expect(r.stderr).toContain(`--rev ${JSON.stringify(value)}: a revision is a decimal number from 1 up`)
        expect(JSON.parse(r.stdout).error.code).toBe('UPSWARM_E_CONFIG')
      }
    }
    const threads = await cli('update', wc, '--threads', '0x4')
    expect(threads.code).toBe(2)
    expect(threads.stderr).toContain('--threads "0x4": expected a whole number written in decimal digits')
  })

  it('cli — unknown options and missing arguments exit 2', async () => {
    expect((await cli('status', tmp.path, '--bogus')).code).toBe(2)
    expect((await cli('rollback', tmp.path)).code).toBe(2)
    expect((await cli('--version')).code).toBe(0)
  })

  it('updater — a failed init leaves no directory it made, and a directory it did not make stays', async () => {
    const offline = new DirectorySource(repo)
    offline.online = false
    const made = join(tmp.path, 'made', 'deeper')
    await expect(init(made, { product, publicKey: key.publicKey, source: offline })).rejects.toSatisfy((e) => isUpswarmError(e))
    expect(await exists(join(tmp.path, 'made'))).toBe(false)
    const mine = join(tmp.path, 'mine')
    await mkdir(mine)
    await expect(init(mine, { product, publicKey: key.publicKey, source: offline })).rejects.toSatisfy((e) => isUpswarmError(e))
    expect(await exists(mine)).toBe(true)
    expect(await exists(join(mine, '.upswarm'))).toBe(false)
  })

  it('updater — a rollback with nothing older says so and what to run instead', async () => {
    const wc = join(tmp.path, 'at1')
    await init(wc, { product, publicKey: key.publicKey, source: new DirectorySource(repo) })
    await expect(rollback(wc, { rev: 1 })).rejects.toThrow(/it is at r1, the first revision: there is nothing older to go back to$/)
    await expect(rollback(wc, { rev: 3 })).rejects.toThrow(/it is at r1, the first revision/)
  })

  it('publisher — a file named back\\slash is refused in one line naming the file and why', async () => {
    const src = join(tmp.path, 'bs')
    await mkdir(join(src, 'sub'), { recursive: true })
    await writeFile(join(src, 'sub', 'back\\slash'), 'x')
    const err = await scanTree(src).then(() => undefined, (e: unknown) => e)
    expect(isUpswarmError(err, 'UPSWARM_E_PUBLISH')).toBe(true)
    const message = (err as Error).message
    expect(message).toBe(`cannot publish ${join(src, 'sub', 'back\\slash')}: its name has a backslash (\\), which clients on Windows read as a folder separator; rename it or move it out of ${src}`)
    expect(message).not.toContain('\n')
  })
})
