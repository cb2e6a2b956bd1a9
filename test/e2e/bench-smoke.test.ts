// Smoke test of the swarm benchmark (issue 7: "a smoke test in the suite runs the swarm
// benchmark at a tiny size so it cannot rot"). It runs the real thing — an `up` cluster, client
// daemons, a publish, the plain-HTTP comparison — at a size that takes seconds, and checks the
// result is complete and self-consistent. Timing figures are recorded, never asserted.
import { describe, expect, it } from 'vitest'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runSwarmBench } from '../../bench/swarm.ts'
import { tempDir } from '../helpers/cluster.ts'

describe('bench smoke', () => {
  it('bench — the swarm benchmark runs end to end at a tiny size and writes a complete result', async () => {
    const results = await tempDir('upswarm-bench-smoke-')
    try {
      const r = await runSwarmBench({ clients: [2], mib: 2, files: 6, servers: 2, serverMiBps: 16, clientMiBps: 16, resultsDir: results.path })
      expect(r.name).toBe('swarm')
      expect(r.rows).toHaveLength(1)
      const row = r.rows[0]!
      expect(row.N).toBe(2)
      expect(row['swarm s']).toBeGreaterThan(0)
      expect(row['HTTP s']).toBeGreaterThan(0)
      // The servers sent at least one copy's worth of pieces the clients kept, or the peers did.
      expect(row['origin/F']).toBeGreaterThan(0)
      const runs = (r.parameters.runs as { clientServerBytes: number; clientPeerBytes: number; badPieces: number; perClientMs: number[] }[])
      expect(runs).toHaveLength(1)
      const bytes = r.parameters.bytes as number
      // Each of the 2 clients received the whole release, from servers or peers.
      expect(runs[0]!.clientServerBytes + runs[0]!.clientPeerBytes).toBeGreaterThanOrEqual(2 * bytes)
      expect(runs[0]!.perClientMs).toHaveLength(2)
      expect(runs[0]!.badPieces).toBe(0)
      expect(r.goals.map((g) => g.goal)).toEqual(['N=2: time ≤ 1.5 × P2P bound'])
      // What `npm run bench` publishes: the JSON and the chart.
      const json = JSON.parse(readFileSync(join(results.path, 'swarm.json'), 'utf8'))
      expect(json.rows).toEqual(r.rows)
      expect(json.machine.cores).toBeGreaterThan(0)
      expect(existsSync(join(results.path, 'swarm.svg'))).toBe(true)
      expect(readFileSync(join(results.path, 'swarm.svg'), 'utf8')).toContain('<svg')
    } finally {
      await results.cleanup()
    }
  }, 240_000)
})
