import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createHash } from 'node:crypto'
import { open, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { waitFor } from 'xstate'
import { publish } from '../../actors/publisher/publish.ts'
import { startProxy, type Proxy, type StatsReply } from '../../actors/proxy/index.ts'
import type { Assignment } from '../../infra/repo-client.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { proxySubject, serverHeartbeat } from '../../infra/nats/names.ts'
import { request, requestJson } from '../../infra/nats/service.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { newProduct, tempDir, startOwnCluster } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'
import ssh2 from 'ssh2'
import type { SFTPWrapper } from 'ssh2'
import { generateSshKeyPair, loadOrCreateHostKey } from '../../infra/ssh/sftp-gateway.ts'
import { TrustStore, loadTrust, writeTrust } from '../../infra/release/trust.ts'
import { PIECE_SIZE } from '../../infra/release/hash.ts'

const exec = promisify(execFile)

/** An SFTP session with the proxy's SSH door (no credentials: 'none' auth, or a private key). */
function sftpSession(url: string, privateKey?: string): Promise<{ sftp: SFTPWrapper; end: () => void }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client()
    client.on('error', reject)
    client.on('ready', () => client.sftp((err, sftp) => (err ? reject(err) : resolve({ sftp, end: () => client.end() }))))
    client.connect({ host: hostname, port: Number(port), username: 'reader', ...(privateKey ? { privateKey } : {}), readyTimeout: 10_000 })
  })
}

/** The SFTP status error of an operation (code and message), or null when it succeeded. */
function sftpError(op: (cb: (err: Error | null | undefined) => void) => void): Promise<{ code: number; message: string } | null> {
  return new Promise((resolve) => op((err) => resolve(err ? { code: (err as Error & { code: number }).code, message: err.message } : null)))
}

