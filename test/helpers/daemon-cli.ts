// `upswarm daemon DIR --json` as a user starts it, its stdout read line by line up to a matching one.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { clusterInfo } from './cluster.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

export interface DaemonCli {
  child: ChildProcess
  exited: Promise<[number | null, NodeJS.Signals | null]>
  /** The next line of stdout that matches (at most 50 lines read); throws with what it saw when the daemon ends first. */
  until(match: (line: string) => boolean): Promise<string>
  stderr(): string
}

/** The daemon of `wc` on the suite's DHT bootstrap, with `env` (NATS, credentials). */
export function daemonCli(wc: string, env: NodeJS.ProcessEnv): DaemonCli {
  const child = spawn(process.execPath, [CLI, 'daemon', wc, '--json', '--bootstrap', clusterInfo().dhtBootstrap], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const seen: string[] = []
  const until = async (match: (line: string) => boolean): Promise<string> => {
    for (let i = 0; i < 50; i++) {
      const next = await Promise.race([lines.next(), exited.then(() => ({ done: true as const, value: undefined }))])
      if (next.done) throw new Error(`the daemon ended; stdout:\n${seen.join('\n')}\nstderr:\n${stderr}`)
      seen.push(next.value)
      if (match(next.value)) return next.value
    }
    throw new Error(`no such line in 50:\n${seen.join('\n')}`)
  }
  return { child, exited, until, stderr: () => stderr }
}
