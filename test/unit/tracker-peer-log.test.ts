// Issue 14 item 5: the batch format a tracker instance writes its registry changes in
// (infra/tracker/peer-log.ts).
import { describe, expect, it } from 'vitest'
import { BATCH_FORMAT, BATCH_MAX_BYTES, batchInstance, batchKey, decodeBatch, encodeBatches, isBatchKey, type PeerRecord } from '../../infra/tracker/peer-log.ts'

const peer = (i: number): object => ({ peerId: i.toString(16).padStart(40, '0'), ip: '10.0.0.1', port: 1000 + (i % 60_000), infoHash: 'ab'.repeat(20), left: 0, completed: true, at: i, expires: i + 180_000, owner: 'ip:10.0.0.1' })

describe('tracker peer log', () => {
  it('tracker — a batch carries its records in order, puts and removals alike, under a key naming its instance', () => {
    const records: PeerRecord[] = [{ key: 'p.1', peer: peer(1) }, { key: 'ih.x.2', removed: 42 }, { key: 'p.3', peer: peer(3) }]
    const [only, ...more] = encodeBatches(records)
    expect(more).toEqual([])
    expect(JSON.parse(only!.toString()).v).toBe(BATCH_FORMAT)
    expect(decodeBatch(only!)).toEqual(records)
    const key = batchKey('0123abcd', 7)
    expect([isBatchKey(key), batchInstance(key), isBatchKey('map.ab')]).toEqual([true, '0123abcd', false])
    expect(encodeBatches([])).toEqual([])
  })

  it('tracker — a flush larger than a batch is split, each batch within BATCH_MAX_BYTES, no record lost or cut', () => {
    const records: PeerRecord[] = Array.from({ length: 12_000 }, (_, i) => (i % 5 === 0 ? { key: `k.${i}`, removed: i } : { key: `k.${i}`, peer: peer(i) }))
    const batches = encodeBatches(records)
    expect(batches.length).toBeGreaterThan(1)
    for (const b of batches) expect(b.byteLength).toBeLessThanOrEqual(BATCH_MAX_BYTES)
    expect(batches.flatMap((b) => decodeBatch(b)!)).toEqual(records)
  })

  it('tracker — a batch of another format version, or not JSON, is skipped whole; a malformed record alone is dropped', () => {
    expect(decodeBatch(Buffer.from(JSON.stringify({ v: BATCH_FORMAT + 1, r: [{ k: 'a', d: 1 }] })))).toBeUndefined()
    expect(decodeBatch(Buffer.from('{"v":1,"r":['))).toBeUndefined()
    expect(decodeBatch(Buffer.from('"batch"'))).toBeUndefined()
    const mixed = Buffer.from(JSON.stringify({ v: BATCH_FORMAT, r: [{ k: 'a', d: 1 }, { k: '', d: 2 }, { k: 'b' }, 7, { k: 'c', p: { port: 1 } }] }))
    expect(decodeBatch(mixed)).toEqual([{ key: 'a', removed: 1 }, { key: 'c', peer: { port: 1 } }])
  })
})
