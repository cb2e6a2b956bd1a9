// Hosts on one machine (issue 17 item 3): network namespaces made by the test, joined by veth
// pairs to a bridge in a namespace of their own, with addresses in 10.231.0.0/16 that exist only
// inside those namespaces. Nothing is added to the machine's own namespace: the test process
// reaches the hosts only by running processes in them (`ip netns exec`). Names carry the pid of
// the process that made them (us-<pid>-<host>), so leftovers of a killed run are found by name
// and removed (`cleanupLeftovers`) at the next run's start.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'

const PREFIX = 'us-'

/** Runs `ip ARGS`; throws with what ip said (the exact error, e.g. a missing kernel feature). */
export function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`)
  }
}

/** Runs a command inside namespace `ns` to its end (tc, cat of a counter, ip of the namespace). */
export function inNs(ns: string, cmd: string, ...args: string[]): string {
  return ip('netns', 'exec', ns, cmd, ...args)
}

/** The namespaces that exist now (names only). */
export function namespaces(): string[] {
  return ip('netns', 'list').split('\n').map((l) => l.trim().split(' ')[0]!).filter(Boolean)
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Ends the processes still inside `ns` (ours: only what a test started runs there), then removes it. */
function removeNs(ns: string): void {
  let pids: number[] = []
  try {
    pids = ip('netns', 'pids', ns).split('\n').filter(Boolean).map(Number)
  } catch { /* already gone */ }
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL') } catch { /* exited */ }
  }
  try { ip('netns', 'del', ns) } catch { /* already gone */ }
}

/** Removes namespaces a killed run left behind: us-<pid>-… whose pid no longer runs. */
export function cleanupLeftovers(): string[] {
  const removed: string[] = []
  for (const ns of namespaces()) {
    const m = /^us-(\d+)-/.exec(ns)
    if (!m) continue
    const pid = Number(m[1])
    if (pid === process.pid || alive(pid)) continue
    removeNs(ns)
    removed.push(ns)
  }
  return removed
}

export interface Host {
  /** The host's name in the test (h1, site-a, …). */
  name: string
  /** Its namespace. */
  ns: string
  /** Its address on the LAN it was given. */
  addr: string
}

export interface Lan {
  /** Namespace holding the bridge `br0`. */
  bridgeNs: string
  /** The interface of each host's veth on the bridge side (in `bridgeNs`), by host name. */
  ports: Map<string, string>
}

/**
 * A set of test hosts. `lan` makes a bridge and plugs hosts into it; `link` joins two hosts by a
 * direct veth (a WAN link, whose ends can be capped with tc and set down); `spawn` runs a process
 * in a host; `teardown` ends every process and removes every namespace, also after a failure.
 */
export class TestNet {
  readonly prefix: string
  readonly hosts = new Map<string, Host>()
  private readonly made: string[] = []
  private readonly children: ChildProcess[] = []
  private readonly onExit = (): void => this.teardownSync()

  constructor(tag = '') {
    // Interface and namespace names stay short: us-<pid>-<tag><name>.
    this.prefix = `${PREFIX}${process.pid}-${tag}`
    cleanupLeftovers()
    // A trap of sorts: a worker that exits (not killed) leaves nothing behind either.
    process.once('exit', this.onExit)
  }

  private newNs(name: string): string {
    const ns = `${this.prefix}${name}`
    ip('netns', 'add', ns)
    this.made.push(ns)
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up')
    return ns
  }

  /** A bridge in its own namespace, and each host (made when new) on it at `subnet`.N/24, N = 1, 2, … */
  lan(name: string, subnet: string, hostNames: string[]): Lan {
    const bridgeNs = this.newNs(name)
    inNs(bridgeNs, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
    inNs(bridgeNs, 'ip', 'link', 'set', 'br0', 'up')
    const ports = new Map<string, string>()
    hostNames.forEach((h, i) => {
      const host = this.hosts.get(h) ?? this.addHost(h)
      const port = `p-${h}`.slice(0, 15)
      const dev = `${name}0`.slice(0, 15)
      ip('-n', bridgeNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', dev, 'netns', host.ns)
      ip('-n', bridgeNs, 'link', 'set', port, 'master', 'br0', 'up')
      const addr = `${subnet}.${i + 1}`
      ip('-n', host.ns, 'addr', 'add', `${addr}/24`, 'dev', dev)
      ip('-n', host.ns, 'link', 'set', dev, 'up')
      if (!host.addr) host.addr = addr
      ports.set(h, port)
    })
    return { bridgeNs, ports }
  }

  /** A point-to-point veth between two hosts: `dev` on each end, `subnet`.1 and `subnet`.2 /30-like /24. */
  link(a: string, b: string, dev: string, subnet: string): { a: string; b: string } {
    const ha = this.hosts.get(a) ?? this.addHost(a)
    const hb = this.hosts.get(b) ?? this.addHost(b)
    ip('-n', ha.ns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', dev, 'netns', hb.ns)
    ip('-n', ha.ns, 'addr', 'add', `${subnet}.1/24`, 'dev', dev)
    ip('-n', hb.ns, 'addr', 'add', `${subnet}.2/24`, 'dev', dev)
    ip('-n', ha.ns, 'link', 'set', dev, 'up')
    ip('-n', hb.ns, 'link', 'set', dev, 'up')
    return { a: `${subnet}.1`, b: `${subnet}.2` }
  }

  addHost(name: string): Host {
    const host: Host = { name, ns: this.newNs(name), addr: '' }
    this.hosts.set(name, host)
    return host
  }

  host(name: string): Host {
    const h = this.hosts.get(name)
    if (!h) throw new Error(`no test host ${name} (have ${[...this.hosts.keys()].join(', ')})`)
    return h
  }

  /** Starts `cmd ARGS` inside host `name`; it is ended at teardown. */
  spawn(name: string, cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(name).ns, cmd, ...args], options)
    this.children.push(child)
    return child
  }

  /** A transmit or receive byte counter of `dev` in host `name`, read from the interface itself. */
  bytes(name: string, dev: string, dir: 'tx' | 'rx' = 'tx'): number {
    return Number(inNs(this.host(name).ns, 'cat', `/sys/class/net/${dev}/statistics/${dir}_bytes`).trim())
  }

  /** Every process started here ended (SIGTERM, then what is left in the namespaces killed), every namespace removed. */
  async teardown(): Promise<void> {
    await Promise.all(this.children.splice(0).map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return
      const exited = once(c, 'exit')
      c.kill('SIGTERM')
      const timer = setTimeout(() => c.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }))
    this.teardownSync()
  }

  private teardownSync(): void {
    for (const c of this.children.splice(0)) {
      try { c.kill('SIGKILL') } catch { /* gone */ }
    }
    for (const ns of this.made.splice(0).reverse()) removeNs(ns)
    process.removeListener('exit', this.onExit)
  }

  /** Names of this net's namespaces that still exist (empty after teardown). */
  leftovers(): string[] {
    return namespaces().filter((n) => n.startsWith(this.prefix))
  }
}

/** Runs `fn` over a fresh TestNet and tears it down afterwards, whether `fn` passed or threw. */
export async function withTestNet<T>(tag: string, fn: (net: TestNet) => Promise<T>): Promise<T> {
  const net = new TestNet(tag)
  try {
    return await fn(net)
  } finally {
    await net.teardown()
  }
}
