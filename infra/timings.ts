// Where a command's wall time goes (issue 15 item 4, issue 13): with UPSWARM_TIMINGS=1 each
// mark is kept with the milliseconds since the process started, and the list goes to stderr
// when the process exits. Without it a mark costs one property read.
const on = !!process.env.UPSWARM_TIMINGS
const marks: Array<[string, number]> = []

export function mark(what: string): void {
  if (!on) return
  if (marks.length === 0) process.once('exit', () => {
    marks.push(['exit', performance.now()])
    let last = 0
    for (const [name, at] of marks) {
      process.stderr.write(`upswarm timings: ${at.toFixed(1).padStart(8)} ms  +${(at - last).toFixed(1).padStart(7)}  ${name}\n`)
      last = at
    }
  })
  marks.push([what, performance.now()])
}
