// Alerts for administrators that could not be delivered yet (R-STATUS-3): kept in the working
// copy's metadata, in the order they were raised, until a run with a connection delivers them.
import type { WorkingCopyLayout } from './layout.ts'
import { readJsonFile, writeFileAtomic, type LazySchema } from './atomic.ts'
import type { PendingAlert } from './schemas.ts'

export type { PendingAlert } from './schemas.ts'

/** Issue 13 item 1: zod loads only when there is a queue to read (schemas.ts). */
const pendingSchema: LazySchema<PendingAlert[]> = { load: async () => (await import('./schemas.ts')).PendingAlertsSchema }

export async function readPendingAlerts(layout: WorkingCopyLayout): Promise<PendingAlert[]> {
  return (await readJsonFile(layout.pendingAlerts, pendingSchema, 'the queue of undelivered alerts')) ?? []
}

export async function writePendingAlerts(layout: WorkingCopyLayout, pending: readonly PendingAlert[]): Promise<void> {
  await writeFileAtomic(layout.pendingAlerts, JSON.stringify(pending), layout.tmp)
}
