import { afterEach, describe, expect, it } from 'vitest'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, watch } from 'node:fs'
import { join } from 'node:path'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { isRunning } from '../../infra/cluster/children.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { connectNats } from '../../infra/nats/connect.ts'
import { proxySubject } from '../../infra/nats/names.ts'
import { requestJson } from '../../infra/nats/service.ts'
import type { StatsReply } from '../../actors/proxy/index.ts'
import { newProduct, tempDir } from '../helpers/cluster.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { readFresh } from '../../infra/formats/meta-stream.ts'
import { TrustStore } from '../../infra/formats/trust-store.ts'
import { generatePublisherKey, readKeyFile } from '../../infra/release/keys.ts'
import { writeTree } from '../helpers/trees.ts'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { statSync } from 'node:fs'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
  } catch {
    return []
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ')
  } catch {
    return ''
  }
}

/** `nats-server` or `upswarm.cjs ROLE`, from a command line. */
function roleName(cmd: string): string {
  const argv = cmd.split(' ')
  if (argv[0]!.endsWith('nats-server')) return 'nats-server'
  const cli = argv.findIndex((a) => a.endsWith('upswarm.cjs'))
  return cli >= 0 ? `upswarm.cjs ${argv[cli + 1]}` : cmd
}

/**
 * The role processes `up` started: its direct children that run nats-server or the upswarm CLI.
 * The watchdog shell (and whatever it runs for a moment) is left out: it exits on its own once
 * its parent is gone.
 */
function roleProcesses(pid: number): Map<number, string> {
  const roles = new Map<number, string>()
  for (const kid of childrenOf(pid)) {
    const cmd = cmdline(kid)
    if (/nats-server|upswarm\.cjs/.test(cmd)) roles.set(kid, cmd)
  }
  return roles
}

/** Every `up` a test started: a failed assertion must not leave a cluster running. */
const launched: ChildProcess[] = []
afterEach(async () => {
  for (const child of launched.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }
})

async function startUp(dir: string, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'up', '--dir', dir, '--servers', '2', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  launched.push(child)
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  const lines = createInterface({ input: child.stdout! })
  // Everything `up` prints on stdout is the endpoints line, printed once all roles are ready;
  // an `up` that exits first fails the test with what it said.
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => { throw new Error(`up exited (code ${code}) before it was ready:\n${stderr}`) }),
  ])) as [string]
  expect(JSON.parse(line)).toHaveProperty('nats')
  return child
}

// A 3-node cluster with identities, TLS and every role: starting one takes seconds here, longer
// when the rest of the suite loads both cores (the cluster launcher waits up to 30 s per attempt).
describe('up', { timeout: 180_000 }, () => {
  it('up — writes endpoints.json only once every role answers, and SIGTERM leaves no process behind', async () => {
    const dir = await tempDir('upswarm-up-')
    const endpointsFile = join(dir.path, 'endpoints.json')
    const checks: Promise<void>[] = []
    // Watch for the file: the moment it exists, every endpoint in it must already answer.
    const watcher = watch(dir.path, (_ev, name) => {
      if (name === 'endpoints.json' && existsSync(endpointsFile) && checks.length === 0) {
        checks.push((async () => {
          const ep = JSON.parse(readFileSync(endpointsFile, 'utf8'))
          expect(Object.keys(ep).sort()).toEqual(expect.arrayContaining(['dhtBootstrap', 'http', 'nats', 'tlsCa', 'creds']))
          // Anonymous and in clear, the cluster `up` made refuses; with a role's creds and its CA, it answers.
          await expect(connectNats(ep.nats, 'test-up-anonymous', { creds: '', tlsCa: ep.tlsCa })).rejects.toMatchObject({ code: 'UPSWARM_E_AUTH' })
          const nc = await connectNats(ep.nats, 'test-up', { creds: ep.creds.client, tlsCa: ep.tlsCa })
          try {
            const stats = await requestJson<StatsReply>(nc, proxySubject('stats'), {}, 2000)
            expect(stats.proxy).toBeTruthy()
          } finally {
            await nc.close()
          }
          expect((await fetch(`${ep.http}/nothing`)).status).toBe(404)
        })())
      }
    })
    try {
      const child = await startUp(dir.path, ['--roles', 'nats,dht,servers,proxy,notary,console'])
      expect(checks).toHaveLength(1)
      await checks[0]
      const roles = roleProcesses(child.pid!)
      const kids = [...roles.keys()]
      // 3 nats-servers, dht, 2 servers, proxy, notary, console; the message lists what was found.
      expect([...roles.values()].map((c) => roleName(c)).sort())
        .toEqual(['nats-server', 'nats-server', 'nats-server', 'upswarm.cjs console', 'upswarm.cjs dht', 'upswarm.cjs notary', 'upswarm.cjs proxy', 'upswarm.cjs server', 'upswarm.cjs server'])
      await rootAndNotary(dir.path)
      child.kill('SIGTERM')
      const [code] = await once(child, 'exit')
      expect(code).toBe(0)
      expect(kids.filter(isRunning)).toEqual([])
      expect(existsSync(endpointsFile)).toBe(false)
    } finally {
      watcher.close()
      await dir.cleanup()
    }
  })

  it('up — kill -9 of the launcher still takes every child down (watchdog)', async () => {
    const dir = await tempDir('upswarm-up-')
    try {
      const child = await startUp(dir.path, ['--roles', 'nats,dht'])
      const kids = [...roleProcesses(child.pid!).keys()]
      expect(kids).toHaveLength(4) // 3 nats-servers and the DHT node
      child.kill('SIGKILL')
      await once(child, 'exit')
      // The watchdog sends SIGTERM at once and SIGKILL 3 s later; wait for each pid to go.
      for (const pid of kids) {
        for (let i = 0; i < 100 && isRunning(pid); i++) await new Promise((r) => setTimeout(r, 100))
      }
      expect(kids.filter(isRunning)).toEqual([])
    } finally {
      await dir.cleanup()
    }
  })
})

