// Issue 13 item 4: many small files written on a worker thread. A first install of 100 000 small
// files spent 7 of its 17 s in the kernel creating and writing them (open 4.4 s, write 2.5 s in a
// CPU profile), one after another on the thread that also receives, decodes and hashes the
// batches. On a worker the creates overlap that work. The kernel's creates themselves do not go
// faster on two threads here (docs/decisions.md), so one worker.
import { chmodSync, writeFileSync } from 'node:fs'
import { Worker } from 'node:worker_threads'

/** A file to write: its bytes, created with `mode` (a chmod after where the umask would take bits). */
export interface FileToWrite {
  readonly path: string
  readonly mode: number
  readonly bytes: Uint8Array
  /** What the caller calls it (its path in the tree), given back with a failure. */
  readonly label?: string
}

export interface WriteFailure {
  readonly path: string
  readonly label?: string
  readonly message: string
  readonly code?: string
}

/** Thrown by `flush` (and by a `write` after a failure): the first file that could not be written. */
export class FileWriteError extends Error {
  constructor(readonly failure: WriteFailure) {
    super(failure.message)
    this.name = 'FileWriteError'
  }
}

/** Writes files, in order per call; `flush` resolves once every file written so far is on disk (not yet fsynced). */
export interface FileWriter {
  write(files: readonly FileToWrite[]): Promise<void>
  flush(): Promise<void>
  close(): Promise<void>
}

/** The process's umask, read once (a file is created with `mode & ~umask`). */
const UMASK = process.umask()

function writeOne(path: string, bytes: Uint8Array, mode: number, umask: number): void {
  writeFileSync(path, bytes, { mode })
  if ((mode & ~umask) !== mode) chmodSync(path, mode)
}

/** Writes on the calling thread: for a few files, where a worker's start costs more than it saves. */
export function inlineFileWriter(): FileWriter {
  let failure: WriteFailure | undefined
  return {
    async write(files) {
      if (failure) throw new FileWriteError(failure)
      for (const f of files) {
        try {
          writeOne(f.path, f.bytes, f.mode, UMASK)
        } catch (err) {
          const e = err as NodeJS.ErrnoException
          failure = { path: f.path, message: e.message, ...(e.code ? { code: e.code } : {}), ...(f.label !== undefined ? { label: f.label } : {}) }
          throw new FileWriteError(failure)
        }
      }
    },
    async flush() {
      if (failure) throw new FileWriteError(failure)
    },
    async close() {},
  }
}

/** Bytes handed to the worker and not yet written, beyond which `write` waits. */
const IN_FLIGHT_MAX = 32 * 1024 * 1024

interface Batch { id: number; paths: string[]; labels: (string | undefined)[]; modes: number[]; ends: number[]; data: ArrayBuffer }
type Reply = { id: number; failure?: WriteFailure }

// The worker's code, run by `eval` (a bundle has no separate file to point a worker at): the same
// writeFileSync + chmod as writeOne, one batch per message, its bytes transferred, not copied.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { writeFileSync, chmodSync } = require('node:fs')
const umask = workerData.umask
let failed = false
parentPort.on('message', (b) => {
  if (failed) return parentPort.postMessage({ id: b.id })
  const data = new Uint8Array(b.data)
  let start = 0
  for (let i = 0; i < b.paths.length; i++) {
    const path = b.paths[i], mode = b.modes[i]
    try {
      writeFileSync(path, data.subarray(start, b.ends[i]), { mode })
      if ((mode & ~umask) !== mode) chmodSync(path, mode)
    } catch (err) {
      failed = true
      return parentPort.postMessage({ id: b.id, failure: { path, label: b.labels[i], message: err.message, code: err.code } })
    }
    start = b.ends[i]
  }
  parentPort.postMessage({ id: b.id })
})
`

/**
 * Writes on a worker thread: `write` copies a call's files into one buffer and transfers it, and
 * waits only when more than IN_FLIGHT_MAX bytes are not yet written. After the first failure the
 * worker writes nothing more, and `write`, `flush` report it.
 */
export function threadedFileWriter(): FileWriter {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { umask: UMASK } })
  let nextId = 0
  let inFlight = 0
  let failure: WriteFailure | undefined
  let crashed: Error | undefined
  const sizes = new Map<number, number>()
  let waiters: (() => void)[] = []
  const wake = (): void => {
    const w = waiters
    waiters = []
    for (const f of w) f()
  }
  worker.on('message', (r: Reply) => {
    inFlight -= sizes.get(r.id) ?? 0
    sizes.delete(r.id)
    if (r.failure && !failure) failure = r.failure
    wake()
  })
  worker.on('error', (err) => {
    crashed = err
    wake()
  })
  const check = (): void => {
    if (failure) throw new FileWriteError(failure)
    if (crashed) throw new FileWriteError({ path: '', message: `the file writer thread failed: ${crashed.message}` })
  }
  const until = async (done: () => boolean): Promise<void> => {
    while (!done() && !failure && !crashed) await new Promise<void>((resolve) => waiters.push(resolve))
    check()
  }
  return {
    async write(files) {
      check()
      if (files.length === 0) return
      let total = 0
      for (const f of files) total += f.bytes.length
      const data = new Uint8Array(total)
      const batch: Batch = { id: nextId++, paths: [], labels: [], modes: [], ends: [], data: data.buffer }
      let at = 0
      for (const f of files) {
        data.set(f.bytes, at)
        at += f.bytes.length
        batch.paths.push(f.path)
        batch.labels.push(f.label)
        batch.modes.push(f.mode)
        batch.ends.push(at)
      }
      sizes.set(batch.id, total)
      inFlight += total
      worker.postMessage(batch, [batch.data])
      await until(() => inFlight <= IN_FLIGHT_MAX)
    },
    flush: () => until(() => sizes.size === 0),
    async close() {
      await worker.terminate()
    },
  }
}
