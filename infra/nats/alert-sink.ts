// R-STATUS-3: alerts for administrators go to the durable alert stream, one subject per
// product; the message id makes a retried alert count once.
import { jetstream } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { sha256Hex } from '../release/hash.ts'
import { identityOf } from './identity.ts'
import { alertSubject } from './names.ts'
import { withRetry } from './retry.ts'

export interface Alert {
  product: string
  clientId: string
  path: string
  rev: number
  targetRev: number
}

export function jetStreamAlertSink(nc: NatsConnection): { publish(alert: Alert): Promise<void> } {
  const js = jetstream(nc)
  return {
    async publish(alert) {
      const body = JSON.stringify(alert)
      const id = sha256Hex(`${alert.product}:${alert.clientId}:${alert.path}:${alert.rev}:${alert.targetRev}`)
      await withRetry(() => js.publish(alertSubject(alert.product, identityOf(nc)), body, { msgID: id }), { attempts: 10 })
    },
  }
}
