// Pushes an account JWT to a running cluster through the system account: every server of a
// `full` resolver stores it and applies it at once (revocations close the revoked users'
// connections). No server restarts.
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'

const CLAIMS_UPDATE = '$SYS.REQ.CLAIMS.UPDATE'

export async function pushAccount(sys: NatsConnection, jwt: string): Promise<void> {
  const reply = await sys.request(CLAIMS_UPDATE, jwt, { timeout: 5000 })
  const body = reply.json<{ data?: { code?: number; message?: string }; error?: { code?: number; description?: string } }>()
  if (body.error || (body.data?.code !== undefined && body.data.code !== 200)) {
    throw new UpswarmError('UPSWARM_E_NATS', `the cluster refused the account update: ${body.error?.description ?? body.data?.message ?? JSON.stringify(body)}`)
  }
}
