// Crash-safe small-file writes: write a temporary file, fsync it, rename it over the target,
// fsync the directory. A reader (or the next run after kill -9) sees the old or the new file.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { z } from 'zod'
import { UpswarmError } from '../../errors.ts'
import { holdTemp, tempName } from '../temp-files.ts'

/**
 * `durable: false` skips both fsyncs, for a file that checks itself and may be lost (the stat
 * index: a checksum catches a torn file after a crash, and it is only a cache). The rename still
 * replaces it whole for every reader.
 */

export async function writeFileAtomic(file: string, data: string | Uint8Array, tmpDir: string, mode = 0o644, durable = true): Promise<void> {
  await mkdir(tmpDir, { recursive: true })
  // Held while it is written: a run's recovery in this process leaves it alone (temp-files.ts).
  const held = holdTemp(tmpDir)
  const tmp = held.path
  try {
    const fh = await open(tmp, 'wx', mode)
    try {
      await fh.writeFile(data)
      if (durable) await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, file)
    if (durable) await fsyncDir(dirname(file))
  } catch (err) {
    await rm(tmp, { force: true })
    throw new UpswarmError('UPSWARM_E_IO', `cannot write ${file}: ${(err as Error).message}`, { cause: err })
  } finally {
    held.release()
  }
}

/**
 * `writeFileAtomic` with `durable: false`, in synchronous calls: for a large cache file written
 * once per command (the stat index), where the promise form's 512 KiB thread-pool steps cost more
 * than the write.
 */
export function writeFileAtomicSync(file: string, data: Uint8Array, tmpDir: string, mode = 0o644): void {
  const tmp = tempName(tmpDir)
  try {
    mkdirSync(tmpDir, { recursive: true })
    writeFileSync(tmp, data, { mode, flag: 'wx' })
    renameSync(tmp, file)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw new UpswarmError('UPSWARM_E_IO', `cannot write ${file}: ${(err as Error).message}`, { cause: err })
  }
}

/** Makes renames and unlinks in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * A schema loaded when it is needed (issue 13 item 1: short commands load no zod): `quick`, when
 * given, is a hand-written check that accepts only what the schema accepts unchanged; a value it
 * accepts is taken as it is, anything else goes through the schema, which says what is wrong.
 */
export interface LazySchema<T> {
  quick?: (value: unknown) => value is T
  load: () => Promise<z.ZodType<T>>
}

/** Reads and validates a JSON file; `undefined` when it does not exist. */
export async function readJsonFile<T>(file: string, schemaOrLazy: z.ZodType<T> | LazySchema<T>, what: string): Promise<T | undefined> {
  let raw: string
  try {
    raw = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UpswarmError('UPSWARM_E_IO', `cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_WORKING_COPY', `${what} ${file} is not valid JSON; restore it or re-create the working copy`, { cause: err })
  }
  const lazy = 'safeParse' in schemaOrLazy ? undefined : schemaOrLazy
  if (lazy?.quick?.(json)) return json
  const schema = lazy ? await lazy.load() : schemaOrLazy as z.ZodType<T>
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_WORKING_COPY',
      `${what} ${file} is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message}; restore it or re-create the working copy`)
  }
  return parsed.data
}
