// What a process holds in memory, from /proc (Linux): RSS and its peak (VmHWM), PSS and USS from
// smaps_rollup, and RSS by mapping from smaps. RSS counts the node binary's text, which every
// node process on a machine shares; PSS divides shared pages among their users and USS
// (Private_Clean + Private_Dirty) is what the process alone holds — what stopping it frees.
import { readFileSync, realpathSync, writeFileSync } from 'node:fs'
import { basename } from 'node:path'

export interface MemorySample {
  /** KiB. */
  rss: number
  /** Peak RSS since the start or the last resetPeak (VmHWM), KiB. */
  hwm: number
  pss: number
  /** Private_Clean + Private_Dirty, KiB. */
  uss: number
  /** RSS by mapping (node binary, anonymous, [heap], each native addon, shared libraries, other), KiB. */
  byMapping: Record<string, number>
}

const kib = (text: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN)

const NODE_BINARY = realpathSync(process.execPath)

function mappingName(path: string | undefined): string {
  if (!path) return 'anonymous'
  if (path === NODE_BINARY) return 'node binary'
  if (path.startsWith('[')) return path.startsWith('[stack') ? '[stack]' : path
  if (path.endsWith('.node')) return basename(path)
  if (/\.so(\.|$)/.test(path)) return /libstdc\+\+/.test(path) ? 'libstdc++' : 'other shared libraries'
  return 'other files'
}

/** RSS per kind of mapping, KiB, largest first. */
export function rssByMapping(pid: number): Record<string, number> {
  const out = new Map<string, number>()
  let current = 'anonymous'
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (header) {
      current = mappingName(header[1] || undefined)
      continue
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss) out.set(current, (out.get(current) ?? 0) + Number(rss[1]))
  }
  return Object.fromEntries([...out].filter(([, v]) => v > 0).sort(([, a], [, b]) => b - a))
}

export function sampleMemory(pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  return {
    rss: kib(status, 'VmRSS'),
    hwm: kib(status, 'VmHWM'),
    pss: kib(rollup, 'Pss'),
    uss: kib(rollup, 'Private_Clean') + kib(rollup, 'Private_Dirty'),
    byMapping: rssByMapping(pid),
  }
}

/** Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`, Linux ≥ 4.0); false when not allowed. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

export const mib = (kibibytes: number): number => Math.round((kibibytes / 1024) * 10) / 10
