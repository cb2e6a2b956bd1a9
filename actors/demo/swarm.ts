// A whole swarm on one machine, driven like its users would: the embedded cluster (`up`), a
// publisher, and client processes (`upswarm init`, then `upswarm daemon --auto --json`). The
// demo (`npm start`), the end-to-end tests and the benchmarks all drive it.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { spawnGuarded, stopChild } from '../../infra/cluster/children.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { UpswarmError } from '../../infra/errors.ts'
import { NEW_PRODUCT_FORMATS } from '../../infra/formats/root.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { proxySubject, rolloutSubject, SERVER_HEARTBEATS } from '../../infra/nats/names.ts'
import { requestJson } from '../../infra/nats/service.ts'
import { generatePublisherKey, type PublisherKey } from '../../infra/release/keys.ts'
import { deploymentEnv, issueClientCreds, up, type Launched, type UpOptions } from '../launcher/index.ts'
import type { StatsReply } from '../proxy/index.ts'
import { publish, type PublishResult } from '../publisher/publish.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

/**
 * How the sharing daemon is started (issue 13 item 5, a light client): V8's young generation
 * capped at 2 × 1 MiB instead of growing to 2 × 8 MiB; no optimising compiler (its code pages and
 * zones are 4 MiB of an idle daemon's RSS, and an update's bytes are hashed, copied and encrypted
 * in native code: a 512 MiB update took the same time without it, the swarm bench's daemons less
 * CPU); code not run since the last full GC dropped (it is compiled again if it runs); the GC on
 * the main thread (no helper threads waking up) and the builtins called where they are in node's
 * binary (not copied next to the heap). And glibc's malloc told to map buffers of 128 KiB and more
 * on their own (its dynamic threshold otherwise keeps the freed piece buffers of an update in the
 * heap). docs/ops.md gives the same settings for a fleet's service manager; docs/decisions.md
 * ("The idle daemon") has the figures.
 */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=1', '--no-opt', '--bytecode-old-age=1', '--flush-baseline-code', '--single-threaded-gc', '--no-short-builtin-calls']
export const DAEMON_GLIBC_TUNABLES = 'glibc.malloc.mmap_threshold=131072'

export interface DaemonEvent {
  event: string
  [k: string]: unknown
}

export interface UpdateDone extends DaemonEvent {
  event: 'update.done'
  from: number
  to: number
  bytesFromServers: number
  bytesFromPeers: number
  /** The signed format the target was read in (format 2: no format-1 manifest fetched). */
  format: 1 | 2
  ms: number
  sources: { piecesFromServers: number; piecesFromPeers: number; badPieces: number; serverReasons: Record<string, number> }
  /** Issue 15: files made from deltas, when any. */
  deltas?: { files: number; bytes: number; fileBytes: number; failed: number; chunked: number }
}

/** The daemon event of `rev` taken back after its health check or post-install hook. */
export const isRevertOf = (rev: number) => (e: DaemonEvent): boolean => e.event === 'update.reverted' && e.rev === rev

/** One client: a working copy and its sharing daemon process. */
export class SwarmClient {
  readonly events: DaemonEvent[] = []
  private readonly waiters: Array<{ test: (e: DaemonEvent) => boolean; resolve: (e: DaemonEvent) => void }> = []
  child: ChildProcess | undefined
  ready: Record<string, unknown> | undefined
  /** The end of the daemon's log (stderr), for diagnostics. */
  stderrTail = ''
  /** What `upswarm init --json` reported: where the first revision's bytes came from. */
  initResult: { to: number; bytesFromServers: number; bytesFromPeers: number } | undefined
  /** The node flags the daemon starts with (a benchmark may compare others). */
  nodeFlags: string[] = DAEMON_NODE_FLAGS

  /** `cli`: the CLI entry its commands run (default this build's; a compatibility test gives another release's). */
  constructor(readonly name: string, readonly dir: string, readonly env: NodeJS.ProcessEnv, readonly cli = CLI) {}

