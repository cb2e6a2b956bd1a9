// Issue 16 item 3: the fleet view's wire format. Each client machine (daemon, watch, update)
// writes its newest report on `upswarm.fleet.<product>.<identity>` with its own credentials; the
// cluster's permissions let it write under its own name only, and UPSWARM_FLEET keeps one message
// per subject: the newest of each client. Admin reads them (`upswarm fleet`).
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { z } from 'zod'
import { UpswarmError } from '../errors.ts'
import { identityOf } from './identity.ts'
import { FLEET_STREAM, fleetSubject } from './names.ts'
import { withRetry } from './retry.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export const FleetReportSchema = z.object({
  v: z.literal(1),
  product: z.string().regex(UUID),
  /** The identity that sent it; the stored subject's last token is what the cluster vouches for. */
  client: z.string().min(1).max(64),
  /** The working copy's installed revision (0: none yet). */
  rev: z.number().int().min(0),
  /** The client's place in the fleet for staged rollouts, in basis points [0, 10000) (docs/formats.md §1.5: stageOf). */
  stage: z.number().min(0).lt(10_000),
  ring: z.string().max(64).optional(),
  /**
   * The last install's outcome: `ok` (installed, hooks and health check passed or none set),
   * `reverted` (failed its health check or post-install hook and went back: issue 16 item 2),
   * `failed` (the update did not complete), `none` (no update yet in this process).
   */
  health: z.object({
    state: z.enum(['ok', 'reverted', 'failed', 'none']),
    rev: z.number().int().min(0).optional(),
    to: z.number().int().min(0).optional(),
    reason: z.string().max(500).optional(),
    at: z.string().max(40).optional(),
  }),
  /** The last update's bytes by source (R-ACCEL-2): what `fleet` sums into the peer share. */
  last: z.object({
    from: z.number().int().min(0),
    to: z.number().int().min(0),
    bytesFromPeers: z.number().int().min(0),
    bytesFromServers: z.number().int().min(0),
    at: z.string().max(40),
  }).optional(),
  /** The upswarm version the client runs. */
  upswarm: z.string().max(40),
  role: z.enum(['daemon', 'watch', 'update']),
  /** Reports this process sent, this one included, and when it sent it (the rate bound, 1 per 10 s). */
  seq: z.number().int().min(1),
  sentAt: z.string().max(40),
})
export type FleetReport = z.infer<typeof FleetReportSchema>

/** A report with the format version filled in, checked as a reader would. */
export function fleetReportOf(r: Omit<FleetReport, 'v'>): FleetReport {
  return FleetReportSchema.parse({ v: 1, ...r })
}

export async function publishFleetReport(nc: NatsConnection, report: FleetReport): Promise<void> {
  await withRetry(() => jetstream(nc).publish(fleetSubject(report.product, identityOf(nc)), JSON.stringify(report)), { attempts: 3 })
}

/** One stored report, as admin reads it: `from` is the identity the subject names, `storedAt` when the stream took it. */
export type StoredFleetReport = FleetReport & { from: string; storedAt: string; site?: string }

/** How a client is named to an operator: its identity, and `@site` for a site's client (issue 17). */
export const clientLabel = (r: { from: string; site?: string }): string => (r.site ? `${r.from}@${r.site}` : r.from)

/** A stored report that does not parse, said with where it is rather than dropped in silence. */
export interface BadFleetReport { subject: string; seq: number; reason: string }

/**
 * The newest report of every client (of one product, or all), sorted by product and client.
 * Reports whose body does not parse go to `bad` with the reason.
 */
export async function readFleet(nc: NatsConnection, product?: string, bad: BadFleetReport[] = []): Promise<StoredFleetReport[]> {
  if (product !== undefined && !UUID.test(product)) throw new UpswarmError('UPSWARM_E_CONFIG', `--product must be a lowercase UUID (got ${JSON.stringify(product)})`)
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  // `>`: a site's reports carry the site as a fifth token (siteSubjectTransform).
  const filter = fleetSubject(product ?? '*', '>')
  const info = await jsm.streams.info(FLEET_STREAM, { subjects_filter: filter })
  const subjects = Object.keys(info.state.subjects ?? {}).sort()
  const out: StoredFleetReport[] = []
  for (const subject of subjects) {
    const m = await jsm.streams.getMessage(FLEET_STREAM, { last_by_subj: subject })
    if (!m) continue
    const [, , , from = '', site] = subject.split('.')
    let parsed
    try {
      parsed = FleetReportSchema.safeParse(m.json())
    } catch (err) {
      bad.push({ subject, seq: m.seq, reason: `not JSON: ${(err as Error).message}` })
      continue
    }
    if (!parsed.success) {
      bad.push({ subject, seq: m.seq, reason: parsed.error.issues.map((i) => `${i.path.join('.') || 'report'}: ${i.message}`).join('; ') })
      continue
    }
    out.push({ ...parsed.data, from, ...(site ? { site } : {}), storedAt: m.time.toISOString() })
  }
  return out.sort((a, b) => a.product.localeCompare(b.product) || a.from.localeCompare(b.from))
}
