// `upswarm console` as its own process (issue 16 item 4): started with `--port 0`, resolved with
// the page's URL, origin and token from its READY line; `stop()` sends SIGTERM and waits for it.
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { CLI } from './inspect-fixture.ts'

export interface ConsoleProcess {
  child: ChildProcess
  /** The page with its token (…/?token=…). */
  url: string
  /** http://127.0.0.1:PORT/ */
  origin: string
  token: string
  stderr(): string
  stop(): Promise<void>
}

export async function startConsoleProcess(env: NodeJS.ProcessEnv, ...args: string[]): Promise<ConsoleProcess> {
  const child = spawn(process.execPath, [CLI, 'console', '--port', '0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d) => { stderr += String(d) })
  const lines = createInterface({ input: child.stdout! })
  const ready = await new Promise<{ url: string; origin: string }>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) resolve(JSON.parse(line.slice(6)) as { url: string; origin: string })
    })
    child.once('exit', (code) => reject(new Error(`upswarm console exited (${code}) before it was ready: ${stderr}`)))
  })
  return {
    child, url: ready.url, origin: ready.origin, token: new URL(ready.url).searchParams.get('token') ?? '',
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}