  /** Starts `upswarm daemon DIR --auto --json`; resolves with its READY payload. */
  async start(extra: string[] = []): Promise<void> {
    const env = { ...this.env, GLIBC_TUNABLES: [this.env.GLIBC_TUNABLES, DAEMON_GLIBC_TUNABLES].filter(Boolean).join(':') }
    const child = spawnGuarded(process.execPath, [...this.nodeFlags, this.cli, 'daemon', this.dir, '--auto', '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env })
    this.child = child
    child.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-8000)
    })
    const lines = createInterface({ input: child.stdout! })
    this.ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      child.once('exit', (code) => reject(new UpswarmError('UPSWARM_E_PEER', `daemon ${this.name} exited (code ${code}) before it was ready: ${this.stderrTail.trim()}`)))
      lines.on('line', (line) => {
        if (line.startsWith('READY ')) return resolve(JSON.parse(line.slice(6)))
        let e: DaemonEvent
        try {
          e = JSON.parse(line) as DaemonEvent
        } catch {
          return
        }
        this.events.push(e)
        for (const w of [...this.waiters]) {
          if (w.test(e)) {
            this.waiters.splice(this.waiters.indexOf(w), 1)
            w.resolve(e)
          }
        }
      })
    })
  }

  /** Resolves with the first event (already seen or to come) that passes `test`. */
  waitFor<E extends DaemonEvent>(test: (e: DaemonEvent) => boolean, timeoutMs = 120_000): Promise<E> {
    const seen = this.events.find(test)
    if (seen) return Promise.resolve(seen as E)
    return new Promise<E>((resolve, reject) => {
      const timer = setTimeout(() => reject(new UpswarmError('UPSWARM_E_TIMEOUT',
        `client ${this.name}: no matching event after ${timeoutMs} ms; events: ${this.events.map((e) => e.event).join(' ')}; log:\n${this.stderrTail.slice(-3000)}`)), timeoutMs)
      this.waiters.push({ test, resolve: (e) => {
        clearTimeout(timer)
        resolve(e as E)
      } })
    })
  }

  /** Whether this client started a run to `rev` (its daemon's `update.started`). */
  startedTo(rev: number): boolean {
    return this.events.some((e) => e.event === 'update.started' && e.to === rev)
  }

  /** Whether this client took `rev` back after its health check (issue 16 item 2). */
  revertedFrom(rev: number): boolean {
    return this.events.some(isRevertOf(rev))
  }

  /** The update that reached revision `rev`. */
  reached(rev: number, timeoutMs?: number): Promise<UpdateDone> {
    return this.waitFor<UpdateDone>((e) => e.event === 'update.done' && (e as UpdateDone).to >= rev, timeoutMs)
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child)
  }
}

export interface SwarmOptions {
  dir: string
  servers?: number
  weights?: number[]
  /** Upload cap of each repository server, bytes/s (0: none). */
  serverMaxUploadRate?: number
  /** Release formats of the products it adds to the root (default NEW_PRODUCT_FORMATS, [1, 2]: dual publishing, deltas; [1]: format 1 only). */
  formats?: number[]
  log?: (msg: string) => void
}

export class Swarm {
  /** The product that publish and addClient work on; a test may switch to a fresh one. */
  product: string = crypto.randomUUID()
  /** Release formats of a product added to the root from now on (SwarmOptions.formats). */
  formats: number[] | undefined
  readonly key: PublisherKey = generatePublisherKey()
  readonly clients: SwarmClient[] = []
  launched!: Launched
  nc!: NatsConnection

  constructor(readonly opts: SwarmOptions) {
    this.formats = opts.formats
  }

  /** Environment of a client command; `creds`: the client machine's own identity (default: the sample client's). */
  env(creds?: string): NodeJS.ProcessEnv {
    const ep = this.launched.endpoints
    return {
      ...process.env,
      ...deploymentEnv(ep, creds),
      UPSWARM_BOOTSTRAP: ep.dhtBootstrap!,
      UPSWARM_TRACKER: [ep.trackerHttp, ep.trackerUdp].filter(Boolean).join(','),
    }
  }

  async start(): Promise<void> {
    const upOpts: UpOptions = {
      dir: join(this.opts.dir, 'cluster'),
      roles: ['nats', 'dht', 'servers', 'proxy', 'tracker', 'notary'],
      natsNodes: 3,
      servers: this.opts.servers ?? 3,
      weights: this.opts.weights,
      ...(this.opts.serverMaxUploadRate ? { serverMaxUploadRate: this.opts.serverMaxUploadRate } : {}),
      log: this.opts.log,
    }
    this.launched = await up(upOpts)
    await this.connect()
  }

  /** The operator's view (stats, heartbeats) as admin; releases as the publisher. */
  protected async connect(): Promise<void> {
    const ep = this.launched.endpoints
    this.nc = await connectNats(ep.nats, 'upswarm-demo', { creds: ep.creds?.admin, tlsCa: ep.tlsCa })
    this.publisherNc = await connectNats(ep.nats, 'upswarm-demo-publish', { creds: ep.creds?.publisher, tlsCa: ep.tlsCa })
  }

  protected async disconnect(): Promise<void> {
    await this.nc?.close().catch(() => {})
    await this.publisherNc?.close().catch(() => {})
  }

  publisherNc!: NatsConnection

  private readonly rooted = new Set<string>()

  /**
   * Issue 10 item 7: the product is added to the deployment's root of trust (as its operator
   * would, `upswarm root edit --dir D --add-product …`) before its first release, so clients can
   * pin the root and the notary vouches for its releases.
   */
  private async ensureInRoot(): Promise<void> {
    const ep = this.launched.endpoints
    if (!ep.root || !ep.rootKey || this.rooted.has(this.product)) return
    const { addProductToDeployment } = await import('../root-holder/index.ts')
    await addProductToDeployment(this.nc, { root: ep.root, rootKey: ep.rootKey, haltKey: ep.haltKey, rolloutKey: ep.rolloutKey }, this.product, this.key.publicKey, this.formats)
    this.rooted.add(this.product)
  }

