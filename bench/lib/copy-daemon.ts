// `upswarm daemon DIR` beside a working copy, as on every machine of a fleet (no --auto: it
// updates when asked): `upswarm update DIR` then hands it the run over the copy's control socket
// (issue 15 item 4). Used by the incremental and throughput benches.
import { createInterface } from 'node:readline'
import { spawnGuarded, stopChild } from '../../infra/cluster/children.ts'
import { CLI } from './cluster.ts'

/** `upswarm daemon DIR` (no --auto: it updates when asked), up once it printed READY. */
export async function startCopyDaemon(dir: string, env: NodeJS.ProcessEnv): Promise<{ stop(): Promise<void> }> {
  const child = spawnGuarded(process.execPath, [CLI, 'daemon', dir, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  // UPSWARM_TIMINGS=1: the daemon's own marks (infra/timings.ts), printed when it stops.
  let timings = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
    if (process.env.UPSWARM_TIMINGS) timings += d.toString()
  })
  const exited = new Promise<never>((_, reject) => child.once('exit', (code, signal) => reject(new Error(`the daemon of ${dir} exited (${code ?? signal}) before it was ready: ${stderr}`))))
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout! })) if (line.startsWith('READY ')) return
  })()
  try {
    await Promise.race([ready, exited])
  } catch (err) {
    await stopChild(child)
    throw err
  }
  exited.catch(() => {})
  // Its events (update.done …) are read by nobody: drain them.
  child.stdout!.resume()
  let stopped: Promise<void> | undefined
  return {
    // Once: a bench may stop a daemon early and again with the others at its end.
    stop: () => (stopped ??= (async () => {
      await stopChild(child)
      if (timings) process.stderr.write(`upswarm daemon ${dir}:\n${timings.split('\n').filter((l) => l.startsWith('upswarm timings:')).join('\n')}\n`)
    })()),
  }
}
