// Smoke test of `npm run bench -- meta` (issue 13 item 3; docs/formats.md §5 step 6) at 2 000
// files, so it cannot rot: the updater's check phase over a TLS cluster with credentials, format 1
// against format 2, and the bytes each fetched. Bytes are exact and asserted; times never are.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runMetaBench } from '../../bench/meta.ts'
import { tempDir } from '../helpers/cluster.ts'

describe('bench smoke', () => {
  it('bench — meta: a 1% update fetches a fraction of format 1\'s metadata in format 2, a no-change check about 1 KB; the result is written', async () => {
    const results = await tempDir('upswarm-bench-meta-')
    try {
      const r = await runMetaBench({ sizes: [2_000], resultsDir: results.path })
      expect(r.rows.map((row) => row.scenario)).toEqual(['first install', 'update, 1% random', 'update, 1% clustered', 'no-change check'])
      const [first, random, clustered, none] = r.rows as Array<Record<string, number>>
      // Format 1 fetches the whole manifest every time; format 2 the whole tree once, then the changed directories.
      expect(first!['format 1 KiB']).toBeGreaterThan(first!['format 2 KiB']!)
      expect(random!['format 1 KiB']).toBeGreaterThan(first!['format-1 manifest KiB']! * 0.99)
      expect(random!['format 2 KiB']).toBeLessThan(random!['format 1 KiB']! / 4)
      expect(clustered!['format 2 KiB']).toBeLessThan(random!['format 2 KiB']!)
      expect(none!['format 2 KiB']).toBeLessThan(2)
      expect(none!['format 2 requests']).toBe(1)
      expect(r.goals.every((g) => g.met)).toBe(true)
      expect(JSON.parse(readFileSync(join(results.path, 'meta.json'), 'utf8')).rows).toEqual(r.rows)
    } finally {
      await results.cleanup()
    }
  }, 240_000)
})