  async publish(src: string, label?: string): Promise<PublishResult> {
    const { trust } = this.launched.endpoints
    await this.ensureInRoot()
    return publish({ nc: this.publisherNc, src, product: this.product, key: this.key, ...(label ? { label } : {}), ...(trust ? { trust } : {}) })
  }

  /** Resolves when every healthy server of the pool has synced `rev` (from their heartbeats). */
  async serversSynced(rev: number, timeoutMs = 180_000): Promise<void> {
    const healthy = (await this.stats()).servers.filter((s) => s.healthy).map((s) => s.id)
    if (healthy.length === 0) throw new UpswarmError('UPSWARM_E_NO_SERVER', 'no healthy server in the pool')
    const pending = new Set(healthy)
    const sub = this.nc.subscribe(SERVER_HEARTBEATS)
    const timer = setTimeout(() => sub.unsubscribe(), timeoutMs)
    for await (const msg of sub) {
      const hb = msg.json<{ id: string; synced?: Record<string, number>; synced2?: Record<string, number> }>()
      // A dual-publishing product: the format-2 copy (and its deltas) too; a format-2-only one has no format-1 copy.
      const formats = this.rooted.has(this.product) ? this.formats ?? NEW_PRODUCT_FORMATS : [1]
      const two = !formats.includes(2) || (hb.synced2?.[this.product] ?? 0) >= rev
      const one = !formats.includes(1) || (hb.synced?.[this.product] ?? 0) >= rev
      if (one && two) pending.delete(hb.id)
      if (pending.size === 0) break
    }
    clearTimeout(timer)
    sub.unsubscribe()
    if (pending.size > 0) throw new UpswarmError('UPSWARM_E_TIMEOUT', `servers ${[...pending].join(', ')} did not sync r${rev} within ${timeoutMs} ms`)
  }

  /**
   * Resolves with the halt statement of `rev` (issue 16 item 2: the notary signs it when the
   * release failed on enough clients), heard on the product's rollout subject or already stored.
   */
  async haltOf(rev: number, timeoutMs: number): Promise<{ seq: number }> {
    const [{ readRootFile }, { readRollouts, verifyProductRollout }, { decidingStatements }] = await Promise.all([
      import('../../infra/formats/deployment-root.ts'), import('../../infra/formats/rollout-stream.ts'), import('../../infra/formats/rollout.ts')])
    const { root } = (await readRootFile(this.launched.endpoints.root!)).signed
    const sub = this.nc.subscribe(rolloutSubject(this.product))
    const timer = setTimeout(() => sub.unsubscribe(), timeoutMs)
    try {
      const held = decidingStatements((await readRollouts(this.nc, this.product, root)).statements.map((s) => s.rollout)).get(rev)
      if (held?.state === 'halted') return { seq: held.seq }
      for await (const msg of sub) {
        const r = verifyProductRollout(msg.string(), root, this.product, 'the rollout subject')
        if (r.rev === rev && r.state === 'halted') return { seq: r.seq }
      }
      throw new UpswarmError('UPSWARM_E_TIMEOUT', `r${rev} of ${this.product} was not halted within ${timeoutMs} ms`)
    } finally {
      clearTimeout(timer)
      sub.unsubscribe()
    }
  }

  async stats(): Promise<StatsReply> {
    return requestJson<StatsReply>(this.nc, proxySubject('stats'), {})
  }

  /** Creates a working copy with `upswarm init` (at the newest revision, from the servers). */
  async addClient(name: string, cli = CLI): Promise<SwarmClient> {
    const dir = join(this.opts.dir, 'clients', name)
    await mkdir(join(this.opts.dir, 'clients'), { recursive: true })
    // One identity per client machine (issue 10).
    const env = this.env(await issueClientCreds(this.launched.endpoints, name))
    const { root } = this.launched.endpoints
    await this.ensureInRoot()
    const init = JSON.parse(await run([cli, 'init', dir, '--product', this.product, '--pubkey', this.key.publicKey, ...(root ? ['--root', root] : []), '--json'], env)) as SwarmClient['initResult']
    const client = new SwarmClient(name, dir, env, cli)
    client.initResult = init
    this.clients.push(client)
    return client
  }

  /** Runs an `upswarm` command to completion and returns its stdout parsed as JSON. */
  async cli<T>(args: string[]): Promise<T> {
    return JSON.parse(await run([CLI, ...args], this.env())) as T
  }

  /** Stops a role process of the cluster: 'tracker', 'proxy', 'server-s1' … */
  async stopRole(name: string): Promise<void> {
    const child = this.launched.children.get(name)
    if (!child) throw new UpswarmError('UPSWARM_E_CONFIG', `no role ${name} in this swarm (have ${[...this.launched.children.keys()].join(', ')})`)
    await stopChild(child)
  }

  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.stop()))
    await this.disconnect()
    await this.launched?.stop()
  }
}

async function run(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const [code] = (await once(child, 'exit')) as [number]
  if (code !== 0) throw new UpswarmError('UPSWARM_E_IO', `upswarm ${args.slice(1, 3).join(' ')} failed (exit ${code}): ${err.trim().slice(-1000)}`)
  return out
}
