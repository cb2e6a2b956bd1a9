// The SFTP door's keys: ssh2 1.17's generator makes about 1 Ed25519 pair in 256 that ssh2 cannot
// read back (a proxy that could not load its own host key). Every pair generateSshKeyPair gives
// parses; a host key file that does not is refused with what to do.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { describe, expect, it } from 'vitest'
import { generateSshKeyPair, loadOrCreateHostKey } from '../../infra/ssh/sftp-gateway.ts'

describe('ssh keys', () => {
  it('ssh keys — 2000 generated pairs all parse, private and public (bounded run)', () => {
    for (let i = 0; i < 2000; i++) {
      const pair = generateSshKeyPair()
      expect(ssh2.utils.parseKey(pair.private)).not.toBeInstanceOf(Error)
      expect(ssh2.utils.parseKey(pair.public)).not.toBeInstanceOf(Error)
    }
  })

  it('ssh keys — a host key is made once and kept; an unreadable host key file is refused by name with what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'upswarm-ssh-'))
    try {
      const file = join(dir, 'host-key')
      const key = await loadOrCreateHostKey(file)
      expect(await loadOrCreateHostKey(file)).toBe(key)
      await writeFile(join(dir, 'bad'), '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n')
      await expect(loadOrCreateHostKey(join(dir, 'bad'))).rejects.toThrow(/the SSH host key .*bad cannot be read .*remove it and a new one is made/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
