// Alerts for administrators that could not be delivered yet (R-STATUS-3): kept in the working
// copy's metadata, in the order they were raised, until a run with a connection delivers them.
import { z } from 'zod'
import type { WorkingCopyLayout } from './layout.ts'
import { readJsonFile, writeFileAtomic } from './atomic.ts'

/** An alert as the updater raised it (its shape is the updater's), plus why it was not delivered. */
export const PendingAlertSchema = z.object({ alert: z.unknown(), reason: z.string() })
export type PendingAlert = z.infer<typeof PendingAlertSchema>

const PendingAlertsSchema = z.array(PendingAlertSchema)

export async function readPendingAlerts(layout: WorkingCopyLayout): Promise<PendingAlert[]> {
  return (await readJsonFile(layout.pendingAlerts, PendingAlertsSchema, 'the queue of undelivered alerts')) ?? []
}

export async function writePendingAlerts(layout: WorkingCopyLayout, pending: readonly PendingAlert[]): Promise<void> {
  await writeFileAtomic(layout.pendingAlerts, JSON.stringify(pending), layout.tmp)
}
