// Running upswarm in test hosts (test/helpers/netns.ts): `up` in a host until it prints its
// endpoints, and a CLI command in a host to its end, with that host's NATS in the environment.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, readdirSync, type Dirent } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import type { Endpoints } from '../../actors/launcher/index.ts'
import type { TestNet } from './netns.ts'

export const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
export const NATS_PORT = 4222

/** The environment of a CLI run in a host: no tracker, DHT or NATS of the machine's; `addr`'s NATS. */
export function hostEnv(addr: string, creds: string, ca: string): NodeJS.ProcessEnv {
  const { UPSWARM_TRACKER: _t, UPSWARM_BOOTSTRAP: _b, UPSWARM_NATS: _n, UPSWARM_CREDS: _c, UPSWARM_TRUST: _tr, ...rest } = process.env
  return { ...rest, UPSWARM_NATS: `nats://${addr}:${NATS_PORT}`, UPSWARM_CREDS: creds, UPSWARM_TLS_CA: ca }
}

/** Each host's deployment directory (its `up --dir`): where its nats-server logs are when it fails. */
const hostDirs = new Map<string, string>()

/** The end of every nats-server log under a host's deployment directory. */
function natsLogTails(dir: string | undefined): string {
  if (!dir) return ''
  const out: string[] = []
  const walk = (d: string): void => {
    let entries: Dirent[]
    try {
      entries = readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name === 'nats-server.log') out.push(`[${p}]\n${readFileSync(p, 'utf8').slice(-1500)}`)
    }
  }
  walk(join(dir, 'nats'))
  return out.join('\n')
}

/** What every host's `up` said on stderr and the end of its nats-server logs: for a failure's message. */
export function deploymentLogs(logs: ReadonlyMap<string, string>): string {
  return [...logs].map(([n, l]) => `--- up in ${n}:\n${l.slice(-2000) || '(nothing on stderr)'}\n${natsLogTails(hostDirs.get(n))}`).join('\n')
}

/** `upswarm up ARGS` in host `name`; resolves with its endpoints once it is ready, or rejects with its output. */
export async function upIn(net: TestNet, name: string, args: string[], env: NodeJS.ProcessEnv, logs: Map<string, string>): Promise<Endpoints> {
  const child = net.spawn(name, process.execPath, [CLI, 'up', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
  const dirAt = args.indexOf('--dir')
  if (dirAt >= 0) hostDirs.set(name, args[dirAt + 1]!)
  logs.set(name, '')
  child.stderr!.on('data', (d: Buffer) => logs.set(name, (logs.get(name)! + d.toString()).slice(-8000)))
  const [line] = (await Promise.race([
    once(createInterface({ input: child.stdout! }), 'line'),
    // The other hosts' output too: a host that never joins is usually seen from another one.
    once(child, 'exit').then(([code]) => {
      // The hosts still waiting print nothing until ready: their nats-server logs say why.
      const others = [...logs].filter(([n]) => n !== name).map(([n, l]) => `--- up in ${n} so far:\n${l.slice(-2000) || '(nothing on stderr)'}\n${natsLogTails(hostDirs.get(n))}`)
      throw new Error(`up in ${name} exited (code ${code}) before it was ready:\n${logs.get(name)}\n${others.join('\n')}`)
    }),
  ])) as [string]
  return JSON.parse(line) as Endpoints
}

/** `upswarm ARGS` in host `name` to its end. */
export function cliIn(net: TestNet, name: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', net.host(name).ns, process.execPath, CLI, ...args], { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr })
    })
  })
}
