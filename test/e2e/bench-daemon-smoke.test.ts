// Smoke test of the daemon benchmark (issue 13 item 5), like bench-smoke.test.ts for the swarm:
// the real thing — an `up` cluster, a client daemon, two updates — at a size that takes seconds,
// checked for a complete and self-consistent result. Figures are recorded, never asserted.
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runDaemonBench } from '../../bench/daemon.ts'
import { tempDir } from '../helpers/cluster.ts'

describe('bench daemon smoke', () => {
  it('bench — the daemon benchmark measures an idle daemon beside the floor and its peak over an update, and writes a complete result', async () => {
    const results = await tempDir('upswarm-bench-daemon-smoke-')
    try {
      const r = await runDaemonBench({ settle: 1, idleSeconds: 2, updateMiB: 4, fileMiB: 2, formats: [1, 2], resultsDir: results.path })
      expect(r.name).toBe('daemon')
      expect(r.rows.map((row) => row.process)).toEqual([
        'daemon, idle', 'node -e "setInterval(()=>{},1e3)" (floor)', 'daemon, updating 4 MiB', 'daemon, idle 1 s after that update',
      ])
      const [idle, floor, peak] = r.rows
      // Every process maps the node binary; the daemon holds more than an idle node.
      for (const row of [idle!, floor!, peak!]) expect(row['node binary']).toBeGreaterThan(0)
      expect(idle!['RSS MiB']).toBeGreaterThan(floor!['RSS MiB'] as number)
      // USS ≤ PSS ≤ RSS: private pages are counted whole in PSS, shared ones in part.
      for (const row of [idle!, floor!]) {
        expect(row['USS MiB']).toBeLessThanOrEqual(row['PSS MiB'] as number)
        expect(row['PSS MiB']).toBeLessThanOrEqual(row['RSS MiB'] as number)
      }
      expect(peak!['peak RSS MiB']).toBeGreaterThanOrEqual(peak!['RSS MiB'] as number)
      expect(typeof idle!['CPU %']).toBe('number')
      const p = r.parameters as { update: { bytesFromServers: number; bytesFromPeers: number }; idleHeap: { spaces: Record<string, unknown> } }
      // The whole 4 MiB release reached the daemon, and it told its heap by space.
      expect(p.update.bytesFromServers + p.update.bytesFromPeers).toBeGreaterThanOrEqual(4 * 1024 * 1024)
      expect(Object.keys(p.idleHeap.spaces)).toContain('old_space')
      expect(r.goals.map((g) => g.goal)).toEqual(['idle RSS ≤ 64 MiB', 'idle CPU ≤ 0.2 % of a core'])
      const json = JSON.parse(readFileSync(join(results.path, 'daemon.json'), 'utf8'))
      expect(json.rows).toEqual(r.rows)
    } finally {
      await results.cleanup()
    }
  }, 240_000)
})
