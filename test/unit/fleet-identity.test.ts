import { afterEach, describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Authority } from '../../infra/auth/authority.ts'
import { loadSwarmIdentity, privateProductId, verifyCertificate } from '../../infra/swarm/fleet.ts'

let dir = ''
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('fleet identity — issued with the authority', () => {
  it('fleet identity — a client and a server of one fleet share its key and secret; the client expires, the server does not; the file is private', async () => {
    dir = await mkdtemp(join(tmpdir(), 'upswarm-fleet-'))
    const authority = await Authority.open(join(dir, 'auth'))
    const client = await authority.issueSwarmIdentity({ kind: 'client', name: 'laptop-1' }, { ttlSeconds: 3600 })
    const server = await authority.issueSwarmIdentity({ kind: 'server', name: 's1' })
    const c = await loadSwarmIdentity(client.file)
    const s = await loadSwarmIdentity(server.file)
    expect(c.fleet).toEqual(s.fleet)
    expect(c.topicSecret).toEqual(s.topicSecret)
    expect(privateProductId(c.topicSecret, 'p')).toBe(privateProductId(s.topicSecret, 'p'))
    expect(c.keyPair.publicKey.toString('hex')).toBe(client.publicKey)
    expect(verifyCertificate(c.certificate, { fleet: s.fleet, remoteNoiseKey: c.keyPair.publicKey }).name).toBe('laptop-1')
    expect(c.expires).toBeGreaterThan(Date.now() / 1000)
    expect(s.expires).toBe(0)
    expect((await stat(client.file)).mode & 0o777).toBe(0o600)
  })

  it('fleet identity — a file whose certificate is for another key, or expired, is refused at load with what to do', async () => {
    dir = await mkdtemp(join(tmpdir(), 'upswarm-fleet-'))
    const authority = await Authority.open(join(dir, 'auth'))
    const a = await authority.issueSwarmIdentity({ kind: 'client', name: 'a' })
    const b = await authority.issueSwarmIdentity({ kind: 'client', name: 'b' })
    const swapped = { ...JSON.parse(await readFile(a.file, 'utf8')), certificate: JSON.parse(await readFile(b.file, 'utf8')).certificate }
    await writeFile(a.file, JSON.stringify(swapped))
    await expect(loadSwarmIdentity(a.file)).rejects.toThrow(/another Noise key.*creds issue/)
    const old = await authority.issueSwarmIdentity({ kind: 'client', name: 'old' }, { ttlSeconds: -10 })
    await expect(loadSwarmIdentity(old.file)).rejects.toMatchObject({ code: 'UPSWARM_E_CONFIG', message: expect.stringMatching(/expired/) })
  })
})
