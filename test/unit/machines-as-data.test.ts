// Issue 12 item 5, machines as data: docs/machines/ holds each statechart's drawing and its
// definition as JSON (the shape the Stately inspector receives and its editor imports), made by
// `npm run docs:machines`. They must never go stale, and the JSON must build the same chart.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createMachine, type AnyStateMachine, type AnyStateNode } from 'xstate'
import { MACHINES_DOCS, loadMachines, machineJson, machinePage } from '../../scripts/draw-machines.ts'

/** A chart's structure: every state node with its kind, initial state, transitions and invocations. */
function shape(machine: AnyStateMachine): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const ids = (targets: readonly AnyStateNode[] | undefined) => (targets ?? []).map((t) => t.id)
  // A composed guard (and/or/not) is a function: the JSON names it as @statelyai/inspect does, by its name.
  const guard = (g: unknown) => (g === undefined ? undefined : typeof g === 'string' ? g : typeof g === 'function' ? g.name : (g as { type?: string }).type)
  const visit = (node: AnyStateNode) => {
    out[node.id] = {
      type: node.type,
      initial: node.initial ? ids(node.initial.target as AnyStateNode[]) : undefined,
      on: [...node.transitions].map(([event, ts]) => [event, ts.map((t) => ({ to: ids(t.target as AnyStateNode[]), guard: guard(t.guard) }))]),
      always: (node.always ?? []).map((t) => ({ to: ids(t.target as AnyStateNode[]), guard: guard(t.guard) })),
      invoke: node.invoke.map((i) => i.src),
    }
    for (const child of Object.values(node.states) as AnyStateNode[]) visit(child)
  }
  visit(machine.root)
  return out
}

describe('machines — definitions as data', () => {
  it('machines — docs/machines/ has a drawing and a JSON definition for every machine, and nothing else', async () => {
    const machines = await loadMachines()
    expect(machines.length).toBeGreaterThanOrEqual(7)
    const files = (await readdir(MACHINES_DOCS)).filter((f) => f !== 'README.md').sort()
    expect(files).toEqual(machines.flatMap((m) => [`${m.name}.json`, `${m.name}.md`]).sort())
  })

  it('machines — the committed docs/machines/*.json and *.md are what `npm run docs:machines` makes of the machines today', async () => {
    for (const m of await loadMachines()) {
      expect(await readFile(join(MACHINES_DOCS, `${m.name}.json`), 'utf8'), `${m.name}.json is stale: npm run docs:machines`).toBe(machineJson(m.machine))
      expect(await readFile(join(MACHINES_DOCS, `${m.name}.md`), 'utf8'), `${m.name}.md is stale: npm run docs:machines`).toBe(machinePage(m))
    }
  })

  it('machines — each JSON definition, imported as createMachine(config), has the states, transitions and invocations of its machine', async () => {
    for (const m of await loadMachines()) {
      const imported = createMachine(JSON.parse(await readFile(join(MACHINES_DOCS, `${m.name}.json`), 'utf8')))
      expect(imported.id).toBe(m.machine.id)
      expect(shape(imported), m.name).toEqual(shape(m.machine))
    }
  })
})
