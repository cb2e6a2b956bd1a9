// The creds authenticator on node:crypto (infra/nats/creds-auth.ts) answers the server's nonce
// exactly as nats.js's tweetnacl one does (Ed25519 signatures are deterministic), and a damaged
// creds file is a config error naming it. The integration suites connect through it everywhere.
import { describe, expect, it } from 'vitest'
import { createAccount, createUser, encodeUser, fmtCreds } from '@nats-io/jwt'
import { credsAuthenticator } from '@nats-io/transport-node'
import { credsAuth } from '../../infra/nats/creds-auth.ts'

async function someCreds(): Promise<string> {
  const account = createAccount()
  const user = createUser()
  const jwt = await encodeUser('someone', user, account)
  return new TextDecoder().decode(fmtCreds(jwt, user))
}

describe('credsAuth (issue 15 item 4: start-up)', () => {
  it('answers a nonce with the same jwt, nkey and signature as nats.js', async () => {
    for (let i = 0; i < 5; i++) {
      const creds = await someCreds()
      const nonce = `nonce-${i}-${crypto.randomUUID()}`
      const theirs = credsAuthenticator(new TextEncoder().encode(creds))(nonce)
      const ours = credsAuth(creds, 'x.creds')(nonce)
      expect(ours).toEqual(theirs)
    }
  })

  it('refuses a damaged seed or a file without the two blocks, naming the file', async () => {
    const creds = await someCreds()
    const seed = /\n(SU[A-Z2-7]+)\n/.exec(creds)![1]!
    const flipped = seed.slice(0, 10) + (seed[10] === 'A' ? 'B' : 'A') + seed.slice(11)
    expect(() => credsAuth(creds.replace(seed, flipped), 'bad.creds')).toThrow(/bad\.creds: the nkey seed is damaged/)
    expect(() => credsAuth(creds.replace(seed, seed.replace(/[A-Z]/, '1')), 'bad.creds')).toThrow(/bad\.creds: the nkey seed is not base32/)
    expect(() => credsAuth('nothing here', 'empty.creds')).toThrow(/empty\.creds is not a NATS creds file/)
  })
})
