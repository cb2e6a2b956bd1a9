// Preloaded through NODE_OPTIONS="--import …/cpu-prof-preload.mjs" by the benchmarks' --profile
// option (node 20 refuses --cpu-prof in NODE_OPTIONS): starts the V8 sampling profiler at once
// and writes a .cpuprofile into $UPSWARM_BENCH_CPU_PROF_DIR when the process exits. Plain
// JavaScript, so that it runs before the tsx loader is registered. With
// UPSWARM_BENCH_CPU_PROF_ON_SIGNAL=1 the profiler starts only on SIGUSR2 (the swarm benchmark
// sends it to the daemons just before the measured update, leaving start-up out), and a process
// that never got the signal writes nothing.
import { Session } from 'node:inspector'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isMainThread } from 'node:worker_threads'

const dir = process.env.UPSWARM_BENCH_CPU_PROF_DIR
if (dir && isMainThread) {
  const session = new Session()
  session.connect()
  let started = false
  const start = () => {
    if (started) return
    started = true
    session.post('Profiler.enable')
    session.post('Profiler.start')
  }
  if (process.env.UPSWARM_BENCH_CPU_PROF_ON_SIGNAL === '1') process.on('SIGUSR2', start)
  else start()
  let saved = false
  process.on('exit', () => {
    if (saved || !started) return
    saved = true
    // An in-process session answers synchronously, so this completes inside the exit handler.
    session.post('Profiler.stop', (err, res) => {
      if (err || !res?.profile) return
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, `CPU.${process.pid}.${Date.now()}.cpuprofile`), JSON.stringify(res.profile))
    })
  })
}
