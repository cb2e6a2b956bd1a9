// The sharing daemon as a fleet machine carries it (issue 13 item 5, "a light client"): idle RSS,
// PSS and USS, CPU over an idle window, RSS by mapping, and the peak RSS (VmHWM) while it updates
// to a large release — side by side with the floor, `node -e "setInterval(()=>{},1e3)"`, measured
// the same way at the same time. Goal: ≤ 64 MiB RSS and ≤ 0.2 % of a core idle.
//
// How it is measured: `up` (3 NATS nodes, DHT, 1 server, proxy, tracker, notary), a product of one
// small file at r1, one client (`upswarm init`, then `upswarm daemon --auto --json`, as the demo
// runs it), r2 published and installed (the daemon's first update), then `settle` seconds and the
// idle window. Then VmHWM is reset (/proc/PID/clear_refs) and r3, `updateMiB` of random files, is
// published: the peak is the VmHWM when the daemon reports update.done.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomFillSync } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Swarm, type UpdateDone } from '../actors/demo/swarm.ts'
import { stopChild } from '../infra/cluster/children.ts'
import { withCpuProfiles, writeProfileReport } from './lib/cpu-profile.ts'
import { cpuWindow, threadCpuWindow } from './lib/cpu-usage.ts'
import { mib, resetPeak, sampleMemory, type MemorySample } from './lib/proc-memory.ts'
import { MiB, progress, round, startRecording, type BenchResult, type Cell, type CommonOptions } from './lib/report.ts'

export interface DaemonBenchOptions extends CommonOptions {
  /** Seconds the daemon is left alone after its first update before the idle window. */
  settle: number
  /** Length of the idle window (CPU), seconds. */
  idleSeconds: number
  /** Size of the release whose update the peak RSS is taken over, MiB, in files of `fileMiB`. */
  updateMiB: number
  fileMiB: number
  /**
   * Release formats of the product (default [1, 2], as the demo publishes: the daemon learns of
   * releases from format-2 documents and leaves the format-1 release feed unloaded; [1]: it
   * follows the feed, Hypercore and RocksDB loaded).
   */
  formats: number[]
  /** The daemon's node flags instead of DAEMON_NODE_FLAGS (to compare settings side by side). */
  nodeFlags?: string[]
}

export const DAEMON_DEFAULTS: DaemonBenchOptions = { settle: 15, idleSeconds: 60, updateMiB: 128, fileMiB: 64, formats: [1, 2] }

const GOAL_RSS_MIB = 64
const GOAL_CPU_PERCENT = 0.2
const FLOOR_SCRIPT = 'setInterval(()=>{},1e3)'

async function randomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path)
  const chunk = Buffer.allocUnsafe(4 * MiB)
  for (let left = bytes; left > 0; left -= chunk.length) {
    const part = left >= chunk.length ? randomFillSync(chunk) : randomFillSync(Buffer.allocUnsafe(left))
    if (!out.write(part)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'close')
}

const fmtLoad = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ')

function memoryRow(what: string, m: MemorySample, cpuPercent: Cell, extra: Record<string, Cell> = {}): Record<string, Cell> {
  const by = m.byMapping
  const addons = Object.entries(by).filter(([k]) => k.endsWith('.node')).reduce((s, [, v]) => s + v, 0)
  return {
    process: what,
    'RSS MiB': mib(m.rss),
    'PSS MiB': mib(m.pss),
    'USS MiB': mib(m.uss),
    'node binary': mib(by['node binary'] ?? 0),
    anonymous: mib(by.anonymous ?? 0),
    '[heap]': mib(by['[heap]'] ?? 0),
    'native addons': mib(addons),
    'CPU %': cpuPercent,
    ...extra,
  }
}

