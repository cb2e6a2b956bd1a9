// Crash-safe small-file writes: write a temporary file, fsync it, rename it over the target,
// fsync the directory. A reader (or the next run after kill -9) sees the old or the new file.
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { z } from 'zod'
import { UpswarmError } from '../../errors.ts'

/**
 * `durable: false` skips both fsyncs, for a file that checks itself and may be lost (the stat
 * index: a checksum catches a torn file after a crash, and it is only a cache). The rename still
 * replaces it whole for every reader.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, tmpDir: string, mode = 0o644, durable = true): Promise<void> {
  await mkdir(tmpDir, { recursive: true })
  const tmp = join(tmpDir, `${Date.now()}-${randomBytes(6).toString('hex')}`)
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

/** Reads and validates a JSON file; `undefined` when it does not exist. */
export async function readJsonFile<T>(file: string, schema: z.ZodType<T>, what: string): Promise<T | undefined> {
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
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UpswarmError('UPSWARM_E_WORKING_COPY',
      `${what} ${file} is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message}; restore it or re-create the working copy`)
  }
  return parsed.data
}
