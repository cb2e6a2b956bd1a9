// Smoke test of the incremental benchmark (issue 15 item 4), like bench-smoke.test.ts for the
// swarm: the real thing — an `up` cluster, `upswarm update`, an rsync daemon pulled with -a and
// -az — at a tiny size, with the release scenario on a local pair (no npm registry), checked for
// a complete and self-consistent result. Figures are recorded, never asserted; the goals must
// be the comparison of the run's own figures.
import { readFileSync } from 'node:fs'
import { mkdir, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { seededBytes } from '../../actors/demo/tree-gen.ts'
import { runIncrementalBench } from '../../bench/incremental.ts'
import { tempDir } from '../helpers/cluster.ts'

const OLD = new Date('1985-10-26T08:15:00Z')

async function tree(root: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [f, data] of Object.entries(files)) {
    await mkdir(join(root, f, '..'), { recursive: true })
    await writeFile(join(root, f), data)
    await utimes(join(root, f), OLD, OLD)
  }
}

interface Rsync { ms: number; sent: number; received: number; transferred: number }
interface Measured {
  name: string
  change: { files: number; wholeBytes: number }
  cli: { ms: number; wire: number; updated: number; payload: number }
  daemon: { ms: number; wire: number; payload: number }
  rsyncA: Rsync
  rsyncZ: Rsync
}

describe('bench incremental smoke', () => {
  it('bench — the incremental benchmark compares upswarm with rsync -a and -az on replaced, edited and a release pair, counts the whole changed files, and judges its goals on its own figures', async () => {
    const dir = await tempDir('upswarm-bench-incremental-smoke-')
    try {
      const a = join(dir.path, 'a')
      const b = join(dir.path, 'b')
      const big = seededBytes('release-big', 256 * 1024)
      const bigB = Buffer.from(big)
      bigB.write('a patch release', 100_000)
      await tree(a, { 'package.json': '{"version":"1.0.2"}', 'lib/same.d.ts': seededBytes('same', 8192), 'lib/big.js': big, 'old.txt': 'gone' })
      await tree(b, { 'package.json': '{"version":"1.0.3"}', 'lib/same.d.ts': seededBytes('same', 8192), 'lib/big.js': bigB, 'lib/new.js': 'new file' })
      const results = join(dir.path, 'results')
      const r = await runIncrementalBench({ files: 40, mib: 1, changeFraction: 0.05, editBytes: 1024, release: { kind: 'dirs', label: 'pkg 1.0.2 → 1.0.3', a, b }, rounds: 2, resultsDir: results })

      const tools = ['`upswarm update` (CLI)', 'updater.update() in-process', '`upswarm update` (CLI), the copy\'s daemon running', '`rsync -a` from rsyncd', '`rsync -az` from rsyncd', 'whole changed files']
      expect(r.rows.map((row) => `${row.change} ${row.tool}`)).toEqual(['replaced', 'edited', 'release'].flatMap((c) => tools.map((t) => `${c} ${t}`)))
      const release = r.parameters.release as { changed: number; added: number; removed: number; wholeChangedBytes: number }
      expect(release).toMatchObject({ changed: 2, added: 1, removed: 1, wholeChangedBytes: 19 + big.length + 8 })
      const measured = r.parameters.measured as Measured[]
      expect(measured.map((m) => m.name)).toEqual(['replaced', 'edited', 'release'])
      const rel = measured[2]!
      expect(rel.change).toMatchObject({ files: 4, wholeBytes: release.wholeChangedBytes })
      // Both rsync copies and the upswarm working copy took the change: the same-size
      // package.json included (new mtime), and the removed file.
      expect(rel.rsyncA.transferred).toBe(3)
      expect(rel.rsyncZ.transferred).toBe(3)
      expect(rel.cli.updated).toBeGreaterThanOrEqual(3)
      // Each round of the pair starts again from A on fresh copies and takes the same way: the
      // patched big file from a delta, the same bytes from the servers.
      const relRounds = (r.parameters.roundFigures as Record<string, { how: string; payload: number }[]>).release!
      expect(relRounds).toHaveLength(2)
      for (const x of relRounds) expect(x.how).toMatch(/, 1 files from deltas/)
      expect(Math.abs(relRounds[1]!.payload - relRounds[0]!.payload)).toBeLessThan(256)
      for (const m of measured) {
        expect(m.cli.wire).toBeGreaterThan(0)
        // The daemon's run (the bench checks the result came from it) fetched what the command's own did.
        expect(m.daemon.payload).toBe(m.cli.payload)
        expect(m.daemon.wire).toBeGreaterThan(0)
        expect(m.rsyncA.sent + m.rsyncA.received).toBeGreaterThan(0)
        expect(m.rsyncZ.sent + m.rsyncZ.received).toBeGreaterThan(0)
      }
      // Twelve goals, each the comparison of this run's figures.
      expect(r.goals.map((g) => [g.goal, g.met])).toEqual(measured.flatMap((m) => [
        [`${m.name}: upswarm wire bytes ≤ rsync -a`, m.cli.wire <= m.rsyncA.sent + m.rsyncA.received],
        [`${m.name}: upswarm wire bytes ≤ rsync -az`, m.cli.wire <= m.rsyncZ.sent + m.rsyncZ.received],
        [`${m.name}: \`upswarm update\` (CLI) wall time ≤ rsync -a`, m.cli.ms <= m.rsyncA.ms],
        [`${m.name}: \`upswarm update\` (CLI) with the copy's daemon running, wall time ≤ rsync -a`, m.daemon.ms <= m.rsyncA.ms],
      ]))
      const json = JSON.parse(readFileSync(join(results, 'incremental.json'), 'utf8'))
      expect(json.rows).toEqual(r.rows)
      expect(readFileSync(join(results, 'incremental.svg'), 'utf8')).toContain('rsync -az')
    } finally {
      await dir.cleanup()
    }
  }, 240_000)
})
