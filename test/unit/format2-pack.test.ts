// Packs (docs/formats.md §1.9; issue 13 item 4): the codec pinned by its golden vector, every way a
// pack can be wrong refused by name with nothing kept, and a server's pack store serving units from
// the packs it kept, across a restart.
import { createHash } from 'node:crypto'
import { readdir, readFile, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { PackReader, packHeader, type PackUnit } from '../../infra/formats/pack.ts'
import { BlobStore } from '../../infra/store/blob-store.ts'
import { PackStore } from '../../infra/store/pack-store.ts'
import { tempDir } from '../helpers/cluster.ts'

const VECTOR = (JSON.parse(await readFile(join(import.meta.dirname, '..', 'vectors', 'formats-2', 'pack.json'), 'utf8')) as Record<string, { hex: string; id: string; units: PackUnit[] }>)['two-units']!
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

/** A pack of `contents` (header + units in the header's order). */
function makePack(contents: Buffer[]): { bytes: Buffer; id: string; headerLength: number } {
  const h = packHeader(contents.map((b) => ({ sha256: sha(b), length: b.length })))
  const byHash = new Map(contents.map((b) => [sha(b), b]))
  return { bytes: Buffer.concat([h.bytes, ...h.units.map((u) => byHash.get(u.sha256)!)]), id: h.id, headerLength: h.bytes.length }
}

async function read(id: string, bytes: Buffer, chunk = bytes.length): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>()
  const r = new PackReader(id, 'the test', (u, b) => {
    got.set(u.sha256, Buffer.from(b))
  })
  for (let i = 0; i < bytes.length; i += chunk) await r.push(bytes.subarray(i, i + chunk))
  await r.end()
  return got
}

