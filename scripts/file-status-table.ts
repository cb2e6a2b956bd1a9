// Compiles the file-status statechart (machines/file-status.machine.ts) into the lookup table
// `upswarm status` classifies with (machines/generated/file-status-table.ts), so that a short
// command does not load xstate (issue 12 item 2, issue 13). Every path of the chart from its
// initial state to a status, walked with xstate/graph, becomes one branch of the table.
// `npm run build` runs it (scripts/build.mjs); by hand: node --import tsx scripts/file-status-table.ts
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { getSimplePaths } from 'xstate/graph'
import type { Entry } from '../infra/release/manifest.ts'
import { fileStatusMachine } from '../machines/file-status.machine.ts'
import type { FileFactEvent, FileFactType, FileStatus, FileStatusTable, LocalEntry } from '../machines/file-status.facts.ts'

export const TABLE_FILE = join(import.meta.dirname, '..', 'machines', 'generated', 'file-status-table.ts')

const FILE: Entry = { path: 'p', kind: 'file', mode: 0o644, size: 1, sha1: '1'.repeat(40), sha256: '2'.repeat(64) }
const LOCAL: LocalEntry = { kind: 'file', mode: 0o644, size: 1, sha1: '1'.repeat(40), sha256: '2'.repeat(64) }

/** One event of each type: the chart's transitions depend on event types alone. */
export const SAMPLE_FACT_EVENTS: readonly FileFactEvent[] = [
  { type: 'rules.ignored' }, { type: 'rules.tracked' },
  { type: 'base.present', entry: FILE }, { type: 'base.absent' },
  { type: 'target.same', entry: FILE }, { type: 'target.changed', entry: FILE }, { type: 'target.added', entry: FILE }, { type: 'target.absent' },
  { type: 'local.asTarget', entry: LOCAL }, { type: 'local.asBase', entry: LOCAL }, { type: 'local.other', entry: LOCAL }, { type: 'local.absent' },
]

export interface StatusPath {
  events: FileFactType[]
  status: FileStatus
}

/** Every path of the chart from its initial state to the state that decides a status. */
export function statusPaths(): StatusPath[] {
  const decided = (s: { matches: (v: 'classifying') => boolean }) => !s.matches('classifying')
  return getSimplePaths(fileStatusMachine, { input: { path: 'p', onConflict: 'alert' }, events: SAMPLE_FACT_EVENTS, toState: decided })
    .map((p) => {
      const status = p.state.context.status
      if (!status) throw new Error(`file-status machine: the path ${p.steps.map((s) => s.event.type).join(' → ')} leaves classifying without a status`)
      return { events: p.steps.map((s): string => s.event.type).filter((t): t is FileFactType => t !== 'xstate.init'), status }
    })
}

/** The paths as a tree: event type → next node, until a status. */
export function buildTable(paths: StatusPath[]): FileStatusTable {
  type Node = { [event: string]: Node | FileStatus }
  const root: Node = {}
  for (const { events, status } of paths) {
    let node = root
    events.forEach((type, i) => {
      const here = node[type]
      if (i === events.length - 1) {
        if (here !== undefined) throw new Error(`file-status machine: two paths end at ${events.join(' → ')}`)
        node[type] = status
      } else {
        if (typeof here === 'string') throw new Error(`file-status machine: ${events.slice(0, i + 1).join(' → ')} decides ${here}, yet the path goes on`)
        node = (node[type] ??= {}) as Node
      }
    })
  }
  return sortKeys(root) as FileStatusTable
}

function sortKeys(node: FileStatusTable | FileStatus): FileStatusTable | FileStatus {
  if (typeof node === 'string') return node
  return Object.fromEntries(Object.keys(node).sort().map((k) => [k, sortKeys(node[k]!)]))
}

/** The generated module's text. */
export function tableSource(): string {
  const paths = statusPaths()
  return [
    '// Generated from machines/file-status.machine.ts by scripts/file-status-table.ts (npm run build).',
    '// Do not edit: change the statechart; test/unit/file-status-table.test.ts checks this file.',
    "import type { FileStatusTable } from '../file-status.facts.ts'",
    '',
    `/** The file-status statechart's ${paths.length} paths from the first fact to a status: event type → next node. */`,
    `export const FILE_STATUS_TABLE: FileStatusTable = ${JSON.stringify(buildTable(paths), null, 2)}`,
    '',
  ].join('\n')
}

/** Rewrites the table when the statechart changed; returns whether it did. */
export async function writeTable(file = TABLE_FILE): Promise<boolean> {
  const text = tableSource()
  if ((await readFile(file, 'utf8').catch(() => '')) === text) return false
  await writeFile(file, text)
  return true
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log((await writeTable()) ? `wrote ${TABLE_FILE}` : `${TABLE_FILE} is up to date`)
}