/**
 * Issue 10 item 7 in an `up` deployment: root 1 in D/root.json and on the stream, keys 0600, and
 * after a publish and `root edit --dir D --add-product`, the notary's fresh statement for it.
 */
async function rootAndNotary(dir: string): Promise<void> {
  const ep = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8'))
  expect(ep).toMatchObject({ root: join(dir, 'root.json'), rootKey: expect.any(String), freshKey: expect.any(String), creds: { notary: expect.any(String) } })
  expect(ep.haltKey).toBe(join(dir, 'auth', 'halt-key.json'))
  expect(ep.rolloutKey).toBe(join(dir, 'auth', 'rollout-key.json'))
  // Issue 16 item 4: the console on 127.0.0.1, its token in a 0600 file beside the keys.
  expect(ep.console).toEqual({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/$/), tokenFile: join(dir, 'auth', 'console-token') })
  for (const f of [ep.rootKey, ep.freshKey, ep.haltKey, ep.rolloutKey, ep.console.tokenFile]) expect(statSync(f).mode & 0o777).toBe(0o600)
  expect((await fetch(ep.console.url)).status).toBe(401)
  const consoleState = await fetch(new URL('/api/state', ep.console.url), { headers: { authorization: `Bearer ${readFileSync(ep.console.tokenFile, 'utf8').trim()}` } })
  // It serves the inspection page too, and links to it.
  expect(ep.inspect).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//)
  expect(await consoleState.json()).toMatchObject({ controls: { enabled: true, keys: [(await readKeyFile(ep.rolloutKey)).publicKey] }, inspectUrl: ep.inspect })
  const inspectPage = await fetch(ep.inspect)
  expect(inspectPage.status).toBe(200)
  expect(await inspectPage.text()).toMatch(/<html/i)
  const key = generatePublisherKey()
  const product = newProduct()
  const src = join(dir, 'src')
  await writeTree(src, { 'a.txt': 'hello\n' })
  const pub = await connectNats(ep.nats, 'test-up-publisher', { creds: ep.creds.publisher, tlsCa: ep.tlsCa })
  const client = await connectNats(ep.nats, 'test-up-client', { creds: ep.creds.client, tlsCa: ep.tlsCa })
  try {
    const r = await publish({ nc: pub, src, product, key, skipFeed: true })
    const edited = JSON.parse((await promisify(execFile)(process.execPath, [CLI, 'root', 'edit', '--dir', dir, '--add-product', product, '--publish-key', key.publicKey, '--json'])).stdout)
    expect(edited).toMatchObject({ version: 2, pushed: expect.any(Number) })
    // Issue 16 item 2: a product added in an `up` deployment names the notary's halt key.
    expect(edited.products[product].halt).toEqual([(await readKeyFile(ep.haltKey)).publicKey])
    // Issue 16 item 4: and the console's rollout key beside the publish key, so both sign rollouts.
    expect(edited.products[product].rollout).toEqual([(await readKeyFile(ep.rolloutKey)).publicKey, key.publicKey])
    // The notary follows the root to version 2 and vouches for r1 within seconds.
    const text = await expect.poll(() => readFresh(client, product), { timeout: 10_000, interval: 200 }).toBeDefined().then(() => readFresh(client, product))
    const store = await TrustStore.open(join(dir, 'client-trust.json'), dir)
    await store.pin(readFileSync(join(dir, 'root.json'), 'utf8').trim(), 'root.json')
    expect(await store.acceptFresh(text!, 'UPSWARM_FRESH')).toBe('accepted')
    expect(store.fresh(product)?.fresh).toMatchObject({ rev: 1, release: r.manifestSha256, root: 2 })
  } finally {
    await pub.close()
    await client.close()
  }
}
