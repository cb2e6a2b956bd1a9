// Issue 11 item 7: a working copy remembers where it came from. `init` records the NATS
// servers, the identity and CA it used, the trackers, the DHT bootstrap and its site, so that `update DIR`
// works like `git pull`; a flag or the environment still wins. A copy made before this file
// existed has none and is read as "nothing recorded".
import { resolve } from 'node:path'
import { readJsonFile, writeFileAtomic, type LazySchema } from './atomic.ts'
import type { WorkingCopyLayout } from './layout.ts'
import type { WorkingCopySources } from './schemas.ts'

export type { WorkingCopySources } from './schemas.ts'

/** Issue 13 item 1: zod loads only when this file is read or written (schemas.ts). */
const sourcesSchema: LazySchema<WorkingCopySources> = { load: async () => (await import('./schemas.ts')).WorkingCopySourcesSchema }

export type SourceSettings = Partial<Record<'nats' | 'creds' | 'tlsCa' | 'tracker' | 'bootstrap' | 'site', string | undefined>>

export function sourcesOf(given: SourceSettings): WorkingCopySources {
  const out: WorkingCopySources = { format: 1 }
  for (const key of ['nats', 'tracker', 'bootstrap', 'site'] as const) if (given[key]) out[key] = given[key]
  for (const key of ['creds', 'tlsCa'] as const) if (given[key]) out[key] = resolve(given[key])
  return out
}

export async function readSources(layout: WorkingCopyLayout): Promise<WorkingCopySources> {
  return (await readJsonFile(layout.sources, sourcesSchema, 'working copy sources')) ?? { format: 1 }
}

export async function writeSources(layout: WorkingCopyLayout, sources: WorkingCopySources): Promise<void> {
  await writeFileAtomic(layout.sources, JSON.stringify((await sourcesSchema.load()).parse(sources), null, 2) + '\n', layout.tmp)
}

/** What a command runs with: each setting from the flag or environment, else as recorded. */
export function withRecorded<T extends SourceSettings>(given: T, recorded: WorkingCopySources): T {
  const out = { ...given }
  for (const key of ['nats', 'creds', 'tlsCa', 'tracker', 'bootstrap', 'site'] as const) {
    if (out[key] === undefined && recorded[key] !== undefined) out[key] = recorded[key] as T[typeof key]
  }
  return out
}
