// Issue 14 item 1: a swarm download's whole-blob digests from its pieces as they are accepted —
// the in-order ones from memory, those after a gap read back once from the file they went to.
import { describe, expect, it } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { InOrderDigests } from '../../infra/release/hash.ts'
import { tempDir } from '../helpers/cluster.ts'

const PIECE = 64 * 1024
const hex = (algo: string, b: Uint8Array): string => createHash(algo).update(b).digest('hex')

/** Writes `blob`'s pieces to a file in `order`, feeding each to the digests as the download does. */
async function download(blob: Buffer, order: number[], withSha1: boolean): Promise<{ sha256: string; sha1?: string; size: number; readBack: number }> {
  const dir = await tempDir('in-order-')
  const fh = await open(join(dir.path, 'blob'), 'w+')
  let readBack = 0
  const counting = { read: (buf: Buffer, off: number, len: number, pos: number) => { readBack += len; return fh.read(buf, off, len, pos) } }
  try {
    const digests = new InOrderDigests(blob.length, withSha1, PIECE)
    for (const i of order) {
      const piece = blob.subarray(i * PIECE, Math.min(blob.length, (i + 1) * PIECE))
      await fh.write(piece, 0, piece.length, i * PIECE)
      digests.accepted(i, piece, hex('sha256', piece))
    }
    return { ...(await digests.digests(counting)), readBack }
  } finally {
    await fh.close()
    await dir.cleanup()
  }
}

describe('whole-blob digests from accepted pieces', () => {
  const blob = randomBytes(5 * PIECE + 1234)
  const want = { sha256: hex('sha256', blob), sha1: hex('sha1', blob), size: blob.length }

  it('swarm — pieces in order are hashed as they arrive: SHA-256, SHA-1 and size of the whole, nothing read back', async () => {
    expect(await download(blob, [0, 1, 2, 3, 4, 5], true)).toEqual({ ...want, readBack: 0 })
  })

  it('swarm — pieces out of order give the same digests; what was next in order when it came is not read back', async () => {
    // 0, 1, 2 and 3 each arrive when they are next; 4 and 5 came early and are read back.
    const got = await download(blob, [0, 1, 4, 2, 5, 3], true)
    expect(got).toEqual({ ...want, readBack: blob.length - 4 * PIECE })
    const noSha1 = await download(blob, [5, 4, 3, 2, 1, 0], false)
    expect(noSha1).toMatchObject({ sha256: want.sha256, size: want.size })
    expect(noSha1).not.toHaveProperty('sha1')
  })

  it('swarm — a one-piece blob takes its piece digest and a one-shot SHA-1; a missing piece shows as a short size', async () => {
    const small = randomBytes(1000)
    expect(await download(small, [0], true)).toEqual({ sha256: hex('sha256', small), sha1: hex('sha1', small), size: 1000, readBack: 0 })
    // The commit compares size, SHA-256 and SHA-1 with the signed entry: a file cut short cannot pass.
    const short = await download(blob, [0, 1, 2], true)
    expect(short.size).toBeLessThan(blob.length)
    expect(short.sha256).not.toBe(want.sha256)
  })
})
