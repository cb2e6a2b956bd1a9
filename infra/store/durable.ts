// Many files made durable at once (issue 13 item 4): a first install of 100 000 small files paid
// an fsync per staged file, ~0.5–3 ms each here, more than everything else it did. Before the
// journal that moves them into place is written, the staged files must be on disk, all of them;
// one syncfs(2) of their file system does that in one call (coreutils' `sync -f`, present on every
// Debian system). Where it is missing or fails, each file is fsynced, many at a time.
import { builtin } from '../lazy-builtin.ts'
import type { FileHandle } from 'node:fs/promises'
import { eachLimited } from '../parallel.ts'
import { fsyncFile } from './blob-store.ts'
import { fsyncDir } from './working-copy/atomic.ts'

/** Below this many files, fsyncs are cheaper than a process. */
const SYNCFS_FROM = 64
const FSYNCS_IN_FLIGHT = 32

function syncfs(dir: string): Promise<boolean> {
  // Loaded when needed: child_process brings net and dgram, which `status` (it runs the journal's
  // recovery) never uses. By require: the bundle's import() would start node's ES module loader.
  const { spawn } = builtin('node:child_process')
  return new Promise((resolve) => {
    const child = spawn('sync', ['-f', dir], { stdio: 'ignore' })
    child.once('error', () => resolve(false))
    child.once('close', (code) => resolve(code === 0))
  })
}

/** Makes `files` (all on the file system of `dir`) durable. */
export async function syncFiles(dir: string, files: readonly string[]): Promise<void> {
  if (files.length === 0) return
  if (files.length >= SYNCFS_FROM && (await syncfs(dir))) return
  await eachLimited(files, FSYNCS_IN_FLIGHT, (f) => fsyncFile(f))
}

/**
 * Makes renames and unlinks in `dirs` (all on the file system of `root`) durable. A directory
 * that is gone meanwhile (removed by the same journal) is skipped, as is one that cannot be opened.
 */
export async function syncDirs(root: string, dirs: readonly string[]): Promise<void> {
  if (dirs.length >= SYNCFS_FROM && (await syncfs(root))) return
  await eachLimited(dirs, FSYNCS_IN_FLIGHT, (d) => fsyncDir(d).catch(() => undefined))
}

/**
 * Writes all of `bytes` at the handle's position: a write(2) may take fewer bytes than asked (a
 * disk filling up), and a caller that hashes what it hands over must know every byte landed.
 */
export async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, at, bytes.length - at)
    if (bytesWritten === 0) throw new Error(`no byte written of ${bytes.length - at} (disk full?)`)
    at += bytesWritten
  }
}
