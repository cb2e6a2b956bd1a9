import { afterEach, describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode, encodeAccount } from '@nats-io/jwt'
import { fromSeed } from '@nats-io/nkeys'
import { Authority } from '../../infra/auth/authority.ts'
import { CLIENT_SERVICES, CLIENT_STREAMS } from '../../infra/auth/permissions.ts'

const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})
const tempAuthority = async (): Promise<Authority> => {
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-accounts-'))
  dirs.push(dir)
  return Authority.open(dir)
}
const claimsOf = (jwt: string): Record<string, unknown> => decode(jwt).nats as Record<string, unknown>
const credsAccount = async (file: string): Promise<string> => {
  const jwt = /BEGIN NATS USER JWT-+\s+(\S+)/.exec(await readFile(file, 'utf8'))![1]!
  return String((decode(jwt).nats as { issuer_account?: string }).issuer_account)
}

describe('authority — client machines in CLIENTS, roles in UPSWARM', () => {
  it('authority — a client is a user of CLIENTS, a role of UPSWARM; CLIENTS imports exactly what UPSWARM exports and has no JetStream', async () => {
    const authority = await tempAuthority()
    const keys = authority.accountPublicKeys
    expect(await credsAccount((await authority.issue({ kind: 'client', name: 'c1' })).file)).toBe(keys.clients)
    expect(await credsAccount((await authority.issue({ kind: 'server', name: 's1' })).file)).toBe(keys.upswarm)
    const state = JSON.parse(await readFile(authority.paths.file, 'utf8')) as { account: { jwt: string }; clients: { jwt: string } }
    const upswarm = claimsOf(state.account.jwt) as { exports: { subject: string; type: string }[]; imports: { subject: string; account: string }[] }
    const clients = claimsOf(state.clients.jwt) as { imports: { subject: string; type: string; account: string }[]; limits: Record<string, number> }
    const exported = upswarm.exports.map((e) => `${e.type} ${e.subject}`).sort()
    expect(exported).toEqual([...CLIENT_SERVICES.map((s) => `service ${s}`), ...CLIENT_STREAMS.map((s) => `stream ${s}`)].sort())
    expect(clients.imports.map((i) => `${i.type} ${i.subject}`).sort()).toEqual(exported)
    expect(clients.imports.every((i) => i.account === keys.upswarm)).toBe(true)
    expect(upswarm.imports.map((i) => i.subject).sort()).toEqual(['upswarm.events.daemon.*', 'upswarm.inspect.daemon.*', 'upswarm.inspect.updater.*'])
    expect(upswarm.imports.every((i) => i.account === keys.clients)).toBe(true)
    expect(clients.limits).toMatchObject({ mem_storage: 0, disk_storage: 0, leaf: 0, conn: 50_000 })
    expect(authority.serverConfig('/jwt').join('\n')).toContain(`${keys.clients}: `)
  })

  it('authority — accounts signed before the inspection subjects are signed again with them when the file is opened', async () => {
    const authority = await tempAuthority()
    const state = JSON.parse(await readFile(authority.paths.file, 'utf8')) as { operator: { seed: string }; account: { seed: string; jwt: string } }
    const key = (seed: string) => fromSeed(new TextEncoder().encode(seed))
    // UPSWARM as an upswarm before issue 12 signed it: importing the daemons' events only.
    const events = 'upswarm.events.daemon.*'
    state.account.jwt = await encodeAccount('UPSWARM', key(state.account.seed),
      { imports: [{ name: events, subject: events, account: authority.accountPublicKeys.clients, type: 'stream' }] }, { signer: key(state.operator.seed) })
    await writeFile(authority.paths.file, JSON.stringify(state))
    await Authority.load(authority.paths.dir)
    const upgraded = JSON.parse(await readFile(authority.paths.file, 'utf8')) as { account: { jwt: string } }
    const imports = (claimsOf(upgraded.account.jwt) as { imports: { subject: string }[] }).imports.map((i) => i.subject).sort()
    expect(imports).toEqual([events, 'upswarm.inspect.daemon.*', 'upswarm.inspect.updater.*'])
  })

  it('authority — a file written before CLIENTS gains it on open; its old clients stay in UPSWARM and revoke there', async () => {
    const authority = await tempAuthority()
    const old = await authority.issue({ kind: 'client', name: 'old' })
    // As an older upswarm wrote it: no CLIENTS account, no account on the issued users.
    const state = JSON.parse(await readFile(authority.paths.file, 'utf8')) as { clients?: unknown; issued: { account?: string }[] }
    delete state.clients
    for (const i of state.issued) delete i.account
    await writeFile(authority.paths.file, JSON.stringify(state))
    const reopened = await Authority.open(authority.paths.dir)
    const upgraded = JSON.parse(await readFile(authority.paths.file, 'utf8')) as { clients?: { jwt: string } }
    expect(upgraded.clients?.jwt).toBeTruthy()
    expect(reopened.accountPublicKeys.upswarm).toBe(authority.accountPublicKeys.upswarm)
    const fresh = await reopened.issue({ kind: 'client', name: 'old' })
    expect(await credsAccount(fresh.file)).toBe(reopened.accountPublicKeys.clients)
    const { jwts, revoked } = await reopened.revoke('client', 'old')
    expect(revoked.sort()).toEqual([old.publicKey, fresh.publicKey].sort())
    // One JWT per account the name had users in: UPSWARM (the old) and CLIENTS (the new).
    expect(jwts.map((j) => decode(j).sub).sort()).toEqual([reopened.accountPublicKeys.upswarm, reopened.accountPublicKeys.clients].sort())
    expect(reopened.issued.map((i) => reopened.accountNameOf(i))).toEqual(['UPSWARM', 'CLIENTS'])
    expect(reopened.issued.every((i) => reopened.isRevoked(i.publicKey, i.issuedAt))).toBe(true)
  })
})
