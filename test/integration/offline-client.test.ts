// Issue 11 item 1 (R-DHT-2): a client configured with NATS whose NATS cannot be reached still
// works. `status`, `history` and `rollback` to a revision in local history answer from the
// working copy, both when the address refuses connections and when it accepts them and never
// answers (a blackhole); the daemon starts, says it is retrying, and stops cleanly.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, update } from '../../actors/updater/index.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { clusterInfo, tempDir } from '../helpers/cluster.ts'
import { daemonCli, type DaemonCli } from '../helpers/daemon-cli.ts'
import { DirectorySource } from '../helpers/dir-source.ts'
import { publishLocal, writeTree, type TreeSpec } from '../helpers/local-publish.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
/** Loose on purpose (a loaded CI machine): the real figures are in the report and benchmarks. */
const ANSWER_BOUND_MS = 5_000

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  const t0 = performance.now()
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? null : 0, stdout, stderr, ms: performance.now() - t0 })
    })
  })
}

/** Accepts TCP connections on 127.0.0.1 and never says a word: a NATS that hangs. */
async function blackhole(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return {
    url: `nats://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

/** A door to a real NATS server that stays shut (connections dropped at once) until `open()`. */
async function door(target: string): Promise<{ url: string; open: () => void; close: () => Promise<void> }> {
  const { hostname, port: targetPort } = new URL(target)
  const sockets = new Set<Socket>()
  let open = false
  const server = createServer((s) => {
    if (!open) return void s.destroy()
    const up = tcpConnect({ host: hostname, port: Number(targetPort) })
    for (const sock of [s, up]) {
      sockets.add(sock)
      sock.on('error', () => {})
      sock.on('close', () => sockets.delete(sock))
    }
    s.pipe(up).pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `nats://127.0.0.1:${(server.address() as { port: number }).port}`,
    open: () => {
      open = true
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

/** A port nothing listens on: connections are refused at once. */
async function refusedUrl(): Promise<string> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return `nats://127.0.0.1:${port}`
}

describe('offline client', { timeout: 120_000 }, () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  let hole: Awaited<ReturnType<typeof blackhole>>
  let refused: string
  let wc: string
  const key = generatePublisherKey()
  const product = randomUUID()
  const env = (nats: string): NodeJS.ProcessEnv => ({
    ...process.env, UPSWARM_NATS: nats, UPSWARM_CREDS: clusterInfo().auth.client, UPSWARM_TLS_CA: clusterInfo().auth.caFile,
  })

  beforeAll(async () => {
    tmp = await tempDir('upswarm-offline-')
    const repo = join(tmp.path, 'repo')
    for (const [i, spec] of [{ 'a.txt': 'a1\n', 'b.txt': 'b\n' } as TreeSpec, { 'a.txt': 'a2\n', 'b.txt': 'b\n', 'c.txt': 'c\n' }].entries()) {
      const src = join(tmp.path, `src${i + 1}`)
      await writeTree(src, spec)
      await publishLocal(repo, { key, product, src })
    }
    const source = new DirectorySource(repo)
    wc = join(tmp.path, 'wc')
    await init(wc, { product, publicKey: key.publicKey, rev: 1, source })
    await update(wc, { source })
    hole = await blackhole()
    refused = await refusedUrl()
  })
  afterAll(async () => {
    await hole?.close()
    await tmp?.cleanup()
  })

  for (const kind of ['blackhole', 'refused'] as const) {
    it(`updater — status, history and rollback answer from the working copy when NATS is ${kind === 'blackhole' ? 'a blackhole' : 'refusing'}`, async () => {
      const nats = kind === 'blackhole' ? hole.url : refused
      const status = await cli(env(nats), 'status', wc, '--json')
      expect(status.code, status.stderr).toBe(0)
      expect(status.stderr).toMatch(new RegExp(`^note: NATS at ${nats} unreachable \\(.+\\); showing local state\\n$`))
      expect(JSON.parse(status.stdout)).toMatchObject({ product, rev: 2, latest: 2, target: 2 })
      expect(status.ms).toBeLessThan(ANSWER_BOUND_MS)

      const history = await cli(env(nats), 'history', wc, '--json')
      expect(history.code, history.stderr).toBe(0)
      expect(JSON.parse(history.stdout).revisions.map((v: { rev: number; local: boolean; current: boolean }) => [v.rev, v.local, v.current])).toEqual([[1, true, false], [2, true, true]])
      expect(history.ms).toBeLessThan(ANSWER_BOUND_MS)

      // From local history: NATS is not asked at all, so nothing needs saying about it.
      const back = await cli(env(nats), 'rollback', wc, '--rev', '1', '--json')
      expect(back.code, back.stderr).toBe(0)
      expect(JSON.parse(back.stdout)).toEqual({ from: 2, to: 1, source: 'local' })
      expect(back.ms).toBeLessThan(ANSWER_BOUND_MS)
      await update(wc, { source: new DirectorySource(join(tmp.path, 'repo')), rev: 2 })
      console.log(`offline ${kind}: status ${status.ms.toFixed(0)} ms, history ${history.ms.toFixed(0)} ms, rollback ${back.ms.toFixed(0)} ms`)
    })
  }

  /** A daemon of `wc` with NATS at `nats`. */
  const daemon = (nats: string): DaemonCli => daemonCli(wc, env(nats))

  it('share-daemon — starts with NATS a blackhole, says it is retrying, and stops cleanly on SIGTERM', async () => {
    const { child, exited, until, stderr } = daemon(hole.url)
    try {
      const ready = JSON.parse((await until((l) => l.startsWith('READY '))).slice(6))
      // Issue 13 item 2: the daemon watches its copy for status, without NATS too.
      expect(ready).toMatchObject({ role: 'daemon', rev: 2, monitor: join(wc, '.upswarm', 'monitor.sock') })
      expect(existsSync(ready.monitor)).toBe(true)
      expect(stderr()).toMatch(/note: NATS at .* unreachable \(.+\); running on the swarm; retrying in the background/)
      const retrying = JSON.parse(await until((l) => l.includes('"nats.retrying"')))
      expect(retrying).toMatchObject({ event: 'nats.retrying', attempt: 1, error: { code: 'UPSWARM_E_NATS' } })
      child.kill('SIGTERM')
      expect(JSON.parse(await until((l) => l.includes('"daemon.stopped"')))).toMatchObject({ event: 'daemon.stopped' })
      expect(await exited).toEqual([0, null])
      expect(existsSync(ready.monitor)).toBe(false)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })

  it('share-daemon — joins NATS when it answers again (nats.connected) and stops cleanly', async () => {
    const gate = await door(clusterInfo().nats[0]!)
    const { child, exited, until } = daemon(gate.url)
    try {
      await until((l) => l.startsWith('READY '))
      await until((l) => l.includes('"nats.retrying"'))
      gate.open()
      expect(JSON.parse(await until((l) => l.includes('"nats.connected"')))).toEqual({ event: 'nats.connected' })
      child.kill('SIGTERM')
      await until((l) => l.includes('"daemon.stopped"'))
      expect(await exited).toEqual([0, null])
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      await gate.close()
    }
  })
})
