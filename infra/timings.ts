// Where a command's wall time goes (issue 15 item 4, issue 13): with UPSWARM_TIMINGS=1 each
// mark is kept with the milliseconds since the process started, and the list goes to stderr
// when the process exits. With UPSWARM_TIMINGS=mem each mark also keeps the memory at that
// moment (RSS, the peak RSS so far, V8's heap used, memory outside it): which phase raised the
// peak (issue 13 item 6). With UPSWARM_TIMINGS=abs each line also gives the wall-clock time
// (Unix epoch, ms), so the marks of two processes — a command and the daemon it asked — line up.
// Without it a mark costs one property read.
const on = !!process.env.UPSWARM_TIMINGS
const withMemory = process.env.UPSWARM_TIMINGS === 'mem'
const absolute = process.env.UPSWARM_TIMINGS === 'abs'
const marks: Array<[string, number, string]> = []
const MiB = 1024 * 1024

function memory(): string {
  if (!withMemory) return ''
  const m = process.memoryUsage()
  const f = (n: number): string => (n / MiB).toFixed(0).padStart(5)
  return `   | rss ${f(m.rss)} MiB, peak ${f(process.resourceUsage().maxRSS * 1024)}, heap ${f(m.heapUsed)}, outside ${f(m.external)}`
}

export function mark(what: string): void {
  if (!on) return
  if (marks.length === 0) process.once('exit', () => {
    marks.push(['exit', performance.now(), memory()])
    let last = 0
    for (const [name, at, mem] of marks) {
      const wall = absolute ? `  @${(performance.timeOrigin + at).toFixed(1)}` : ''
      process.stderr.write(`upswarm timings: ${at.toFixed(1).padStart(8)} ms  +${(at - last).toFixed(1).padStart(7)}  ${name}${mem}${wall}\n`)
      last = at
    }
  })
  marks.push([what, performance.now(), memory()])
}