const refusal = async (id: string, bytes: Buffer): Promise<string> => {
  try {
    await read(id, bytes)
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('the pack was accepted')
}

describe('format-2 packs', () => {
  const dirs: { cleanup(): Promise<void> }[] = []
  afterAll(async () => {
    for (const d of dirs) await d.cleanup()
  })

  it('pack — the golden vector: its header names it, it is read the same at any chunking (1-byte pieces included), every unit verified', async () => {
    const bytes = Buffer.from(VECTOR.hex, 'hex')
    const h = packHeader(VECTOR.units)
    expect(h.id).toBe(VECTOR.id)
    expect(bytes.subarray(0, h.bytes.length).equals(h.bytes)).toBe(true)
    for (const chunk of [1, 3, 7, bytes.length]) {
      const got = await read(VECTOR.id, bytes, chunk)
      expect([...got.keys()]).toEqual(VECTOR.units.map((u) => u.sha256))
      expect(got.get(sha('hello pack'))!.toString()).toBe('hello pack')
      expect(got.get(sha(''))!.length).toBe(0)
    }
  })

  it('pack — a wrong id, a unit that does not hash to its name, a truncated pack, trailing bytes, a header out of order and a foreign type are refused, naming the pack', async () => {
    const p = makePack([Buffer.from('alpha'), Buffer.from('beta'), Buffer.from('gamma')])
    expect(await refusal('0'.repeat(64), p.bytes)).toMatch(/pack 0000000000000000… from the test: its header does not hash to its id; refusing it/)
    const flipped = Buffer.from(p.bytes)
    flipped[flipped.length - 1]! ^= 1
    expect(await refusal(p.id, flipped)).toMatch(/unit 2 \([0-9a-f]{16}…\) does not hash to its name/)
    expect(await refusal(p.id, p.bytes.subarray(0, p.bytes.length - 2))).toMatch(/it ended after 2 of its 3 units/)
    expect(await refusal(p.id, p.bytes.subarray(0, p.headerLength - 1))).toMatch(/it ended inside its header/)
    expect(await refusal(p.id, Buffer.concat([p.bytes, Buffer.from('x')]))).toMatch(/1 bytes after its last unit/)
    // Two units swapped in the header (re-named so the id matches): not canonical.
    const units = packHeader([{ sha256: sha('alpha'), length: 5 }, { sha256: sha('beta'), length: 4 }]).units
    const body = Buffer.concat([Buffer.from([2]), ...[...units].reverse().map((u) => Buffer.concat([Buffer.from(u.sha256, 'hex'), Buffer.from([u.length])])), Buffer.from([0])])
    const header = Buffer.concat([Buffer.from([2, 5]), Buffer.alloc(4), body])
    header.writeUInt32LE(body.length, 2)
    expect(await refusal(sha(header), header)).toMatch(/unit 1 out of order \(sorted by hash, each once\)/)
    const foreign = Buffer.from(p.bytes)
    foreign[1] = 3
    expect(await refusal(sha(foreign.subarray(0, p.headerLength)), foreign)).toMatch(/it starts 2, 3, not a format-2 pack \(type 5\)/)
    expect(() => packHeader([])).toThrow(/a pack holds 1 to 65536 units, not 0/)
  })

  it('pack store — a server keeps a pack whole and serves its units by range (also through its blob store), finds them again after a restart, keeps nothing of a bad pack, and deletes a pack once its last unit is forgotten', async () => {
    const dir = await tempDir('upswarm-packs-')
    dirs.push(dir)
    const contents = [Buffer.from('first unit'), Buffer.alloc(70_000, 7), Buffer.from('third')]
    const p = makePack(contents)
    const store = new PackStore(join(dir.path, 'packs'))
    await store.open()
    expect(await store.add(p.id, [p.bytes.subarray(0, 100), p.bytes.subarray(100)], 'the test')).toEqual({ units: 3, bytes: p.bytes.length })
    const blobs = new BlobStore(join(dir.path, 'blobs'), store)
    expect(await blobs.has(sha(contents[1]!))).toBe(true)
    expect(await blobs.size(sha(contents[1]!))).toBe(70_000)
    expect((await blobs.readRange(sha(contents[0]!), 6, 4)).toString()).toBe('unit')
    expect((await blobs.readRange(sha(contents[2]!), 0, 100)).toString()).toBe('third') // clamped to the unit
    const streamed: Buffer[] = []
    for await (const c of blobs.createReadStream(sha(contents[1]!), 69_990)) streamed.push(c as Buffer)
    expect(Buffer.concat(streamed)).toEqual(Buffer.alloc(10, 7))
    blobs.closeHandles()

    // A restart: the index comes back from the pack's header.
    const again = new PackStore(join(dir.path, 'packs'))
    await again.open()
    expect((await again.read(sha(contents[2]!), 0, 5))?.toString()).toBe('third')

    // A pack that lost its tail on disk is not kept at the next start (it would serve short units).
    const short = makePack([Buffer.from('short one'), Buffer.from('short two')])
    const other = new PackStore(join(dir.path, 'packs-short'))
    await other.open()
    await other.add(short.id, [short.bytes], 'the test')
    await truncate(join(dir.path, 'packs-short', `${short.id}.pack`), short.bytes.length - 1)
    const reopened = new PackStore(join(dir.path, 'packs-short'))
    await reopened.open()
    expect(reopened.hasPack(short.id)).toBe(false)
    expect(await readdir(join(dir.path, 'packs-short'))).toEqual(['tmp'])

    // A pack whose last byte is wrong: refused, nothing kept (no pack, no temporary file).
    const bad = makePack([Buffer.from('x'), Buffer.from('y')])
    const flipped = Buffer.from(bad.bytes)
    flipped[flipped.length - 1]! ^= 1
    await expect(again.add(bad.id, [flipped], 'server test')).rejects.toThrow(/pack [0-9a-f]{16}… from server test: unit 1 \([0-9a-f]{16}…\) does not hash to its name; refusing it/)
    expect(again.hasPack(bad.id)).toBe(false)
    expect((await readdir(join(dir.path, 'packs', 'tmp'))).length).toBe(0)
    expect((await readdir(join(dir.path, 'packs'))).sort()).toEqual([`${p.id}.pack`, 'tmp'])

    // Prune: a pack stays while one of its units is needed.
    await again.forget(sha(contents[0]!))
    await again.forget(sha(contents[1]!))
    expect(again.hasPack(p.id)).toBe(true)
    expect(await again.read(sha(contents[0]!), 0, 5)).toBeNull()
    await again.forget(sha(contents[2]!))
    expect(again.hasPack(p.id)).toBe(false)
    expect(await readdir(join(dir.path, 'packs'))).toEqual(['tmp'])
  })
})