export async function runDaemonBench(o: DaemonBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('daemon', rec.startedAt)
  const work = await mkdtemp(join(tmpdir(), 'upswarm-bench-daemon-'))
  const swarm = new Swarm({ dir: join(work, 'swarm'), servers: 1, formats: o.formats })
  const floor = spawn(process.execPath, ['-e', FLOOR_SCRIPT], { stdio: 'ignore' })
  const profileDir = o.profile && join(o.profile, 'idle-daemon')
  try {
    await swarm.start()
    const tree = join(work, 'tree')
    await mkdir(tree, { recursive: true })
    await writeFile(join(tree, 'VERSION'), 'r1\n')
    await swarm.publish(tree, 'r1')
    await swarm.serversSynced(1)
    // The client's environment is taken when it is added: the profiler's preload goes in then.
    let startMs = 0
    const client = await withCpuProfiles(profileDir, async () => {
      const c = await swarm.addClient('idle')
      // The daemon says its V8 heap by space on SIGUSR2 (actors/cli/memory.ts).
      c.env.UPSWARM_DEBUG_HEAP = '1'
      if (o.nodeFlags) c.nodeFlags = o.nodeFlags
      const t0 = performance.now()
      await c.start()
      startMs = performance.now() - t0
      return c
    }, { onSignal: true })
    const pid = client.child!.pid!
    log(`daemon ${pid} ready in ${startMs.toFixed(0)} ms; publishing r2 (its first update)`)
    await writeFile(join(tree, 'VERSION'), 'r2\n')
    await swarm.publish(tree, 'r2')
    await client.reached(2)
    log(`r2 installed; leaving the daemon alone ${o.settle} s, then an idle window of ${o.idleSeconds} s`)
    await sleep(o.settle * 1000)
    if (profileDir) client.child!.kill('SIGUSR2')
    const loadBefore = loadavg()
    const idleStart = { daemon: sampleMemory(pid), floor: sampleMemory(floor.pid!) }
    const cpu = cpuWindow({ daemon: [pid], floor: [floor.pid!] })
    const threads = threadCpuWindow(pid)
    await sleep(o.idleSeconds * 1000)
    const window = cpu.stop()
    const byThread = threads.stop().map((t) => ({ ...t, user: round(t.user, 3), system: round(t.system, 3) }))
    const idle = { daemon: sampleMemory(pid), floor: sampleMemory(floor.pid!) }
    const seen = client.events.length
    client.child!.kill('SIGUSR2')
    const heap = await client.waitFor((e) => e.event === 'memory' && e.when === 'signal' && client.events.indexOf(e) >= seen, 30_000)
    const loadAfter = loadavg()
    const percent = (s: number): number => round((100 * s) / window.seconds, 3)
    log(`idle: daemon RSS ${mib(idle.daemon.rss)} MiB, CPU ${percent(window.groups.daemon!)} %; floor RSS ${mib(idle.floor.rss)} MiB`)
    if (profileDir) {
      // The profile covers the idle window alone: the daemon writes it as it exits, and a new one
      // (its profiler off) takes the update.
      await stopChild(client.child!)
      await writeProfileReport('daemon', o.profile!, [{ dir: profileDir, merge: false }], o.resultsDir)
      await client.start()
    }
    const pid2 = client.child!.pid!

    // The peak while updating to a large release.
    await rm(join(tree, 'VERSION'))
    for (let i = 0, left = o.updateMiB; left > 0; i++, left -= o.fileMiB) await randomFile(join(tree, `big${i}.bin`), Math.min(left, o.fileMiB) * MiB)
    log(`r3: ${o.updateMiB} MiB in ${Math.ceil(o.updateMiB / o.fileMiB)} file(s); publishing`)
    const peakResettable = resetPeak(pid2)
    const before = sampleMemory(pid2)
    await swarm.publish(tree, 'r3')
    const done = await client.reached(3, Math.max(300_000, o.updateMiB * 2_000)) as UpdateDone
    const peak = sampleMemory(pid2)
    log(`r3 installed in ${(done.ms / 1000).toFixed(1)} s; peak RSS ${mib(peak.hwm)} MiB`)
    await sleep(o.settle * 1000)
    const after = sampleMemory(pid2)

    const rows = [
      memoryRow('daemon, idle', idle.daemon, percent(window.groups.daemon!), { 'peak RSS MiB': null }),
      memoryRow('node -e "setInterval(()=>{},1e3)" (floor)', idle.floor, percent(window.groups.floor!), { 'peak RSS MiB': null }),
      memoryRow(`daemon, updating ${o.updateMiB} MiB`, peak, null, { 'peak RSS MiB': mib(peak.hwm) }),
      memoryRow(`daemon, idle ${o.settle} s after that update`, after, null, { 'peak RSS MiB': null }),
    ]
    return await rec.finish({
      name: 'daemon',
      title: 'The sharing daemon idle and during an update (RSS, PSS, USS, CPU) vs an idle node process',
      parameters: {
        ...o,
        startMs: round(startMs, 3),
        idleWindowSeconds: round(window.seconds, 3),
        machineBusy: round(window.machineBusy, 3),
        loadAverageBefore: loadBefore.map((v) => round(v, 3)),
        loadAverageAfter: loadAfter.map((v) => round(v, 3)),
        peakResettable,
        rssBeforeUpdateMiB: mib(before.rss),
        update: { ms: done.ms, bytesFromServers: done.bytesFromServers, bytesFromPeers: done.bytesFromPeers },
        idleHeap: heap,
        idleCpuByThread: byThread,
        byMappingKiB: { idleDaemon: idle.daemon.byMapping, floor: idle.floor.byMapping, peak: peak.byMapping, afterUpdate: after.byMapping, idleStart: idleStart.daemon.byMapping },
      },
      columns: ['process', 'RSS MiB', 'PSS MiB', 'USS MiB', 'node binary', 'anonymous', '[heap]', 'native addons', 'CPU %', 'peak RSS MiB'],
      rows,
      goals: [
        { goal: `idle RSS ≤ ${GOAL_RSS_MIB} MiB`, met: mib(idle.daemon.rss) <= GOAL_RSS_MIB, detail: `${mib(idle.daemon.rss)} MiB (PSS ${mib(idle.daemon.pss)}, USS ${mib(idle.daemon.uss)}); the floor ${mib(idle.floor.rss)} MiB` },
        { goal: `idle CPU ≤ ${GOAL_CPU_PERCENT} % of a core`, met: percent(window.groups.daemon!) <= GOAL_CPU_PERCENT, detail: `${percent(window.groups.daemon!)} % over ${window.seconds.toFixed(0)} s; the floor ${percent(window.groups.floor!)} %` },
      ],
      notes: [
        `The product is published in formats ${o.formats.join(', ')}${o.formats.includes(2) ? ' (as the demo publishes it): the daemon learns of releases from format-2 documents and leaves the format-1 release feed (Hypercore, RocksDB) unloaded' : ': the daemon follows the format-1 release feed (Hypercore and RocksDB loaded)'}.`,
        `Load average (1 / 5 / 15 min) ${fmtLoad(loadBefore)} before and ${fmtLoad(loadAfter)} after the idle window; the machine's cores were ${(window.machineBusy * 100).toFixed(0)} % busy meanwhile (a shared machine).`,
        `Peak RSS is VmHWM ${peakResettable ? 'reset just before r3 was published' : 'since the daemon started (clear_refs refused)'}: r3 (${o.updateMiB} MiB in ${o.fileMiB} MiB files) installed in ${(done.ms / 1000).toFixed(1)} s, ${(done.bytesFromServers / MiB).toFixed(0)} MiB from servers.`,
        `Idle CPU by thread (CPU-s over the window, user + system): ${byThread.filter((t) => t.user + t.system > 0).map((t) => `${t.name}${t.threads > 1 ? ` ×${t.threads}` : ''} ${t.user.toFixed(2)} + ${t.system.toFixed(2)}`).join(', ') || 'none measurable'}.`,
        `RSS by mapping, idle daemon (MiB): ${Object.entries(idle.daemon.byMapping).map(([k, v]) => `${k} ${mib(v)}`).join(', ')}.`,
        `V8 heap of the idle daemon (MiB, size / used): ${Object.entries(heap.spaces as Record<string, { sizeMiB: number; usedMiB: number }>).map(([k, v]) => `${k} ${v.sizeMiB} / ${v.usedMiB}`).join(', ')}; malloced ${heap.mallocedMiB}, external ${heap.externalMiB}.`,
        `Idle, RSS counts the node binary's text, which every node process of a machine shares; PSS shares it out and USS (private pages) is what stopping the daemon frees. The goal is judged on RSS.`,
        `The daemon started (spawn to READY) in ${startMs.toFixed(0)} ms, with node flags ${client.nodeFlags.join(' ')}.`,
        ...(profileDir ? ['With --profile the idle figures include the profiler; a second daemon (profiler off) took the update.'] : []),
      ],
    })
  } finally {
    floor.kill()
    await swarm.stop()
    if (!o.keep) await rm(work, { recursive: true, force: true })
  }
}
