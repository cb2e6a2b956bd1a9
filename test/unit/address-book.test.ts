// Issue 11 item 1: the peers a daemon remembers — every address a key was seen at (a tracker may
// still list an earlier process's port for the same key), newest first, bounded, kept on disk.
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ADDRESS_BOOK_MAX, AddressBook } from '../../infra/swarm/address-book.ts'

const KEY_A = 'a'.repeat(64)
const KEY_B = 'b'.repeat(64)

describe('address book', () => {
  it('daemon — keeps every address of a key, newest first, bounded, and reads back what it wrote', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'upswarm-book-'))
    const file = join(dir, 'peers.json')
    const book = await AddressBook.open(file, dir)
    book.remember('127.0.0.1', 4001, KEY_A)
    book.remember('127.0.0.1', 4002, KEY_A)
    book.remember('127.0.0.1', 4001, KEY_A)
    expect(book.list().map((p) => p.port)).toEqual([4001, 4002])
    for (let i = 0; i < ADDRESS_BOOK_MAX + 10; i++) book.remember('127.0.0.1', 5000 + i, KEY_B)
    expect(book.list()).toHaveLength(ADDRESS_BOOK_MAX)
    expect(book.list()[0]!.port).toBe(5000 + ADDRESS_BOOK_MAX + 9)
    await book.flush()
    expect((await AddressBook.open(file, dir)).list()).toEqual(book.list())
    // A damaged file is a cache lost, not an error.
    await writeFile(file, '{"format":1,"peers":[{"host":')
    expect((await AddressBook.open(file, dir)).list()).toEqual([])
  })
})
