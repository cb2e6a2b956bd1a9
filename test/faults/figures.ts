// What every scenario of the fault suite (issue 11, "A fault suite with figures") shares: the
// size of the run (UPSWARM_FAULTS=short, the default inside `npm test`, or full, what
// `npm run faults` sets), a seeded random source, and the figures, written as the benchmarks
// write theirs (bench/lib/report.ts): a table on stdout and <results>/<name>.json.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { startRecording, type Cell, type Goal, type Recorder } from '../../bench/lib/report.ts'

export type FaultMode = 'short' | 'full'

export const MODE: FaultMode = process.env.UPSWARM_FAULTS === 'full' ? 'full' : 'short'

/** The short value inside `npm test`, the full one under `npm run faults`. */
export function sized<T>(short: T, full: T): T {
  return MODE === 'full' ? full : short
}

/**
 * Full runs write test/faults/results (committed, quoted in docs/faults.md); short runs write a
 * temporary directory so that `npm test` leaves the checkout clean. UPSWARM_FAULTS_RESULTS overrides.
 */
export const FAULT_RESULTS_DIR = process.env.UPSWARM_FAULTS_RESULTS
  ?? (MODE === 'full' ? join(PROJECT_ROOT, 'test', 'faults', 'results') : join(tmpdir(), 'upswarm-faults-short'))

/** The seed of every random choice; UPSWARM_FAULTS_SEED replays a run. */
export const SEED = Number.parseInt(process.env.UPSWARM_FAULTS_SEED ?? '', 10) || 0x5eed11

/** A small deterministic PRNG (mulberry32): the same seed, the same faults. */
export function random(seed = SEED): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A goal that a count is zero ("accepted 0", "crashes 0"). */
export function zero(what: string, n: number, of: string): Goal {
  return { goal: `${what}: 0`, met: n === 0, detail: `${n} ${of}` }
}

/** A scenario's figures: runs, failures (with the first few described), and its own counts. */
export class FaultFigures {
  readonly recorder: Recorder
  runs = 0
  readonly failures: string[] = []

  constructor(readonly name: string, readonly title: string) {
    this.recorder = startRecording(FAULT_RESULTS_DIR)
  }

  fail(detail: string): void {
    this.failures.push(detail)
  }

  /** Writes <results>/<name>.json and prints the table; the caller then asserts the goals. */
  async finish(r: { parameters: Record<string, unknown>; rows: Record<string, Cell>[]; goals: Goal[]; notes?: string[] }): Promise<Goal[]> {
    const columns = [...new Set(r.rows.flatMap((row) => Object.keys(row)))]
    await this.recorder.finish({
      name: this.name,
      title: `${this.title} (${MODE})`,
      parameters: { mode: MODE, seed: SEED, runs: this.runs, failures: this.failures.length, ...r.parameters },
      columns,
      rows: r.rows,
      goals: r.goals,
      notes: [...(r.notes ?? []), ...firstOfEach(this.failures).map((f) => `failure: ${f}`)],
    })
    return r.goals
  }
}

/** Up to 3 failures of each kind (the text before the first colon), 30 in all: a readable sample. */
function firstOfEach(failures: string[]): string[] {
  const seen = new Map<string, number>()
  return failures.filter((f) => {
    const kind = f.split(':')[0]!
    seen.set(kind, (seen.get(kind) ?? 0) + 1)
    return seen.get(kind)! <= 3
  }).slice(0, 30)
}

/** Fails the test with every missed goal named. */
export function missed(goals: Goal[]): string[] {
  return goals.filter((g) => !g.met).map((g) => `${g.goal} — ${g.detail}`)
}
