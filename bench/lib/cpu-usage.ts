// CPU accounting over a measured window, from /proc: how busy the whole machine was (it is
// shared: other work competes for the same cores) and how many CPU seconds given processes
// used. Tells a latency-bound result from a CPU-bound one.
import { readdirSync, readFileSync } from 'node:fs'

const CLK_TCK = 100

interface MachineTicks {
  busy: number
  total: number
}

function machineTicks(): MachineTicks {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - idle, total }
}

/** utime + stime of a process in seconds; undefined once it is gone. */
function processSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return undefined
  }
}

export interface CpuWindow {
  /** Share of the machine's cores that were busy (all processes, ours and others'). */
  machineBusy: number
  /** CPU seconds used in the window, per group of processes. */
  groups: Record<string, number>
  seconds: number
}

/** Starts measuring; `stop()` returns the window. Groups map a name to the pids to add up. */
export function cpuWindow(groups: Record<string, number[]>): { stop(): CpuWindow } {
  const t0 = performance.now()
  const m0 = machineTicks()
  const p0 = new Map<number, number>()
  for (const pids of Object.values(groups)) for (const pid of pids) p0.set(pid, processSeconds(pid) ?? 0)
  return {
    stop() {
      const m1 = machineTicks()
      const out: Record<string, number> = {}
      for (const [name, pids] of Object.entries(groups)) {
        out[name] = pids.reduce((sum, pid) => sum + Math.max(0, (processSeconds(pid) ?? p0.get(pid) ?? 0) - (p0.get(pid) ?? 0)), 0)
      }
      return { machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total), groups: out, seconds: (performance.now() - t0) / 1000 }
    },
  }
}

/** utime and stime (seconds) of each thread of a process, by thread id, with the thread's name. */
function threadTimes(pid: number): Map<number, { name: string; user: number; system: number }> {
  const out = new Map<number, { name: string; user: number; system: number }>()
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      // Node names every thread after the process: the main thread (tid = pid) is told apart.
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const name = Number(tid) === pid ? `${comm} (main thread)` : comm
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(tid), { name, user: Number(fields[11]) / CLK_TCK, system: Number(fields[12]) / CLK_TCK })
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out
}

export interface ThreadCpu {
  /** The thread's name (comm): the main thread has the process's, V8's and libuv's have their own. */
  name: string
  threads: number
  user: number
  system: number
}

/**
 * CPU seconds by thread name over a window (the native part of a process's time: V8's workers,
 * libuv's pool, an addon's own threads), user and system apart; `stop()` returns them, busiest first.
 */
export function threadCpuWindow(pid: number): { stop(): ThreadCpu[] } {
  const t0 = threadTimes(pid)
  return {
    stop() {
      const byName = new Map<string, ThreadCpu>()
      for (const [tid, t] of threadTimes(pid)) {
        const before = t0.get(tid) ?? { user: 0, system: 0 }
        const row = byName.get(t.name) ?? { name: t.name, threads: 0, user: 0, system: 0 }
        row.threads++
        row.user += t.user - before.user
        row.system += t.system - before.system
        byName.set(t.name, row)
      }
      return [...byName.values()].sort((a, b) => b.user + b.system - (a.user + a.system))
    },
  }
}
