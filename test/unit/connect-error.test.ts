// What a failed NATS connect says: a dial that times out with credentials whose JWT is long enough
// for its CONNECT line to pass a server's default max_control_line names that cause (the server's
// -ERR never reaches the caller: nats.js drops it, and the dial looks like a timeout).
import { describe, expect, it } from 'vitest'
import { connectError, LONG_JWT_BYTES } from '../../infra/nats/connect.ts'

const credsWith = (jwt: string): string => `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAEXAMPLE\n------END USER NKEY SEED------\n`

describe('connect errors', () => {
  it('a timeout with a long JWT names max_control_line; with a short one, or another failure, it does not', () => {
    const timeout = new Error('TIMEOUT')
    const long = connectError(timeout, ['tls://127.0.0.1:4222'], '/etc/upswarm/client.creds', '/ca.pem', credsWith('e'.repeat(LONG_JWT_BYTES + 500)))
    expect(long.code).toBe('UPSWARM_E_NATS')
    expect(long.message).toContain(`The JWT in /etc/upswarm/client.creds is ${LONG_JWT_BYTES + 500} bytes`)
    expect(long.message).toContain('max_control_line')
    // A JWT is base64url: a '-' in it is part of it, not its end.
    const dashed = `${'ab-'.repeat(1_100)}cd`
    expect(connectError(timeout, ['tls://127.0.0.1:4222'], '/c.creds', '/ca.pem', credsWith(dashed)).message).toContain(`is ${dashed.length} bytes`)
    const short = connectError(timeout, ['tls://127.0.0.1:4222'], '/etc/upswarm/client.creds', '/ca.pem', credsWith('e'.repeat(800)))
    expect(short.message).toBe('cannot connect to NATS at tls://127.0.0.1:4222: TIMEOUT')
    const refused = connectError(new Error('connect ECONNREFUSED 127.0.0.1:4222'), ['tls://127.0.0.1:4222'], '/c.creds', '/ca.pem', credsWith('e'.repeat(LONG_JWT_BYTES + 500)))
    expect(refused.message).not.toContain('max_control_line')
  })
})
