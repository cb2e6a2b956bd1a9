import { describe, expect, it } from 'vitest'
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
import { tempDir } from '../helpers/cluster.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.mjs')

function descendants(pid: number): number[] {
  let out = ''
  try {
    out = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
  } catch {
    return []
  }
  const kids = out.split('\n').filter(Boolean).map(Number)
  return kids.flatMap((k) => [k, ...descendants(k)])
}

/** Children that are roles (the watchdog shell is excluded: it exits on its own once its parent is gone). */
function roleProcesses(pid: number): number[] {
  return descendants(pid).filter((p) => !readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sh'))
}

async function startUp(dir: string, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'up', '--dir', dir, '--servers', '2', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stderr!.resume()
  const lines = createInterface({ input: child.stdout! })
  // Everything `up` prints on stdout is the endpoints line, printed once all roles are ready.
  const [line] = (await once(lines, 'line')) as [string]
  expect(JSON.parse(line)).toHaveProperty('nats')
  return child
}

describe('up', () => {
  it('up — writes endpoints.json only once every role answers, and SIGTERM leaves no process behind', async () => {
    const dir = await tempDir('upswarm-up-')
    const endpointsFile = join(dir.path, 'endpoints.json')
    const checks: Promise<void>[] = []
    // Watch for the file: the moment it exists, every endpoint in it must already answer.
    const watcher = watch(dir.path, (_ev, name) => {
      if (name === 'endpoints.json' && existsSync(endpointsFile) && checks.length === 0) {
        checks.push((async () => {
          const ep = JSON.parse(readFileSync(endpointsFile, 'utf8'))
          expect(Object.keys(ep).sort()).toEqual(expect.arrayContaining(['dhtBootstrap', 'http', 'nats']))
          const nc = await connectNats(ep.nats, 'test-up')
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
      const child = await startUp(dir.path, ['--roles', 'nats,dht,servers,proxy'])
      expect(checks).toHaveLength(1)
      await checks[0]
      const kids = roleProcesses(child.pid!)
      expect(kids).toHaveLength(3 + 1 + 2 + 1) // 3 nats-servers, dht, 2 servers, proxy
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
      const kids = roleProcesses(child.pid!)
      expect(kids).toHaveLength(4)
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
