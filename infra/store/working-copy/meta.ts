// The working copy's configuration (what it is) and state (where it is), both small JSON
// files written atomically.
import { z } from 'zod'
import { UpswarmError } from '../../errors.ts'
import { UUID_RE } from '../../release/manifest.ts'
import { readJsonFile, writeFileAtomic } from './atomic.ts'
import type { WorkingCopyLayout } from './layout.ts'

const HEX64 = /^[0-9a-f]{64}$/

/** How many revisions the history store keeps when `init` is not told otherwise. */
export const DEFAULT_HISTORY_DEPTH = 3

export const WorkingCopyConfigSchema = z.object({
  format: z.literal(1),
  product: z.string().regex(UUID_RE),
  /** The pinned publisher key: no manifest signed by another key is ever accepted. */
  publicKey: z.string().regex(HEX64),
  clientId: z.string().min(1).max(200),
  /** K: the history store keeps the file versions of the last K revisions. */
  historyDepth: z.number().int().min(1).max(1000),
  /** A private product (`init --private`): its swarm admits fleet members only, under secret topics (docs/protocol.md §5). */
  private: z.boolean().optional(),
})
export type WorkingCopyConfig = z.infer<typeof WorkingCopyConfigSchema>

export const WorkingCopyStateSchema = z.object({
  format: z.literal(1),
  /** The installed revision; 0 before the first checkout. */
  current: z.number().int().min(0),
  /** The newest revision whose signed manifest this client verified; never decreases. */
  newestVerified: z.number().int().min(0),
  /** The highest revision ever installed: the history window ends there. */
  topInstalled: z.number().int().min(0),
  /**
   * Set by a rollback: automatic updates skip revisions up to this one, so the rolled-back
   * release is not reinstalled until a newer one is published. Cleared by an explicit --rev.
   */
  hold: z.number().int().min(1).optional(),
  /**
   * Revisions installed and then taken back because they failed their health check or their
   * post-install hook (issue 16 item 2), oldest first, the last 20: `status` and `history` say them.
   */
  reverted: z.array(z.object({
    rev: z.number().int().min(1),
    /** The revision the working copy went back to. */
    to: z.number().int().min(0),
    at: z.string(),
    phase: z.enum(['postInstall', 'health']),
    reason: z.string(),
  })).optional(),
  /** Id of the last committed apply journal (tells recovery whether a journal committed). */
  lastJournal: z.string().optional(),
  /**
   * The client's own record of the release history, rev → manifest SHA-256, from verified
   * manifests and their `parent` links. Entries are written once and never changed.
   */
  record: z.record(z.string().regex(/^[1-9][0-9]*$/), z.string().regex(HEX64)),
})
export type WorkingCopyState = z.infer<typeof WorkingCopyStateSchema>
export type RevertRecord = NonNullable<WorkingCopyState['reverted']>[number]
/** How many reverts the state keeps. */
export const REVERTS_KEPT = 20

export function initialState(): WorkingCopyState {
  return { format: 1, current: 0, newestVerified: 0, topInstalled: 0, record: {} }
}

export async function readConfig(layout: WorkingCopyLayout): Promise<WorkingCopyConfig> {
  const config = await readJsonFile(layout.config, WorkingCopyConfigSchema, 'working copy config')
  if (!config) {
    throw new UpswarmError('UPSWARM_E_WORKING_COPY',
      `${layout.root} is not an upswarm working copy (no ${layout.config}); create one with \`upswarm init\``)
  }
  return config
}

export async function writeConfig(layout: WorkingCopyLayout, config: WorkingCopyConfig): Promise<void> {
  await writeFileAtomic(layout.config, JSON.stringify(WorkingCopyConfigSchema.parse(config), null, 2) + '\n', layout.tmp)
}

export async function readState(layout: WorkingCopyLayout): Promise<WorkingCopyState> {
  return (await readJsonFile(layout.state, WorkingCopyStateSchema, 'working copy state')) ?? initialState()
}

export async function writeState(layout: WorkingCopyLayout, state: WorkingCopyState): Promise<void> {
  await writeFileAtomic(layout.state, JSON.stringify(state) + '\n', layout.tmp)
}
