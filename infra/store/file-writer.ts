// Issue 13 item 4: many small files written on a worker thread. A first install of 100 000 small
// files spent 7 of its 17 s in the kernel creating and writing them (open 4.4 s, write 2.5 s in a
// CPU profile), one after another on the thread that also receives, decodes and hashes the
// batches. On a worker the creates overlap that work. The kernel's creates themselves do not go
// faster on two threads here (docs/decisions.md), so one worker.
import * as fs from 'node:fs'
import { builtin } from '../lazy-builtin.ts'

/** A file to write: its bytes, created with `mode` (a chmod after where the umask would take bits). */
export interface FileToWrite {
  readonly path: string
  readonly mode: number
  readonly bytes: Uint8Array
  /** What the caller calls it (its path in the tree), given back with a failure. */
  readonly label?: string
  /** Written as a new file (never over one) and then renamed to this path. */
  readonly renameTo?: string
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

/** What a file is right after it was written (its fstat): the stat cache takes it instead of an lstat. */
export interface WrittenStat {
  mode: number
  size: bigint
  ino: bigint
  mtimeNs: bigint
  ctimeNs: bigint
}

export interface FileWriterOptions {
  /** Called with each file's stat once it is written (in order per `write` call). */
  onWritten?: (file: { path: string; label?: string }, st: WrittenStat) => void
}

/** A call's files: their bytes one after another in `data`, file i ending at `ends[i]`. */
interface BatchFiles { paths: string[]; labels: (string | undefined)[]; renames: (string | undefined)[]; modes: ArrayLike<number>; ends: ArrayLike<number>; data: Uint8Array }
/** Five numbers a file (mode, size, ino, mtimeNs, ctimeNs), for the files written before any failure. */
interface BatchResult { stats: BigInt64Array; failure?: WriteFailure }
/** The numbers a file in `BatchResult.stats` (writeBatch, self-contained, writes its own literal 5). */
const STAT_FIELDS = 5

/**
 * Writes a batch's files, each created with its mode (a fchmod where the umask took bits) and
 * fstat'ed before it is closed (then renamed, if it is to be); stops at the first failure. Self-contained: the worker runs its
 * source text, and the inline writer calls it, so both write alike.
 */
function writeBatch(fs: typeof import('node:fs'), b: BatchFiles, umask: number): BatchResult {
  const stats = new BigInt64Array(b.paths.length * 5)
  let start = 0
  for (let i = 0; i < b.paths.length; i++) {
    const path = b.paths[i]!
    const mode = b.modes[i]!
    try {
      const renameTo = b.renames[i]
      const fd = fs.openSync(path, renameTo === undefined ? 'w' : 'wx', mode)
      try {
        const end = b.ends[i]!
        let at = start
        while (at < end) at += fs.writeSync(fd, b.data, at, end - at)
        if ((mode & ~umask) !== mode) fs.fchmodSync(fd, mode)
        const st = fs.fstatSync(fd, { bigint: true })
        stats[i * 5] = st.mode
        stats[i * 5 + 1] = st.size
        stats[i * 5 + 2] = st.ino
        stats[i * 5 + 3] = st.mtimeNs
        stats[i * 5 + 4] = st.ctimeNs
      } finally {
        fs.closeSync(fd)
      }
      if (renameTo !== undefined) fs.renameSync(path, renameTo)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      const label = b.labels[i]
      return { stats: stats.slice(0, i * 5), failure: { path, message: e.message, ...(e.code ? { code: e.code } : {}), ...(label !== undefined ? { label } : {}) } }
    }
    start = b.ends[i]!
  }
  return { stats }
}

/** A call's files as one batch: their bytes copied into one buffer (transferred to the worker, not copied again). */
function batchOf(files: readonly FileToWrite[]): BatchFiles & { modes: Int32Array; ends: Uint32Array } {
  let total = 0
  for (const f of files) total += f.bytes.length
  const n = files.length
  const b = { paths: new Array<string>(n), labels: new Array<string | undefined>(n), renames: new Array<string | undefined>(n), modes: new Int32Array(n), ends: new Uint32Array(n), data: new Uint8Array(total) }
  let at = 0
  for (let i = 0; i < n; i++) {
    const f = files[i]!
    b.data.set(f.bytes, at)
    at += f.bytes.length
    b.paths[i] = f.path
    b.labels[i] = f.label
    b.renames[i] = f.renameTo
    b.modes[i] = f.mode
    b.ends[i] = at
  }
  return b
}

function report(b: Pick<BatchFiles, 'paths' | 'labels'>, stats: BigInt64Array, onWritten: FileWriterOptions['onWritten']): void {
  if (!onWritten) return
  for (let i = 0; i * STAT_FIELDS < stats.length; i++) {
    const o = i * STAT_FIELDS
    const label = b.labels[i]
    onWritten({ path: b.paths[i]!, ...(label !== undefined ? { label } : {}) },
      { mode: Number(stats[o]), size: stats[o + 1]!, ino: stats[o + 2]!, mtimeNs: stats[o + 3]!, ctimeNs: stats[o + 4]! })
  }
}

/** Files the inline writer writes in a row before the event loop gets a turn. */
const INLINE_RUN = 64

/** Writes on the calling thread: for a few files, where a worker's start costs more than it saves. */
export function inlineFileWriter(opts: FileWriterOptions = {}): FileWriter {
  let failure: WriteFailure | undefined
  return {
    async write(files) {
      if (failure) throw new FileWriteError(failure)
      // A few files at a time, with a turn for the event loop between (a daemon serves peers meanwhile).
      for (let i = 0; i < files.length; i += INLINE_RUN) {
        if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve))
        const b = batchOf(files.slice(i, i + INLINE_RUN))
        const r = writeBatch(fs, b, UMASK)
        report(b, r.stats, opts.onWritten)
        if (r.failure) {
          failure = r.failure
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

type Reply = { id: number } & Partial<BatchResult>

// The worker's code, run by `eval` (a bundle has no separate file to point a worker at): the same
// writeBatch, one batch per message, its bytes and stats transferred, not copied.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const fs = require('node:fs')
const writeBatch = ${writeBatch.toString()}
let failed = false
parentPort.on('message', (m) => {
  if (failed) return parentPort.postMessage({ id: m.id })
  const paths = m.paths.split('\\0')
  const renames = new Array(paths.length)
  for (const [i, to] of m.renames) renames[i] = to
  const r = writeBatch(fs, { paths, labels: [], renames, modes: m.modes, ends: m.ends, data: new Uint8Array(m.data) }, workerData.umask)
  if (r.failure) failed = true
  parentPort.postMessage({ id: m.id, ...r }, [r.stats.buffer])
})
`

/**
 * Writes on a worker thread: `write` copies a call's files into one buffer and transfers it, and
 * waits only when more than IN_FLIGHT_MAX bytes are not yet written. After the first failure the
 * worker writes nothing more, and `write`, `flush` report it.
 */
export function threadedFileWriter(opts: FileWriterOptions = {}): FileWriter {
  const worker = new (builtin('node:worker_threads').Worker)(WORKER_SOURCE, { eval: true, workerData: { umask: UMASK } })
  let nextId = 0
  let inFlight = 0
  let failure: WriteFailure | undefined
  let crashed: Error | undefined
  const pending = new Map<number, { bytes: number; paths: string[]; labels: (string | undefined)[] }>()
  let waiters: (() => void)[] = []
  const wake = (): void => {
    const w = waiters
    waiters = []
    for (const f of w) f()
  }
  worker.on('message', (r: Reply) => {
    const sent = pending.get(r.id)!
    pending.delete(r.id)
    inFlight -= sent.bytes
    if (r.stats) report(sent, r.stats, opts.onWritten)
    if (r.failure && !failure) {
      // The worker has no labels (not sent): the failed file's is here.
      const label = sent.labels[sent.paths.indexOf(r.failure.path)]
      failure = { ...r.failure, ...(label !== undefined ? { label } : {}) }
    }
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
      const b = batchOf(files)
      const id = nextId++
      pending.set(id, { bytes: b.data.length, paths: b.paths, labels: b.labels })
      inFlight += b.data.length
      // One string for the paths (a path cannot hold NUL) and typed arrays, transferred: cloning a
      // message of 3 000 small strings cost more than writing its files' bytes.
      const renames: [number, string][] = []
      b.renames.forEach((to, i) => { if (to !== undefined) renames.push([i, to]) })
      const message = { id, paths: b.paths.join('\0'), renames, modes: b.modes, ends: b.ends, data: b.data.buffer }
      worker.postMessage(message, [b.data.buffer as ArrayBuffer, b.modes.buffer as ArrayBuffer, b.ends.buffer as ArrayBuffer])
      await until(() => inFlight <= IN_FLIGHT_MAX)
    },
    flush: () => until(() => pending.size === 0),
    async close() {
      await worker.terminate()
    },
  }
}
