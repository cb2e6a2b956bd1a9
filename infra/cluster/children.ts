// Child processes that never outlive their parent. Every child's pid is handed to one watchdog
// shell per parent process; the watchdog reads pids from a pipe and, when the pipe closes
// (the parent exited, crashed or was SIGKILLed), terminates every child it was told about.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'

let watchdog: ChildProcess | undefined

const WATCHDOG_SCRIPT = [
  'pids=""',
  'while read p; do case "$p" in -*) pids=$(echo " $pids " | sed "s/ ${p#-} / /g");; *) pids="$pids $p";; esac; done',
  '[ -n "$pids" ] || exit 0',
  'kill -TERM $pids 2>/dev/null',
  'sleep 3',
  'kill -KILL $pids 2>/dev/null',
  'exit 0',
].join('\n')

function getWatchdog(): ChildProcess {
  if (watchdog && watchdog.exitCode === null) return watchdog
  watchdog = spawn('sh', ['-c', WATCHDOG_SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true })
  watchdog.unref()
  ;(watchdog.stdin as unknown as { unref?: () => void }).unref?.()
  return watchdog
}

/** Spawns a child that the watchdog kills if this process dies without cleaning up. */
export function spawnGuarded(cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, options)
  const pid = child.pid
  if (pid !== undefined) {
    getWatchdog().stdin?.write(`${pid}\n`)
    child.once('exit', () => {
      if (watchdog?.stdin?.writable) watchdog.stdin.write(`-${pid}\n`)
    })
  }
  return child
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
