// Many files made durable at once (issue 13 item 4): a first install of 100 000 small files paid
// an fsync per staged file, ~0.5–3 ms each here, more than everything else it did. Before the
// journal that moves them into place is written, the staged files must be on disk, all of them;
// one syncfs(2) of their file system does that in one call (coreutils' `sync -f`, present on every
// Debian system). Where it is missing or fails, each file is fsynced, many at a time.
import { spawn } from 'node:child_process'
import { fsyncFile } from './blob-store.ts'

/** Below this many files, fsyncs are cheaper than a process. */
const SYNCFS_FROM = 64
const FSYNCS_IN_FLIGHT = 32

function syncfs(dir: string): Promise<boolean> {
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
  let next = 0
  await Promise.all(Array.from({ length: Math.min(FSYNCS_IN_FLIGHT, files.length) }, async () => {
    while (next < files.length) await fsyncFile(files[next++]!)
  }))
}
