// The incremental benchmark's release pair (issue 15 item 4, bench/lib/release-pair.ts): B is
// laid over a copy of A as a build would leave it, so rsync's quick check and upswarm see the
// same change; the npm fetch is cached, and a registry that cannot be reached gives a clear
// error and leaves no half tree in the cache. No registry is needed: the failing fetch goes to
// a closed port on 127.0.0.1.
import { cp, mkdir, readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { listFiles } from '../../actors/demo/tree-gen.ts'
import { freePort } from '../../infra/cluster/ports.ts'
import { applyRelease, npmPackageTree, parseReleasePair } from '../../bench/lib/release-pair.ts'
import { tempDir } from '../helpers/cluster.ts'

const OLD = new Date('1985-10-26T08:15:00Z')

async function tree(root: string, files: Record<string, string>): Promise<void> {
  for (const [f, text] of Object.entries(files)) {
    await mkdir(join(root, f, '..'), { recursive: true })
    await writeFile(join(root, f), text)
    await utimes(join(root, f), OLD, OLD)
  }
}

describe('release pair', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  beforeEach(async () => {
    dir = await tempDir('upswarm-release-pair-')
  })
  afterEach(async () => {
    await dir.cleanup()
  })

  it('release pair — applying B over a copy of A rewrites changed and new files with a new mtime, removes the gone ones, leaves unchanged ones and their times, and counts the whole changed bytes', async () => {
    const a = join(dir.path, 'a')
    const b = join(dir.path, 'b')
    const dest = join(dir.path, 'dest')
    await tree(a, { 'package.json': '{"version":"1.0.2"}', 'lib/same.d.ts': 'same', 'lib/big.js': 'x'.repeat(1000), 'old.txt': 'gone' })
    // package.json keeps its size: only a new mtime lets rsync -a's quick check see it.
    await tree(b, { 'package.json': '{"version":"1.0.3"}', 'lib/same.d.ts': 'same', 'lib/big.js': `${'x'.repeat(500)}y${'x'.repeat(600)}`, 'lib/new.js': 'new file' })
    await cp(a, dest, { recursive: true, preserveTimestamps: true })
    const c = await applyRelease(a, b, dest)
    expect(c).toEqual({ files: 4, bytes: 19 + 4 + 1101 + 8, changed: 2, added: 1, removed: 1, wholeChangedBytes: 19 + 1101 + 8 })
    expect(await listFiles(dest)).toEqual(await listFiles(b))
    for (const f of await listFiles(b)) expect(await readFile(join(dest, f), 'utf8')).toBe(await readFile(join(b, f), 'utf8'))
    expect((await stat(join(dest, 'lib/same.d.ts'))).mtime.getTime()).toBe(OLD.getTime())
    for (const f of ['package.json', 'lib/big.js', 'lib/new.js']) expect((await stat(join(dest, f))).mtime.getTime()).toBeGreaterThan(OLD.getTime())
  })

  it('release pair — NAME@FROM:TO parses, scoped names included, and anything else is refused with the expected form', () => {
    expect(parseReleasePair('typescript@5.6.2:5.6.3')).toEqual({ kind: 'npm', name: 'typescript', from: '5.6.2', to: '5.6.3' })
    expect(parseReleasePair('@scope/pkg@1.0.0:1.0.1')).toEqual({ kind: 'npm', name: '@scope/pkg', from: '1.0.0', to: '1.0.1' })
    expect(() => parseReleasePair('typescript@5.6.2')).toThrow(/--release-pair must be NAME@FROM:TO.*got "typescript@5\.6\.2"/)
  })

  it('release pair — a cached tree is used without npm, and a registry that cannot be reached fails with the package, the version and npm\'s reason, leaving no tree in the cache', async () => {
    const cache = join(dir.path, 'cache')
    await tree(join(cache, 'npm', 'cached-pkg-1.0.0', 'tree'), { 'package.json': '{}' })
    expect(await npmPackageTree('cached-pkg', '1.0.0', cache)).toBe(join(cache, 'npm', 'cached-pkg-1.0.0', 'tree'))

    const saved = { ...process.env }
    process.env.npm_config_registry = `http://127.0.0.1:${await freePort()}/`
    process.env.npm_config_fetch_retries = '0'
    process.env.npm_config_cache = join(dir.path, 'npm-cache')
    try {
      await expect(npmPackageTree('upswarm-no-such-package', '1.0.0', cache)).rejects.toThrow(/could not fetch upswarm-no-such-package@1\.0\.0 from the npm registry[\s\S]*ECONNREFUSED/)
    } finally {
      for (const k of ['npm_config_registry', 'npm_config_fetch_retries', 'npm_config_cache']) {
        if (saved[k] === undefined) delete process.env[k]
        else process.env[k] = saved[k]
      }
    }
    expect(await readdir(join(cache, 'npm', 'upswarm-no-such-package-1.0.0'))).toEqual([])
  })
})
