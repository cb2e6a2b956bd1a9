// The table `status` classifies with is the file-status statechart compiled (issue 12 item 2):
// every path of the chart, walked with xstate/graph, ends in the status the table gives; every
// branch of the table replays through the chart to its status; and the committed table is
// byte for byte what the generator makes of the chart today.
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { getPathsFromEvents, getShortestPaths, getSimplePaths } from 'xstate/graph'
import { classifyFile } from '../../actors/updater/status.ts'
import { FILE_STATUSES, type FileFactEvent, type FileFactType, type FileStatus, type FileStatusTable } from '../../machines/file-status.facts.ts'
import { fileStatusMachine } from '../../machines/file-status.machine.ts'
import { FILE_STATUS_TABLE } from '../../machines/generated/file-status-table.ts'
import { SAMPLE_FACT_EVENTS, TABLE_FILE, tableSource } from '../../scripts/file-status-table.ts'

const input = { path: 'p', onConflict: 'alert' as const }
const decided = (s: { matches: (v: 'classifying') => boolean }) => !s.matches('classifying')
const factTypes = (events: { type: string }[]): string[] => events.map((e) => e.type).filter((t) => t !== 'xstate.init')

/** The table's status for a sequence of event types, or why there is none. */
function lookUp(table: FileStatusTable, events: string[]): FileStatus | string {
  let node: FileStatusTable | FileStatus = table
  for (const [i, type] of events.entries()) {
    if (typeof node === 'string') return `the table decides ${node} after ${events.slice(0, i).join(' → ')}, the chart goes on`
    const next: FileStatusTable | FileStatus | undefined = node[type]
    if (next === undefined) return `the table has no ${type} after ${events.slice(0, i).join(' → ') || 'the start'}`
    node = next
  }
  return typeof node === 'string' ? node : `the table decides nothing after ${events.join(' → ')}`
}

/** Every branch of the table, root to status. */
function branches(node: FileStatusTable, prefix: string[] = []): { events: string[]; status: FileStatus }[] {
  return Object.entries(node).flatMap(([type, next]) =>
    typeof next === 'string' ? [{ events: [...prefix, type], status: next }] : branches(next, [...prefix, type]))
}

const sampleOf = (type: string): FileFactEvent => SAMPLE_FACT_EVENTS.find((e) => e.type === type)!

describe('file status — the table is the statechart', () => {
  it('file status — every path of the statechart (getSimplePaths) ends in the status the table gives for its events', () => {
    const paths = getSimplePaths(fileStatusMachine, { input, events: SAMPLE_FACT_EVENTS, toState: decided })
    expect(paths.length).toBe(15)
    for (const p of paths) {
      const events = factTypes(p.steps.map((s) => s.event))
      expect(p.state.context.status, events.join(' → ')).toBeDefined()
      expect(lookUp(FILE_STATUS_TABLE, events), events.join(' → ')).toBe(p.state.context.status)
    }
    // And the table has no branch the chart lacks.
    expect(branches(FILE_STATUS_TABLE)).toHaveLength(paths.length)
  })

  it('file status — every branch of the table replays through the statechart (getPathsFromEvents) to its status', () => {
    for (const { events, status } of branches(FILE_STATUS_TABLE)) {
      const [path] = getPathsFromEvents(fileStatusMachine, events.map(sampleOf), { input })
      expect(path, events.join(' → ')).toBeDefined()
      expect(factTypes(path!.steps.map((s) => s.event))).toEqual(events)
      expect(path!.state.context.status, events.join(' → ')).toBe(status)
    }
  })

  it('file status — the shortest paths of the statechart reach all eight statuses', () => {
    const reached = new Set(getShortestPaths(fileStatusMachine, { input, events: SAMPLE_FACT_EVENTS, toState: decided })
      .map((p) => p.state.context.status))
    expect([...reached].sort()).toEqual([...FILE_STATUSES].sort())
    expect(new Set(branches(FILE_STATUS_TABLE).map((b) => b.status))).toEqual(reached)
  })

  it('file status — the committed table is byte for byte what the generator makes of the statechart', async () => {
    expect(await readFile(TABLE_FILE, 'utf8')).toBe(tableSource())
  })

  it('file status — facts the table has no branch for fail with a message naming them and the fix', () => {
    const partial: FileStatusTable = { 'rules.tracked': { 'base.absent': { 'target.absent': 'unversioned' } } }
    expect(classifyFile({ ignored: false }, partial)).toBe('unversioned')
    expect(() => classifyFile({ ignored: true }, partial)).toThrow(/no status for the facts rules\.ignored → base\.absent → target\.absent → local\.absent; run `npm run build`/)
  })

  it('file status — each table lookup walks the fact stages in the order of the alphabet', () => {
    const types: FileFactType[] = SAMPLE_FACT_EVENTS.map((e) => e.type)
    for (const { events } of branches(FILE_STATUS_TABLE)) {
      const stages = events.map((t) => t.split('.')[0])
      expect(['rules', 'base', 'target', 'local'].slice(0, stages.length), events.join(' → ')).toEqual(stages)
      for (const t of events) expect(types).toContain(t)
    }
  })
})
