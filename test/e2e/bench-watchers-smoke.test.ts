// Smoke test of the release-watchers benchmark (issue 14 item 3, the control plane): the real
// thing — an `up` cluster, watcher connections with client credentials following a product,
// publishes, a NATS node killed and restarted — at a size that takes seconds, so the bench cannot
// rot. The figures are recorded, never asserted; that no watcher misses a release is.
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runWatchersBench } from '../../bench/watchers.ts'
import { tempDir } from '../helpers/cluster.ts'

describe('bench smoke', () => {
  it('bench — the watchers benchmark follows releases through a node kill with nothing missed, and writes a complete result', async () => {
    const results = await tempDir('upswarm-bench-watchers-')
    try {
      const r = await runWatchersBench({ watchers: 12, publishes: 1, connectConcurrency: 12, resultsDir: results.path })
      expect(r.rows.map((row) => row.phase)).toEqual(['release 1 of 1', expect.stringMatching(/^release during the storm \(n\d killed\)$/), expect.stringMatching(/^release after n\d restarted$/)])
      for (const row of r.rows) expect([row.watchers, row.missed]).toEqual([12, 0])
      expect(r.goals.find((g) => g.goal.startsWith('every watcher'))?.met).toBe(true)
      expect(r.parameters.notReconnected).toBe(0)
      expect(JSON.parse(readFileSync(join(results.path, 'watchers.json'), 'utf8')).rows).toEqual(r.rows)
    } finally {
      await results.cleanup()
    }
  }, 240_000)
})
