// Issue 13 item 1: config.json and state.json are read through hand-written checks, so that a
// short command loads no zod; the checks must take exactly what the zod schemas take unchanged,
// and leave everything else to zod, whose error names the field. Each sample below is read with
// readConfig / readState (real files) and compared with the schema's own verdict on it.
import { mkdir, writeFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { z } from 'zod'
import { layoutOf, type WorkingCopyLayout } from '../../infra/store/working-copy/layout.ts'
import { readConfig, readState } from '../../infra/store/working-copy/meta.ts'
import { WorkingCopyConfigSchema, WorkingCopyStateSchema } from '../../infra/store/working-copy/schemas.ts'
import { tempDir } from '../helpers/cluster.ts'

const HEX = 'ab'.repeat(32)
const CONFIG = { format: 1, product: '0b0e8a52-2d5c-4c1e-9a51-2f7c0c1d9e11', publicKey: HEX, clientId: 'c1', historyDepth: 3 }
const STATE = { format: 1, current: 2, newestVerified: 3, topInstalled: 2, record: { 1: HEX, 2: HEX } }
const REVERT = { rev: 3, to: 2, at: '2026-11-30T00:00:00Z', phase: 'health', reason: 'exit 1' }

const configSamples: [string, unknown][] = [
  ['valid', CONFIG], ['valid, private', { ...CONFIG, private: true }], ['an unknown key (zod drops it)', { ...CONFIG, extra: 1 }],
  ['historyDepth 0', { ...CONFIG, historyDepth: 0 }], ['historyDepth 1001', { ...CONFIG, historyDepth: 1001 }], ['historyDepth 1.5', { ...CONFIG, historyDepth: 1.5 }],
  ['historyDepth "3"', { ...CONFIG, historyDepth: '3' }], ['product not a UUID', { ...CONFIG, product: 'p' }], ['publicKey in capitals', { ...CONFIG, publicKey: HEX.toUpperCase() }],
  ['clientId empty', { ...CONFIG, clientId: '' }], ['clientId of 201 characters', { ...CONFIG, clientId: 'x'.repeat(201) }], ['clientId of 200', { ...CONFIG, clientId: 'x'.repeat(200) }],
  ['private "yes"', { ...CONFIG, private: 'yes' }], ['format 2', { ...CONFIG, format: 2 }], ['no publicKey', { ...CONFIG, publicKey: undefined }],
  ['an array', [CONFIG]], ['null', null], ['a number', 7],
]
const stateSamples: [string, unknown][] = [
  ['valid', STATE], ['valid, every field', { ...STATE, hold: 3, reverted: [REVERT], lastJournal: 'j' }], ['an unknown key', { ...STATE, extra: true }],
  ['record key 0', { ...STATE, record: { 0: HEX } }], ['record key 01', { ...STATE, record: { '01': HEX } }], ['record value short', { ...STATE, record: { 1: 'ab' } }],
  ['record an array', { ...STATE, record: [HEX] }], ['reverted phase unknown', { ...STATE, reverted: [{ ...REVERT, phase: 'pre' }] }],
  ['reverted with an unknown key', { ...STATE, reverted: [{ ...REVERT, note: 1 }] }], ['reverted rev 0', { ...STATE, reverted: [{ ...REVERT, rev: 0 }] }],
  ['hold 0', { ...STATE, hold: 0 }], ['current -1', { ...STATE, current: -1 }], ['current 2^53', { ...STATE, current: 2 ** 53 }],
  ['lastJournal a number', { ...STATE, lastJournal: 5 }], ['no record', { ...STATE, record: undefined }], ['format "1"', { ...STATE, format: '1' }],
]

describe('working copy — config and state checks agree with their schemas', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let n = 0
  beforeAll(async () => { tmp = await tempDir('upswarm-meta-checks-') })
  afterAll(async () => tmp?.cleanup())

  async function copyWith(file: 'config' | 'state', value: unknown): Promise<WorkingCopyLayout> {
    const layout = layoutOf(`${tmp.path}/wc${++n}`)
    await mkdir(layout.meta, { recursive: true })
    await writeFile(file === 'config' ? layout.config : layout.state, JSON.stringify(value))
    return layout
  }

  /** The file read through `read` gives what `schema` parses the value to, or an error naming the field the schema names. */
  async function agrees<T>(what: string, layout: WorkingCopyLayout, value: unknown, schema: z.ZodType<T>, read: (l: WorkingCopyLayout) => Promise<T>): Promise<void> {
    const expected = schema.safeParse(value)
    const got = await read(layout).then((v) => ({ ok: true as const, v }), (err: Error) => ({ ok: false as const, err }))
    if (expected.success) {
      expect(got, what).toEqual({ ok: true, v: expected.data })
    } else {
      const issue = expected.error.issues[0]!
      expect(got.ok, what).toBe(false)
      if (!got.ok) expect(got.err.message, what).toContain(`is malformed at ${issue.path.join('.') || '(root)'}: ${issue.message}`)
    }
  }

  it('working copy — each config.json sample reads as the schema parses it, or fails naming the field the schema names', async () => {
    for (const [what, value] of configSamples) await agrees(what, await copyWith('config', value), value, WorkingCopyConfigSchema, readConfig)
  })

  it('working copy — each state.json sample reads as the schema parses it, or fails naming the field the schema names', async () => {
    for (const [what, value] of stateSamples) await agrees(what, await copyWith('state', value), value, WorkingCopyStateSchema, readState)
    // The samples cover both verdicts.
    expect(stateSamples.filter(([, v]) => WorkingCopyStateSchema.safeParse(v).success).length).toBeGreaterThanOrEqual(3)
    expect(stateSamples.filter(([, v]) => !WorkingCopyStateSchema.safeParse(v).success).length).toBeGreaterThanOrEqual(10)
  })
})
