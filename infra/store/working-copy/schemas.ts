// The zod schemas of the working copy's small JSON files (config, state, sources, undelivered
// alerts, apply journal). Loaded only when a file needs zod (issue 13 item 1, docs/decisions.md
// "Start-up without zod"): a short command such as `status --offline` reads config.json and
// state.json through the hand-written checks in meta.ts, which accept exactly what these schemas
// accept unchanged, and imports this module (and zod) only to write, or to say what is wrong
// with a file that fails them.
import { z } from 'zod'
import { UUID_RE } from '../../release/manifest-core.ts'

const HEX64 = /^[0-9a-f]{64}$/

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

export const RevertRecordSchema = z.object({
  rev: z.number().int().min(1),
  /** The revision the working copy went back to. */
  to: z.number().int().min(0),
  at: z.string(),
  phase: z.enum(['postInstall', 'health']),
  reason: z.string(),
})

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
  reverted: z.array(RevertRecordSchema).optional(),
  /** Id of the last committed apply journal (tells recovery whether a journal committed). */
  lastJournal: z.string().optional(),
  /**
   * The revisions whose files the history store held in full after the last retain (R-ROLLBACK):
   * an update that changes nothing and keeps the same revisions skips listing and collecting it.
   */
  retained: z.array(z.number().int().min(1)).max(1000).optional(),
  /**
   * The client's own record of the release history, rev → manifest SHA-256, from verified
   * manifests and their `parent` links. Entries are written once and never changed.
   */
  record: z.record(z.string().regex(/^[1-9][0-9]*$/), z.string().regex(HEX64)),
})
export type WorkingCopyState = z.infer<typeof WorkingCopyStateSchema>

export const WorkingCopySourcesSchema = z.object({
  format: z.literal(1),
  /** NATS server URLs, comma-separated as on the command line. */
  nats: z.string().min(1).optional(),
  /** Absolute paths: later commands may run from another directory. */
  creds: z.string().min(1).optional(),
  tlsCa: z.string().min(1).optional(),
  tracker: z.string().min(1).optional(),
  bootstrap: z.string().min(1).optional(),
  /** Issue 14 item 4: the machine's site label as given (`auto` is derived again by each command). */
  site: z.string().min(1).max(64).optional(),
})
export type WorkingCopySources = z.infer<typeof WorkingCopySourcesSchema>

/** An alert as the updater raised it (its shape is the updater's), plus why it was not delivered. */
export const PendingAlertSchema = z.object({ alert: z.unknown(), reason: z.string() })
export type PendingAlert = z.infer<typeof PendingAlertSchema>
export const PendingAlertsSchema = z.array(PendingAlertSchema)

const Slot = z.string().regex(/^(new|old)\/[0-9]+$/)
export const JournalOpSchema = z.discriminatedUnion('op', [
  /** Move a file or symlink out of the tree (to staging/old). */
  z.object({ op: z.literal('unlink'), path: z.string(), backup: Slot }),
  /** Remove an empty directory; when not `required`, a non-empty one is left in place. */
  z.object({ op: z.literal('rmdir'), path: z.string(), mode: z.number().int(), required: z.boolean() }),
  /**
   * Make a directory. `owned` (issue 13 item 4, journal format 2): the run makes it where nothing
   * was and writes the new files straight into it, so undoing it removes it with its content.
   */
  z.object({ op: z.literal('mkdir'), path: z.string(), mode: z.number().int(), owned: z.literal(true).optional() }),
  /** Move what is at `path` to `backup`, then the staged entry to `path`. */
  z.object({ op: z.literal('put'), path: z.string(), staged: Slot, backup: Slot }),
])
export const JournalSchema = z.object({
  /** 2 when an op is `owned`: a client that does not know them refuses the journal instead of undoing it by halves. */
  format: z.union([z.literal(1), z.literal(2)]),
  id: z.string(),
  from: z.number().int().min(0),
  to: z.number().int().min(0),
  ops: z.array(JournalOpSchema),
})
export type JournalOp = z.infer<typeof JournalOpSchema>
export type Journal = z.infer<typeof JournalSchema>
