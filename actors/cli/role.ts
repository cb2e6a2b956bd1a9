// Runs one long-lived role in the foreground: start it, print one `READY {json}` line on stdout
// (the launcher `up` reads it), and stop cleanly on SIGINT/SIGTERM.
import { once } from 'node:events'

export interface RunningRole {
  ready: Record<string, unknown>
  close(): Promise<void>
}

export async function runRole(name: string, start: () => Promise<RunningRole>): Promise<void> {
  const role = await start()
  process.stdout.write(`READY ${JSON.stringify({ role: name, pid: process.pid, ...role.ready })}\n`)
  const signal = await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')])
  void signal
  await role.close()
}
