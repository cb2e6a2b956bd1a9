// Memory returned before a phase that needs much of its own (issue 13 item 6). An update of
// 1 000 000 files reads the stat index (155 MB there) three times and writes it once; those
// buffers are garbage by the time `retain` walks the current tree, but memory outside V8's heap
// does not bring on a full collection soon enough, so they were still resident at the walk's peak
// (RSS 808 MiB before it, 1 208 MiB peak, with 213 MiB of heap used). A full collection first,
// when that much lies outside the heap, returns them.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** Bytes outside V8's heap (Buffers and other external memory) above which `returnMemory` collects. */
const OUTSIDE_MIN = 128 * 1024 * 1024

let gc: (() => void) | undefined

/** A full garbage collection now, if more than OUTSIDE_MIN bytes lie outside V8's heap. Returns whether it ran. */
export function returnMemory(): boolean {
  if (process.memoryUsage().external < OUTSIDE_MIN) return false
  if (!gc) {
    // V8 hands out its collector to code compiled after the flag is set: a fresh context's global.
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
  return true
}
