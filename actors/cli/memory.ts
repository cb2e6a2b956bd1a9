// UPSWARM_DEBUG_HEAP=1 (issue 13 item 5): what a long-running process holds, as one event — RSS
// and V8's heap by space — so that what grows (young generation, old space, code, buffers) can
// be told apart without a heap snapshot. Off by default; the daemon says it at start, after
// every update and on SIGUSR2.
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8'

const MIB = 1024 * 1024
const mib = (n: number): number => Math.round((n / MIB) * 10) / 10

/** RSS, V8's totals and each heap space's size / used, MiB. */
export function memoryEvent(when: string): Record<string, unknown> {
  const usage = process.memoryUsage()
  const heap = getHeapStatistics()
  return {
    event: 'memory',
    when,
    rssMiB: mib(usage.rss),
    heapTotalMiB: mib(usage.heapTotal),
    heapUsedMiB: mib(usage.heapUsed),
    externalMiB: mib(usage.external),
    arrayBuffersMiB: mib(usage.arrayBuffers),
    mallocedMiB: mib(heap.malloced_memory),
    spaces: Object.fromEntries(getHeapSpaceStatistics().filter((s) => s.space_size > 0).map((s) => [s.space_name, { sizeMiB: mib(s.space_size), usedMiB: mib(s.space_used_size) }])),
  }
}
