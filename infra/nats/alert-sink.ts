// R-STATUS-3: alerts for administrators go to the durable alert stream, one subject per
// product; the message id makes a retried alert count once.
import { jetstream } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { sha256Hex } from '../release/hash.ts'
import { identityOf } from './identity.ts'
import { alertSubject } from './names.ts'
import { withRetry } from './retry.ts'

/** A file's alert (R-STATUS-3) names its path; a health alert (issue 16 item 2) its time. */
export type Alert = { product: string; clientId: string; rev: number } & ({ path: string; targetRev: number } | { type: 'health'; to: number; at: string })

export function jetStreamAlertSink(nc: NatsConnection): { publish(alert: Alert): Promise<void> } {
  const js = jetstream(nc)
  return {
    async publish(alert) {
      const body = JSON.stringify(alert)
      // The sending identity is part of it: two identities' alerts are two alerts, whatever their bodies say.
      const id = sha256Hex(`${identityOf(nc)}:${'path' in alert
        ? `${alert.product}:${alert.clientId}:${alert.path}:${alert.rev}:${alert.targetRev}`
        : `${alert.type}:${alert.product}:${alert.clientId}:${alert.rev}:${alert.to}:${alert.at}`}`)
      await withRetry(() => js.publish(alertSubject(alert.product, identityOf(nc)), body, { msgID: id }), { attempts: 10 })
    },
  }
}
