// Draws every statechart in machines/ as a Mermaid state diagram in docs/machines/, and writes
// its definition as data beside it (docs/machines/<name>.json, issue 12 item 5), from the machine
// definitions themselves (never by hand). Run: npm run docs:machines
//
// The JSON is the machine's config in the shape Stately's tools take: what @statelyai/inspect
// sends the Stately inspector as an actor's `definition` (`logic.config`, each function replaced
// by `{ "type": <its name> }`), and what Stately's editor imports (Machine > Import) when it is
// pasted into `createMachine(…)`. Not `machine.toJSON()`: that is the resolved definition
// (absolute target ids, `initial` as a transition object), which neither imports.
import { readdir, writeFile, mkdir } from 'node:fs/promises'
import { join, basename } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { AnyStateMachine, AnyStateNode } from 'xstate'

const root = join(import.meta.dirname, '..')
export const MACHINES_DOCS = join(root, 'docs', 'machines')

function label(eventType: string): string {
  if (eventType.startsWith('xstate.after.')) return `after ${eventType.split('.')[2]}`
  if (eventType.startsWith('xstate.done.actor.')) return 'done'
  if (eventType.startsWith('xstate.error.actor.')) return 'error'
  if (eventType.startsWith('xstate.done.state.')) return 'done'
  return eventType
}

function id(node: AnyStateNode): string {
  return node.path.length === 0 ? '[*]' : node.path.join('_')
}

const within = (node: AnyStateNode, target: AnyStateNode): boolean => node.path.every((k, i) => target.path[i] === k)

/**
 * Draws `node`'s children into `lines`. A transition that leaves a composite state is drawn at
 * the top level (`outer`): Mermaid would otherwise make its target a state of the composite.
 */
function draw(node: AnyStateNode, lines: string[], indent: string, outer: string[]): void {
  const children = Object.values(node.states) as AnyStateNode[]
  if (node.path.length > 0 && children.length > 0) lines.push(`${indent}state ${id(node)} {`)
  const inner = node.path.length > 0 && children.length > 0 ? `${indent}  ` : indent
  const arrow = (from: AnyStateNode, target: AnyStateNode, text: string) =>
    (within(node, target) ? lines.push(`${inner}${id(from)} --> ${id(target)} : ${text}`) : outer.push(`${id(from)} --> ${id(target)} : ${text}`))
  if (children.length > 0 && node.initial) {
    const initial = (node.initial.target as AnyStateNode[])[0]
    if (initial) lines.push(`${inner}[*] --> ${id(initial)}`)
  }
  for (const child of children) {
    if (child.type === 'final') lines.push(`${inner}${id(child)} --> [*]`)
    for (const [eventType, transitions] of child.transitions) {
      for (const t of transitions) {
        const guard = t.guard ? ` [${typeof t.guard === 'string' ? t.guard : (t.guard as { type?: string }).type ?? 'guard'}]` : ''
        for (const target of (t.target ?? []) as AnyStateNode[]) arrow(child, target, `${label(eventType)}${guard}`)
      }
    }
    for (const t of child.always ?? []) {
      const guard = t.guard ? ` [${typeof t.guard === 'string' ? t.guard : (t.guard as { type?: string }).type ?? 'guard'}]` : ''
      for (const target of (t.target ?? []) as AnyStateNode[]) arrow(child, target, `always${guard}`)
    }
    for (const inv of child.invoke) lines.push(`${inner}${id(child)} : invoke ${typeof inv.src === 'string' ? inv.src : inv.id}`)
    draw(child, lines, inner, outer)
  }
  // Transitions declared on the parent itself (e.g. a root-level `stop`).
  if (node.path.length === 0) {
    for (const [eventType, transitions] of node.transitions) {
      for (const t of transitions) for (const target of (t.target ?? []) as AnyStateNode[]) lines.push(`${indent}note right of ${id(target)} : from any state on ${label(eventType)}`)
    }
    lines.push(...outer.map((l) => `${indent}${l}`))
  }
  if (node.path.length > 0 && children.length > 0) lines.push(`${indent}}`)
}

export interface MachineModule {
  /** `auto-update` for machines/auto-update.machine.ts. */
  name: string
  file: string
  exportName: string
  machine: AnyStateMachine
}

/** Every machine exported by machines/*.machine.ts, by file name. */
export async function loadMachines(): Promise<MachineModule[]> {
  const files = (await readdir(join(root, 'machines'))).filter((f) => f.endsWith('.machine.ts')).sort()
  const out: MachineModule[] = []
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(root, 'machines', file)).href)) as Record<string, unknown>
    for (const [exportName, value] of Object.entries(mod)) {
      if (!value || typeof value !== 'object' || !('root' in value) || !('provide' in value)) continue
      out.push({ name: basename(file, '.machine.ts'), file, exportName, machine: value as AnyStateMachine })
    }
  }
  return out
}

/** As @statelyai/inspect serializes a definition: a function becomes `{ type: <its name> }`. */
function asData(_key: string, value: unknown): unknown {
  return typeof value === 'function' ? { type: value.name } : value
}

/** The machine's definition as data (docs/machines/<name>.json). */
export function machineJson(machine: AnyStateMachine): string {
  return `${JSON.stringify(machine.config, asData, 2)}\n`
}

/** The Mermaid page of one machine (docs/machines/<name>.md). */
export function machinePage(m: MachineModule): string {
  const lines = ['stateDiagram-v2']
  draw(m.machine.root, lines, '  ', [])
  return [`# ${m.machine.id} (\`machines/${m.file}\`, export \`${m.exportName}\`)`, '',
    'Generated by `npm run docs:machines` from the machine definition. Do not edit.',
    `Definition as data (Stately inspector / editor import): [${m.name}.json](${m.name}.json).`, '',
    '```mermaid', ...lines, '```', ''].join('\n')
}

async function main(): Promise<void> {
  await mkdir(MACHINES_DOCS, { recursive: true })
  const machines = await loadMachines()
  const index: string[] = ['# Statecharts', '',
    'Generated by `npm run docs:machines` from the definitions in `machines/`. Do not edit.',
    'Each machine has a Mermaid drawing (`.md`) and its definition as data (`.json`: the config',
    'in the shape the Stately inspector receives and the Stately editor imports inside `createMachine(…)`).', '']
  for (const m of machines) {
    await writeFile(join(MACHINES_DOCS, `${m.name}.md`), machinePage(m))
    await writeFile(join(MACHINES_DOCS, `${m.name}.json`), machineJson(m.machine))
    index.push(`- [${m.machine.id}](${m.name}.md) ([JSON](${m.name}.json)) — \`machines/${m.file}\``)
  }
  await writeFile(join(MACHINES_DOCS, 'README.md'), `${index.join('\n')}\n`)
  console.log(`drew ${machines.length} machines into docs/machines/`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
