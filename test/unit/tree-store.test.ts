// A working copy's format-2 store (infra/store/working-copy/tree-store.ts; docs/formats.md §5 step
// 6): nodes are content-addressed and checked against their names on every read, so a node torn or
// edited on disk is not trusted — it reads as absent (and is noted), and the next store repairs it.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { nodeHash } from '../../infra/formats/tree-node.ts'
import { layoutOf } from '../../infra/store/working-copy/layout.ts'
import { TreeStore } from '../../infra/store/working-copy/tree-store.ts'
import { tempDir } from '../helpers/cluster.ts'

describe('tree store', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  beforeAll(async () => { dir = await tempDir('upswarm-tree-store-') })
  afterAll(async () => { await dir.cleanup() })

  it('tree store — a node reads back by its hash; a damaged one reads as absent, is noted and not held until stored again; names must be 64 hex', async () => {
    const store = new TreeStore(layoutOf(dir.path))
    const a = Buffer.from('node a bytes')
    const b = Buffer.from('node b bytes')
    const ha = nodeHash(a)
    const hb = nodeHash(b)
    await store.putNodes(new Map([[ha, a], [hb, b]]))
    expect(Buffer.from((await store.node(ha))!)).toEqual(a)
    expect(await store.node('00'.repeat(32))).toBeUndefined()
    expect([store.holds(ha), store.holds(hb), store.holds('00'.repeat(32))]).toEqual([true, true, false])

    const file = join(layoutOf(dir.path).nodes, hb.slice(0, 2), hb)
    expect(await readFile(file)).toEqual(b)
    await writeFile(file, 'node b, tampered')
    expect(await store.node(hb)).toBeUndefined()
    expect([...store.damaged]).toEqual([hb])
    // Known damaged: not held, so the next store of the node writes it again.
    expect(store.holds(hb)).toBe(false)
    await store.putNodes(new Map([[hb, b]]))
    expect(store.holds(hb)).toBe(true)
    expect(Buffer.from((await store.node(hb))!)).toEqual(b)
    expect(store.damaged.size).toBe(0)

    await expect(store.node('../../etc/passwd')).rejects.toMatchObject({ code: 'UPSWARM_E_MANIFEST', message: expect.stringMatching(/is not 64 hex characters/) })
  })

  it('tree store — release documents are kept per revision as received, and listed in order', async () => {
    const store = new TreeStore(layoutOf(dir.path))
    await store.putRelease(10, '{"doc":10}')
    await store.putRelease(2, '{"doc":2}')
    expect(await store.release(10)).toBe('{"doc":10}')
    expect(await store.release(3)).toBeUndefined()
    expect(await store.revisions()).toEqual([2, 10])
  })
})
