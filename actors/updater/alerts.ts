// R-STATUS-3: alerts for administrators about files changed by hand and out of date. An alert
// that cannot be delivered (no connection, a failed publish) is kept in the working copy's
// metadata and delivered by the next run that has an alert sink; runs report both truthfully.
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import type { Entry } from '../../infra/release/manifest.ts'
import { readPendingAlerts, writePendingAlerts } from '../../infra/store/working-copy/pending-alerts.ts'
import type { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import type { AlertInput, LocalEntry } from '../../machines/file-status.machine.ts'
import type { RunTarget } from '../../machines/update-run.machine.ts'
import type { RunSession } from './run-session.ts'
import type { UpdaterLog } from './session.ts'
import type { AlertSink, EntrySummary, UpdaterAlert } from '../../infra/release/source.ts'

export async function publishAlert(session: RunSession, input: AlertInput, target: RunTarget): Promise<void> {
  const wc = session.wc
  const alert: UpdaterAlert = {
    type: 'conflict',
    product: wc.config.product,
    clientId: wc.config.clientId,
    path: input.path,
    rev: target.from,
    targetRev: target.to,
    expected: input.facts.target ? summarize(input.facts.target) : null,
    found: input.facts.local ? summarize(input.facts.local) : null,
    at: new Date().toISOString(),
  }
  try {
    if (!session.opts.alerts) throw new Error('no connection to the servers')
    await session.opts.alerts.publish(alert)
  } catch (err) {
    const reason = errorMessage(err)
    await session.queueAlert(alert, reason)
    session.opts.log.warn({ alert, reason }, `${input.path} was changed by hand and is out of date: left alone; the administrators' alert was not delivered (${reason}), kept for the next connected run`)
    throw new UpswarmError('UPSWARM_E_NO_SERVER', `the alert about ${input.path} was not delivered: ${reason}`, { cause: err })
  }
  session.opts.log.warn({ alert }, `${input.path} was changed by hand and is out of date: left alone, administrators alerted`)
}

/** Delivers the alerts earlier runs could not; returns how many were delivered. Never throws. */
export async function deliverPendingAlerts(wc: WorkingCopy, sink: AlertSink, log: UpdaterLog): Promise<number> {
  const pending = await readPendingAlerts(wc.layout)
  if (pending.length === 0) return 0
  const left = []
  for (const p of pending) {
    try {
      await sink.publish(p.alert as UpdaterAlert)
    } catch (err) {
      left.push({ ...p, reason: errorMessage(err) })
    }
  }
  await writePendingAlerts(wc.layout, left)
  const delivered = pending.length - left.length
  log.info({ delivered, pending: left.length }, `delivered ${delivered} alert(s) of earlier runs; ${left.length} still pending`)
  return delivered
}

function summarize(e: Entry | LocalEntry): EntrySummary {
  switch (e.kind) {
    case 'file':
      return { kind: 'file', size: e.size, mode: e.mode, sha1: e.sha1, sha256: e.sha256 }
    case 'symlink':
      return { kind: 'symlink', target: e.target }
    case 'dir':
      return { kind: 'dir' }
    case 'other':
      return { kind: 'other' }
  }
}