describe('proxy', () => {
  let nc: NatsConnection
  let cluster: NatsCluster
  let dir: { path: string; cleanup: () => Promise<void> }
  let proxy: Proxy
  const servers: RepoServer[] = []
  const key = generatePublisherKey()
  const product = newProduct()
  const big = randomContent(5 * 1024 * 1024 + 333)
  const tag = `p${process.pid}`
  let trustFile: string
  const ids = [`${tag}-a`, `${tag}-b`, `${tag}-c`]
  const weights = [5, 1, 1]
  const logged: string[] = []
  const logWaiters: { re: RegExp; resolve: (line: string) => void }[] = []
  const proxyLog = (line: string): void => {
    logged.push(line)
    for (const w of logWaiters.filter((x) => x.re.test(line))) {
      logWaiters.splice(logWaiters.indexOf(w), 1)
      w.resolve(line)
    }
  }
  /** The next line of the proxy's log that matches `re` (or one already logged). */
  const logLine = (re: RegExp): Promise<string> => {
    const seen = logged.find((l) => re.test(l))
    return seen !== undefined ? Promise.resolve(seen) : new Promise((resolve) => logWaiters.push({ re, resolve }))
  }

  beforeAll(async () => {
    // A cluster of its own: every server on a shared cluster syncs every product, and the exact
    // round-robin counts below are only exact among this test's servers.
    dir = await tempDir()
    const own = await startOwnCluster(dir.path)
    cluster = own.cluster
    nc = await own.connect('test-proxy')
    await writeTree(join(dir.path, 'src'), { 'docs/readme.txt': 'hello\n', 'big.bin': big, 'empty': '' })
    await symlink('docs/readme.txt', join(dir.path, 'src', 'readme-link'))
    trustFile = join(dir.path, 'trust.json')
    await publish({ nc, src: join(dir.path, 'src'), product, key, trust: trustFile })
    for (const [i, id] of ids.entries()) {
      servers.push(await startRepoServer({ nc, id, dataDir: join(dir.path, id), weight: weights[i], trust: await new TrustStore(trustFile).ready() }))
    }
    proxy = await startProxy({ nc, httpPort: 0, sshPort: 0, sshHostKey: await loadOrCreateHostKey(join(dir.path, 'ssh-host-key')),
      trust: await new TrustStore(trustFile).ready(), log: proxyLog })
    for (const s of servers) await waitFor(s.actor, () => s.store.synced[product] === 1, { timeout: 30_000 })
    for (const id of ids) {
      await waitFor(await memberOf(id), (snap) => snap.matches('healthy') && snap.context.status.synced[product] === 1, { timeout: 10_000 })
    }
  })
  afterAll(async () => {
    await proxy?.close()
    for (const s of servers) await s.close()
    await nc?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  async function memberOf(id: string) {
    for (let i = 0; i < 100; i++) {
      const m = proxy.pool.member(id)
      if (m) return m
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error(`server ${id} never joined the pool`)
  }

  it('proxy — 700 assignments with weights 5,1,1 among real servers are exactly 500/100/100', () => {
    const counts: Record<string, number> = {}
    for (let i = 0; i < 700; i++) {
      const id = proxy.pool.assign(product, 1)!
      counts[id] = (counts[id] ?? 0) + 1
    }
    expect(counts).toEqual({ [ids[0]!]: 500, [ids[1]!]: 100, [ids[2]!]: 100 })
  })

  it('proxy — a new proxy serves only once it has heard a server: the moment it starts it assigns one, never "no healthy server"', async () => {
    const fresh = await startProxy({ nc, log: () => {} })
    try {
      expect(fresh.pool.view().filter((m) => ids.includes(m.id)).length).toBeGreaterThan(0)
      expect(ids).toContain(fresh.pool.assign(product, 1))
    } finally {
      await fresh.close()
    }
  })

  it('proxy — assign and stats answer over NATS', async () => {
    const a = await requestJson<Assignment>(nc, proxySubject('assign'), { product, rev: 1 })
    expect(ids).toContain(a.server)
    const stats = await requestJson<StatsReply>(nc, proxySubject('stats'), {})
    const mine = stats.servers.filter((s) => ids.includes(s.id))
    expect(mine.map((s) => [s.id, s.weight, s.healthy, s.synced[product]])).toEqual(ids.map((id, i) => [id, weights[i], true, 1]))
  })

  it('proxy — forged heartbeats (another server\'s id, a revision never published, a huge weight) change neither stats nor assignments', async () => {
    const poolView = async () => (await requestJson<StatsReply>(nc, proxySubject('stats'), {})).servers
      .map((s) => ({ id: s.id, weight: s.weight, synced: s.synced }))
    const before = await poolView()
    expect(before.map((s) => s.id)).toEqual(ids)
    const forger = `${tag}-forger`
    // The forger publishes on its own subject but says it is the heaviest real server.
    nc.publish(serverHeartbeat(forger), JSON.stringify({ id: ids[0], weight: 1000, synced: { [product]: 1 } }))
    // On a real server's subject (the cluster's permissions will refuse this; the proxy must too):
    // revision 999 was never published.
    nc.publish(serverHeartbeat(ids[1]!), JSON.stringify({ id: ids[1], weight: weights[1], synced: { [product]: 999 } }))
    // A weight that would take every request.
    for (let i = 0; i < 2; i++) nc.publish(serverHeartbeat(`${tag}-heavy`), JSON.stringify({ id: `${tag}-heavy`, weight: 1_000_000, synced: { [product]: 1 } }))
    const dropped = Promise.all([
      logLine(new RegExp(`heartbeat on upswarm.heartbeat.server.${forger}: its body says server "${ids[0]}", but that subject is server ${forger}'s`)),
      logLine(new RegExp(`heartbeat of server ${ids[1]}: it claims revision 999 of ${product} \\(the release stream's newest is 1\\)`)),
      logLine(new RegExp(`malformed heartbeat on upswarm.heartbeat.server.${tag}-heavy: weight`)),
    ])
    // Whichever comes first: the proxy says it dropped all three, or the pool believed one.
    const believed = Promise.race([
      waitFor(await memberOf(ids[0]!), (snap) => snap.context.status.weight !== weights[0]),
      waitFor(await memberOf(ids[1]!), (snap) => snap.context.status.synced[product] !== 1),
    ]).catch(() => {})
    await Promise.race([dropped, believed])
    // Heartbeats are judged one at a time in arrival order: all three were seen and dropped.
    expect(await poolView()).toEqual(before)
    const counts: Record<string, number> = {}
    for (let i = 0; i < 700; i++) {
      const id = proxy.pool.assign(product, undefined)!
      counts[id] = (counts[id] ?? 0) + 1
    }
    expect(counts).toEqual({ [ids[0]!]: 500, [ids[1]!]: 100, [ids[2]!]: 100 })
  })

  it('proxy — the HTTP gateway serves whole files, ranges (curl -r), HEAD, 404, 416 and 400 to malformed requests', async () => {
    const base = `${proxy.httpUrl}/v1/products/${product}/revs/1/files`
    const whole = Buffer.from(await (await fetch(`${base}/big.bin`)).arrayBuffer())
    expect(whole.equals(big)).toBe(true)
    const out = join(dir.path, 'part')
    await exec('curl', ['-s', '-r', '1048570-2097200', '-o', out, `${base}/big.bin`])
    expect((await readFile(out)).equals(big.subarray(1048570, 2097201))).toBe(true)
    const head = await fetch(`${base}/docs/readme.txt`, { method: 'HEAD' })
    expect(head.headers.get('content-length')).toBe('6')
    expect(head.headers.get('etag')).toMatch(/^"[0-9a-f]{64}"$/)
    expect((await fetch(`${base}/empty`)).status).toBe(200)
    expect((await fetch(`${base}/nope.txt`)).status).toBe(404)
    expect((await fetch(`${proxy.httpUrl}/v1/products/${product}/revs/7/files/big.bin`)).status).toBe(404)
    // Issue 11 item 9: malformed requests are the client's error (400), never the gateway's (500).
    for (const rev of ['0x2', '1e1', '0', '-1']) expect((await fetch(`${proxy.httpUrl}/v1/products/${product}/revs/${rev}/files/big.bin`)).status).toBe(400)
    expect((await fetch(`${base}/%E0%A4%A`)).status).toBe(400)
    const bad = await fetch(`${base}/docs/readme.txt`, { headers: { range: 'bytes=100-200' } })
    expect(bad.status).toBe(416)
    expect(bad.headers.get('content-range')).toBe('bytes */6')
  })

  it('proxy — aria2c -x8 segmented download through the gateway gets exactly the bytes', async () => {
    const out = join(dir.path, 'aria')
    await exec('aria2c', ['-q', '-x8', '-s8', '-k1M', '--allow-overwrite=true', '-d', out, '-o', 'big.bin',
      `${proxy.httpUrl}/v1/products/${product}/revs/1/files/big.bin`])
    expect((await readFile(join(out, 'big.bin'))).equals(big)).toBe(true)
  })

  it('proxy — WebDAV PROPFIND lists a revision tree with sizes and ETags', async () => {
    const res = await fetch(`${proxy.httpUrl}/dav/${product}/1/`, { method: 'PROPFIND', headers: { depth: '1' } })
    expect(res.status).toBe(207)
    const body = await res.text()
    expect(body).toContain(`<D:href>/dav/${product}/1/big.bin</D:href>`)
    expect(body).toContain(`<D:getcontentlength>${big.length}</D:getcontentlength>`)
    expect(body).toContain(`<D:href>/dav/${product}/1/docs/</D:href>`)
    expect(body).not.toContain('readme.txt')
    const zero = await (await fetch(`${proxy.httpUrl}/dav/${product}/1/docs`, { method: 'PROPFIND', headers: { depth: '0' } })).text()
    expect(zero.match(/<D:response>/g)).toHaveLength(1)
    expect((await fetch(`${proxy.httpUrl}/dav/${product}/1/`, { method: 'OPTIONS' })).headers.get('dav')).toBe('1')
  })

  it('proxy — the SFTP door (OpenSSH sftp) lists products, revisions and trees, and gets exactly the bytes', async () => {
    const { hostname, port } = new URL(proxy.sshUrl!)
    const out = join(dir.path, 'sftp-out')
    const batch = join(dir.path, 'sftp-batch')
    await writeFile(batch, [
      'ls /', `ls /${product}`, `ls -l /${product}/1`, `ls -l /${product}/latest/docs`,
      `get /${product}/1/big.bin ${out}-big`, `get /${product}/latest/readme-link ${out}-link`, `get /${product}/1/empty ${out}-empty`,
    ].join('\n') + '\n')
    const { stdout } = await exec('sftp', ['-b', batch, '-P', port, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', `reader@${hostname}`], { timeout: 60_000 })
    expect(stdout).toContain(product)
    expect(stdout).toMatch(/latest/)
    expect(stdout).toMatch(new RegExp(`-rw-r--r--.* ${big.length} .*big\\.bin`))
    expect(stdout).toMatch(/drwx.*docs/)
    expect(stdout).toMatch(/lrwxrwxrwx.*readme-link/)
    expect(stdout).toMatch(/ 6 .*readme\.txt/)
    expect((await readFile(`${out}-big`)).equals(big)).toBe(true)
    expect(await readFile(`${out}-link`, 'utf8')).toBe('hello\n')
    expect(await readFile(`${out}-empty`)).toHaveLength(0)
  })

  it('proxy — the SFTP door is read-only and says what is missing and where', async () => {
    const { sftp, end } = await sftpSession(proxy.sshUrl!)
    try {
      const write = await sftpError((cb) => sftp.open(`/${product}/1/new.txt`, 'w', (err) => cb(err)))
      expect(write).toMatchObject({ code: 3 })
      expect(write!.message).toContain('read-only')
      expect(await sftpError((cb) => sftp.unlink(`/${product}/1/big.bin`, cb))).toMatchObject({ code: 3 })
      expect(await sftpError((cb) => sftp.mkdir(`/${product}/1/d`, cb))).toMatchObject({ code: 3 })
      expect(await sftpError((cb) => sftp.rename(`/${product}/1/big.bin`, `/${product}/1/x`, cb))).toMatchObject({ code: 3 })
      const missing = await sftpError((cb) => sftp.stat(`/${product}/1/nope.txt`, (err) => cb(err)))
      expect(missing).toMatchObject({ code: 2 })
      expect(missing!.message).toContain(`nope.txt is not in revision 1 of ${product}`)
      expect(await sftpError((cb) => sftp.stat(`/${product}/9`, (err) => cb(err)))).toMatchObject({ code: 2 })
      expect(await sftpError((cb) => sftp.stat('/not-a-uuid', (err) => cb(err)))).toMatchObject({ code: 2 })
      // A read past the end is EOF; a range in the middle is exact.
      const part = await new Promise<Buffer>((resolve, reject) => sftp.open(`/${product}/1/big.bin`, 'r', (err, h) => {
        if (err) return reject(err)
        const buf = Buffer.alloc(70_000)
        sftp.read(h, buf, 0, buf.length, 2_097_100, (e, n) => (e ? reject(e) : resolve(buf.subarray(0, n))))
      }))
      expect(part.equals(big.subarray(2_097_100, 2_097_100 + part.length))).toBe(true)
      expect(part.length).toBeGreaterThan(0)
    } finally {
      end()
    }
  })

  it('proxy — with authorized keys, the SFTP door lets in a listed key only', async () => {
    const listed = generateSshKeyPair()
    const other = generateSshKeyPair()
    const second = await startProxy({
      nc, sshPort: 0, sshHostKey: await loadOrCreateHostKey(join(dir.path, 'ssh-host-key-2')), sshAuthorizedKeys: `# readers\n${listed.public}\n`,
    })
    try {
      const ok = await sftpSession(second.sshUrl!, listed.private)
      ok.end()
      await expect(sftpSession(second.sshUrl!, other.private)).rejects.toThrow(/authentication/i)
      await expect(sftpSession(second.sshUrl!)).rejects.toThrow(/authentication/i)
    } finally {
      await second.close()
    }
  })

  it('proxy — a stopped server is dropped; restarted wiped, it catches up and is assigned again', async () => {
    const victim = servers.find((s) => s.id === ids[0])!
    servers.splice(servers.indexOf(victim), 1)
    const member = await memberOf(victim.id)
    // Clients keep asking while the heaviest server dies: no request may fail.
    let stop = false
    const failures: unknown[] = []
    let answered = 0
    const clients = Array.from({ length: 2 }, async () => {
      for (let i = 0; i < 2000 && !stop; i++) {
        await request(nc, proxySubject('sha1s'), { product, rev: 1 }).then(() => answered++, (err) => failures.push(err))
      }
    })
    await victim.close()
    await waitFor(member, (s) => !s.matches('healthy'), { timeout: 10_000 })
    stop = true
    await Promise.all(clients)
    expect(failures).toEqual([])
    expect(answered).toBeGreaterThan(0)
    for (let i = 0; i < 50; i++) expect(proxy.pool.assign(product, 1)).not.toBe(victim.id)
    await rm(join(dir.path, victim.id), { recursive: true, force: true })
    const back = await startRepoServer({ nc, id: victim.id, dataDir: join(dir.path, victim.id), weight: 5, trust: await new TrustStore(trustFile).ready() })
    servers.push(back)
    await waitFor(back.actor, () => back.store.synced[product] === 1, { timeout: 30_000 })
    await waitFor(member, (s) => s.matches('healthy') && s.context.status.synced[product] === 1, { timeout: 10_000 })
    const picks = new Set(Array.from({ length: 7 }, () => proxy.pool.assign(product, 1)))
    expect(picks.has(victim.id)).toBe(true)
  })

  it('proxy — malformed heartbeats are logged with what is wrong and ignored: no such server joins the pool', async () => {
    const logged: string[] = []
    const second = await startProxy({ nc, httpPort: 0, log: (m) => logged.push(m) })
    try {
      const bad = [
        'not json',
        JSON.stringify({ id: `${tag}-neg`, weight: -5, synced: {} }),
        JSON.stringify({ id: `${tag}-str`, weight: 1, synced: 'everything' }),
        JSON.stringify({ id: '', weight: 1 }),
        JSON.stringify({ id: `${tag}-nan`, weight: 1, synced: { [product]: 1 }, requests: 'many' }),
      ]
      for (const body of bad) nc.publish(serverHeartbeat(`${tag}-x`), body)
      // A well-formed one after them, on the same subscription: once it is in, the others were seen.
      nc.publish(serverHeartbeat(`${tag}-ok`), JSON.stringify({ id: `${tag}-ok`, weight: 1, synced: {} }))
      for (let i = 0; i < 100 && !second.pool.member(`${tag}-ok`); i++) await new Promise((r) => setTimeout(r, 50))
      expect(second.pool.member(`${tag}-ok`)).toBeDefined()
      const malformed = logged.filter((m) => m.includes('malformed heartbeat'))
      expect(malformed).toHaveLength(5)
      expect(malformed[1]).toMatch(/weight/)
      expect(malformed[2]).toMatch(/synced/)
      expect(malformed[4]).toMatch(/requests/)
      for (const id of [`${tag}-neg`, `${tag}-str`, '', `${tag}-nan`]) expect(second.pool.member(id)).toBeUndefined()
      expect(second.pool.assign(product, 1)).not.toBe(`${tag}-ok`)
    } finally {
      await second.close()
    }
  })

  /** A proxy of its own (its own pool and caches), once every server is healthy in its pool. */
  async function freshProxy(extra: Partial<Parameters<typeof startProxy>[0]> = {}): Promise<{ proxy: Proxy; logged: string[] }> {
    const lines: string[] = []
    const p = await startProxy({ nc, httpPort: 0, trust: await new TrustStore(trustFile).ready(), log: (m) => lines.push(m), ...extra })
    for (const id of ids) {
      for (let i = 0; i < 100 && !p.pool.member(id); i++) await new Promise((r) => setTimeout(r, 50))
      await waitFor(p.pool.member(id)!, (snap) => snap.matches('healthy'), { timeout: 10_000 })
    }
    return { proxy: p, logged: lines }
  }

  /** Flips one byte in each piece of big.bin but the first in `server`'s store; returns the undo. */
  async function corruptBig(server: RepoServer): Promise<() => Promise<void>> {
    const path = server.store.blobs.path(createHash('sha256').update(big).digest('hex'))
    const offsets = Array.from({ length: Math.ceil(big.length / PIECE_SIZE) - 1 }, (_, i) => (i + 1) * PIECE_SIZE + 7)
    const fh = await open(path, 'r+')
    try {
      for (const at of offsets) await fh.write(Buffer.from([big[at]! ^ 0xff]), 0, 1, at)
    } finally {
      await fh.close()
    }
    return async () => {
      const undo = await open(path, 'r+')
      try {
        for (const at of offsets) await undo.write(big.subarray(at, at + 1), 0, 1, at)
      } finally {
        await undo.close()
      }
    }
  }

  const serverById = (id: string): RepoServer => servers.find((s) => s.id === id)!

  it('proxy — the gateway and the SFTP door refuse a release signed by a key the trust file does not pin for its product (R-VERIFY)', async () => {
    const other = newProduct()
    const foreign = generatePublisherKey()
    await writeTree(join(dir.path, 'src-other'), { 'a.txt': 'from someone else\n' })
    await publish({ nc, src: join(dir.path, 'src-other'), product: other, key: foreign, trust: trustFile })
    for (const s of servers) await waitFor(s.actor, () => s.store.synced[other] === 1, { timeout: 30_000 })
    // The operator moves the product to another key: the servers keep what they hold, and the
    // gateway and the SFTP door, which check every manifest against the file, refuse it.
    const trust = await loadTrust(trustFile)
    await writeTrust(trustFile, { ...trust, products: { ...trust.products, [other]: { publisherKeys: [key.publicKey] } } })
    const { proxy: p } = await freshProxy({ sshPort: 0, sshHostKey: await loadOrCreateHostKey(join(dir.path, 'ssh-host-key')) })
    try {
      await waitFor(p.pool.member(ids[0]!)!, (snap) => snap.context.status.synced[other] === 1, { timeout: 10_000 })
      const res = await fetch(`${p.httpUrl}/v1/products/${other}/revs/1/files/a.txt`)
      expect(res.status).toBe(502)
      expect(await res.text()).toContain(`product ${other} is pinned to key ${key.publicKey} in trust file ${trustFile}`)
      const { sftp, end } = await sftpSession(p.sshUrl!)
      try {
        const refused = await sftpError((cb) => sftp.stat(`/${other}/1/a.txt`, (err) => cb(err)))
        expect(refused).toMatchObject({ code: 4 })
        expect(refused!.message).toContain(`product ${other} is pinned to key ${key.publicKey}`)
      } finally {
        end()
      }
      // Not the servers' fault: none is quarantined for it.
      expect(p.pool.view().map((m) => m.state)).toEqual(['healthy', 'healthy', 'healthy'])
    } finally {
      await p.close()
    }
  })

  it('proxy — a private product is neither listed nor served by the gateway and the SFTP door (issue 10 item 9)', async () => {
    const secret = newProduct()
    await writeTree(join(dir.path, 'src-secret'), { 'a.txt': 'fleet only\n' })
    const published = await publish({ nc, src: join(dir.path, 'src-secret'), product: secret, key, trust: trustFile, private: true })
    // No fleet identity: no server would hand this key's feed on, and the publish says so at once.
    expect(published.feed).toEqual({ appended: false, reason: expect.stringContaining(`product ${secret} is private: servers replicate its key's release feed to fleet members only`) })
    for (const s of servers) await waitFor(s.actor, () => s.store.synced[secret] === 1, { timeout: 30_000 })
    const { proxy: p } = await freshProxy({ sshPort: 0, sshHostKey: await loadOrCreateHostKey(join(dir.path, 'ssh-host-key')) })
    try {
      await waitFor(p.pool.member(ids[0]!)!, (snap) => snap.context.status.synced[secret] === 1, { timeout: 10_000 })
      const res = await fetch(`${p.httpUrl}/v1/products/${secret}/revs/1/files/a.txt`)
      expect(res.status).toBe(404)
      expect(await res.text()).toContain(`product ${secret} is private`)
      expect((await fetch(`${p.httpUrl}/dav/${secret}/1/`, { method: 'PROPFIND', headers: { depth: '1' } })).status).toBe(404)
      const { sftp, end } = await sftpSession(p.sshUrl!)
      try {
        const names = await new Promise<string[]>((resolve, reject) => sftp.readdir('/', (err, list) => (err ? reject(err) : resolve(list.map((e) => e.filename)))))
        expect(names).toContain(product)
        expect(names).not.toContain(secret)
        expect(await sftpError((cb) => sftp.stat(`/${secret}/1/a.txt`, (err) => cb(err)))).toMatchObject({ code: 2 })
      } finally {
        end()
      }
    } finally {
      await p.close()
    }
  })

  it('proxy — a server that serves a tampered manifest is quarantined and the gateway answers from a good one', async () => {
    const bad = serverById(ids[0]!)
    const stored = bad.store.release(product, 1)!.bytes
    const at = stored.indexOf('"mode":4') + 7
    stored[at] = '5'.charCodeAt(0)
    const { proxy: p, logged: lines } = await freshProxy()
    try {
      // The heaviest server is asked first.
      const res = await fetch(`${p.httpUrl}/v1/products/${product}/revs/1/files/docs/readme.txt`)
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('hello\n')
      const member = p.pool.member(bad.id)!.getSnapshot()
      expect(member.value).toBe('quarantined')
      expect(member.context.suspectReason).toMatch(/is not signed by the expected publisher key/)
      expect(lines.some((l) => l.startsWith(`quarantined server ${bad.id}: `))).toBe(true)
    } finally {
      stored[at] = '4'.charCodeAt(0)
      await p.close()
    }
  })

  it('proxy — a server whose stored blob is corrupted: the gateway cuts the response, quarantines it, and the next request is served whole by good servers', async () => {
    const bad = serverById(ids[0]!)
    const undo = await corruptBig(bad)
    const { proxy: p, logged: lines } = await freshProxy()
    try {
      const url = `${p.httpUrl}/v1/products/${product}/revs/1/files/big.bin`
      const cut = await fetch(url)
      // Piece 0 is good everywhere, so the status line went out before the bad piece came.
      expect(cut.status).toBe(200)
      expect(cut.headers.get('content-length')).toBe(String(big.length))
      await expect(cut.arrayBuffer()).rejects.toThrow()
      const member = p.pool.member(bad.id)!.getSnapshot()
      expect(member.value).toBe('quarantined')
      expect(member.context.suspectReason).toMatch(/big\.bin .* \(piece \d\) from .* have SHA-256 [0-9a-f]{64}, but the signed manifest says [0-9a-f]{64}/)
      expect(lines.some((l) => l.includes(`quarantined server ${bad.id}: big.bin`))).toBe(true)
      const whole = Buffer.from(await (await fetch(url)).arrayBuffer())
      expect(whole.equals(big)).toBe(true)
      // A range inside a bad piece of the quarantined server's copy, too.
      const part = await fetch(url, { headers: { range: `bytes=${PIECE_SIZE}-${PIECE_SIZE + 99}` } })
      expect(part.status).toBe(206)
      expect(Buffer.from(await part.arrayBuffer()).equals(big.subarray(PIECE_SIZE, PIECE_SIZE + 100))).toBe(true)
      expect(p.pool.view().find((m) => m.id === bad.id)).toMatchObject({ healthy: false, state: 'quarantined' })
    } finally {
      await undo()
      await p.close()
    }
  })

  it('proxy — a server whose stored blob is corrupted: the SFTP door ends the read with an error, quarantines it, and reads again from good servers', async () => {
    const bad = serverById(ids[0]!)
    const undo = await corruptBig(bad)
    const { proxy: p } = await freshProxy({ sshPort: 0, sshHostKey: await loadOrCreateHostKey(join(dir.path, 'ssh-host-key')) })
    const { sftp, end } = await sftpSession(p.sshUrl!)
    const readAt = (offset: number): Promise<Buffer | { code: number; message: string }> => new Promise((resolve, reject) =>
      sftp.open(`/${product}/1/big.bin`, 'r', (err, h) => {
        if (err) return reject(err)
        const buf = Buffer.alloc(1000)
        sftp.read(h, buf, 0, buf.length, offset, (e, n) => {
          sftp.close(h, () => resolve(e ? { code: (e as Error & { code: number }).code, message: e.message } : buf.subarray(0, n)))
        })
      }))
    try {
      // One read inside each piece that is bad on that server: the heaviest server is assigned some of them.
      const offsets = Array.from({ length: Math.ceil(big.length / PIECE_SIZE) - 1 }, (_, i) => (i + 1) * PIECE_SIZE)
      const first = await Promise.all(offsets.map(readAt))
      const failed = first.filter((r): r is { code: number; message: string } => !Buffer.isBuffer(r))
      expect(failed.length).toBeGreaterThan(0)
      expect(failed[0]).toMatchObject({ code: 4 })
      expect(failed[0]!.message).toMatch(/have SHA-256 [0-9a-f]{64}, but the signed manifest says/)
      expect(p.pool.member(bad.id)!.getSnapshot().value).toBe('quarantined')
      for (const [i, r] of first.entries()) if (Buffer.isBuffer(r)) expect(r.equals(big.subarray(offsets[i]!, offsets[i]! + 1000))).toBe(true)
      const again = await Promise.all(offsets.map(readAt))
      for (const [i, r] of again.entries()) expect(Buffer.isBuffer(r) && r.equals(big.subarray(offsets[i]!, offsets[i]! + 1000))).toBe(true)
    } finally {
      end()
      await undo()
      await p.close()
    }
  })
})
