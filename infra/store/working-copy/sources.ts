// Issue 11 item 7: a working copy remembers where it came from. `init` records the NATS
// servers, the identity and CA it used, the trackers and the DHT bootstrap, so that `update DIR`
// works like `git pull`; a flag or the environment still wins. A copy made before this file
// existed has none and is read as "nothing recorded".
import { resolve } from 'node:path'
import { z } from 'zod'
import { readJsonFile, writeFileAtomic } from './atomic.ts'
import type { WorkingCopyLayout } from './layout.ts'

export const WorkingCopySourcesSchema = z.object({
  format: z.literal(1),
  /** NATS server URLs, comma-separated as on the command line. */
  nats: z.string().min(1).optional(),
  /** Absolute paths: later commands may run from another directory. */
  creds: z.string().min(1).optional(),
  tlsCa: z.string().min(1).optional(),
  tracker: z.string().min(1).optional(),
  bootstrap: z.string().min(1).optional(),
})
export type WorkingCopySources = z.infer<typeof WorkingCopySourcesSchema>

export type SourceSettings = Partial<Record<'nats' | 'creds' | 'tlsCa' | 'tracker' | 'bootstrap', string | undefined>>

export function sourcesOf(given: SourceSettings): WorkingCopySources {
  const out: WorkingCopySources = { format: 1 }
  for (const key of ['nats', 'tracker', 'bootstrap'] as const) if (given[key]) out[key] = given[key]
  for (const key of ['creds', 'tlsCa'] as const) if (given[key]) out[key] = resolve(given[key])
  return out
}

export async function readSources(layout: WorkingCopyLayout): Promise<WorkingCopySources> {
  return (await readJsonFile(layout.sources, WorkingCopySourcesSchema, 'working copy sources')) ?? { format: 1 }
}

export async function writeSources(layout: WorkingCopyLayout, sources: WorkingCopySources): Promise<void> {
  await writeFileAtomic(layout.sources, JSON.stringify(WorkingCopySourcesSchema.parse(sources), null, 2) + '\n', layout.tmp)
}

/** What a command runs with: each setting from the flag or environment, else as recorded. */
export function withRecorded<T extends SourceSettings>(given: T, recorded: WorkingCopySources): T {
  const out = { ...given }
  for (const key of ['nats', 'creds', 'tlsCa', 'tracker', 'bootstrap'] as const) {
    if (out[key] === undefined && recorded[key] !== undefined) out[key] = recorded[key] as T[typeof key]
  }
  return out
}
