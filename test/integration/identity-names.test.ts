// Every identity kind connects with the longest name an identity may have (64 characters). A
// user's JWT rides in its CONNECT line with its permissions, which name the identity several
// times: with nats-server's default max_control_line of 4 KiB, a server named with 14 characters
// or more was refused ("maximum control line exceeded"), which nats.js reported as a timeout after 20 s per node. The
// cluster config (infra/cluster/nats-cluster.ts) raises the limit; docs/ops.md tells operators.
import { describe, expect, it } from 'vitest'
import { IDENTITY_KINDS } from '../../infra/nats/identity.ts'
import { roleConnection } from '../helpers/cluster.ts'

describe('identity names', () => {
  it('identities — every kind connects, and is answered, with a 64-character name', async () => {
    const name = `n${process.pid}`.padEnd(64, 'x')
    for (const kind of IDENTITY_KINDS) {
      const nc = await roleConnection({ kind, name })
      try {
        // A round trip: the server took the CONNECT and answers.
        expect({ kind, rtt: (await nc.rtt()) >= 0 }).toEqual({ kind, rtt: true })
      } finally {
        await nc.close()
      }
    }
  })
})
