// R-TRACKER: the tracker. One registry (shared through the PEER_BUCKET KV bucket, so several
// instances answer as one) behind three doors: a NATS micro service, HTTP(S) with BitTorrent
// announce/scrape and a JSON API, and the BitTorrent UDP protocol (R-TRACKER-PROTO). Its life
// (bucket, registry, doors, sweeps, close) is the statechart machines/tracker-server.machine.ts.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import type { NatsConnection } from '@nats-io/transport-node'
import { errorMessage, permissionViolation, UpswarmError, type ErrorCode } from '../../infra/errors.ts'
import { connectNats, type NatsAuth } from '../../infra/nats/connect.ts'
import { inspection, startInspection, stopInspection } from '../../infra/inspect/nats-inspector.ts'
import { actorEventSubject, PEER_BUCKET_MAX_AGE_MS } from '../../infra/nats/names.ts'
import { clusterReplicas, openPeerBucket } from '../../infra/nats/resources.ts'
import { startHttpDoor } from '../../infra/tracker/http-server.ts'
import { startNatsDoor } from '../../infra/tracker/nats-service.ts'
import { RateLimiter, type RateLimitOptions } from '../../infra/tracker/rate-limit.ts'
import { flushEveryMs, PeerRegistry, sweepEveryMs } from '../../infra/tracker/registry.ts'
import { retryEveryMs } from '../../infra/tracker/bucket-writer.ts'
import { startUdpDoor } from '../../infra/tracker/udp-server.ts'
import { serveMetrics, type MetricsListener } from '../../infra/metrics/prometheus.ts'
import { trackerMetrics } from './metrics.ts'
import { createActor, fromPromise, waitFor, type ActorOptions, type AnyActorLogic } from 'xstate'
import { trackerServerMachine, type TrackerFailure } from '../../machines/tracker-server.machine.ts'


export interface TrackerOptions {
  nc: NatsConnection
  /** 0 or absent: any free port. */
  httpPort?: number
  udpPort?: number
  host?: string
  https?: { cert: string | Buffer; key: string | Buffer }
  id?: string
  /** How long a peer stays listed after its last announce (default 180 s). */
  peerTtlMs?: number
  /** Re-announce interval told to peers (default a third of the TTL). */
  intervalMs?: number
  /** Per source address, HTTP and UDP; false turns it off (benchmarks). Default 100/s, burst 200. */
  rateLimit?: RateLimitOptions | false
  /** Per NATS identity (the subject's last token); false turns it off. Default 100/s, burst 200. */
  identityRateLimit?: RateLimitOptions | false
  maxPeers?: number
  /** Most peers one NATS identity lists, per product and in all (default 32 and 256). */
  maxPeersPerIdentity?: { product: number; total: number }
  /** Shared by instances behind one UDP address so their connection ids agree. */
  udpSecret?: Buffer
  replicas?: number
  /** An XState inspection observer for the tracker's actor (live inspection, issue 12). */
  inspect?: ActorOptions<AnyActorLogic>['inspect']
  log?: (msg: string) => void
}

export interface Tracker {
  id: string
  httpUrl: string
  udpUrl: string
  registry: PeerRegistry
  close(): Promise<void>
}

const DEFAULT_RATE: RateLimitOptions = { perSecond: 100, burst: 200 }

/**
 * Starts the tracker as an actor over machines/tracker-server.machine.ts; resolves once every door
 * listens, or rejects with the failed step's error (what was opened is closed first).
 */
export async function startTracker(opts: TrackerOptions): Promise<Tracker> {
  const id = opts.id ?? `tracker-${randomUUID().slice(0, 8)}`
  const host = opts.host ?? '127.0.0.1'
  const log = opts.log ?? (() => {})
  const replicas = opts.replicas ?? (await clusterReplicas(opts.nc))
  const limiter = opts.rateLimit === false ? undefined : new RateLimiter(opts.rateLimit ?? DEFAULT_RATE)
  const identityLimiter = opts.identityRateLimit === false ? undefined : new RateLimiter(opts.identityRateLimit ?? DEFAULT_RATE)
  /** What the machine's steps opened: the registry (once its bucket is open) and each door's close. */
  const opened: { registry?: PeerRegistry; closers: (() => Promise<void>)[] } = { closers: [] }
  const registry = (): PeerRegistry => opened.registry!

  const machine = trackerServerMachine.provide({
    actors: {
      openBucket: fromPromise(async () => {
        const kv = await openPeerBucket(opts.nc, replicas, PEER_BUCKET_MAX_AGE_MS)
        opened.registry = new PeerRegistry({
          shared: { kv, nc: opts.nc },
          ...(opts.peerTtlMs !== undefined ? { peerTtlMs: opts.peerTtlMs } : {}),
          ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
          ...(opts.maxPeers !== undefined ? { maxPeers: opts.maxPeers } : {}),
          ...(opts.maxPeersPerIdentity !== undefined ? { maxPeersPerIdentity: opts.maxPeersPerIdentity } : {}),
          onError: (err) => log(`tracker ${id}: peer bucket: ${errorMessage(err)}`),
          // Its sweeps, write flushes and write retries run on the machine's clocks (issue 12).
          ownTimers: false,
        })
      }),
      startRegistry: fromPromise(async () => {
        opened.closers.push(() => registry().close())
        await registry().start()
      }),
      openNatsDoor: fromPromise(async () => {
        const door = await startNatsDoor(opts.nc, registry(), { id, limiter: identityLimiter })
        opened.closers.push(door.close)
      }),
      openHttpDoor: fromPromise(async () => {
        const door = await startHttpDoor({ registry: registry(), limiter, host, port: opts.httpPort ?? 0, ...(opts.https ? { https: opts.https } : {}) })
        opened.closers.push(door.close)
        return { url: door.url }
      }),
      openUdpDoor: fromPromise(async () => {
        const door = await startUdpDoor({ registry: registry(), limiter, host, port: opts.udpPort ?? 0, ...(opts.udpSecret ? { secret: opts.udpSecret } : {}) })
        opened.closers.push(door.close)
        return { url: door.url }
      }),
      closeAll: fromPromise(async () => {
        for (const c of opened.closers.splice(0).reverse()) await c().catch((err: unknown) => log(`tracker ${id}: close: ${errorMessage(err)}`))
      }),
    },
    actions: {
      sweepLimiters: () => {
        limiter?.sweep(Date.now())
        identityLimiter?.sweep(Date.now())
      },
      sweepPeers: () => opened.registry?.sweep(),
      retryWrites: () => opened.registry?.retryLateWrites(),
    },
    // A permission refused is final; anything else may be a leader election under way.
    guards: { bucketRetryable: (_, error: unknown) => !permissionViolation(error) },
  })
  const actor = createActor(machine, { input: { id, peerSweepMs: sweepEveryMs(opts.peerTtlMs), writeRetryMs: Math.min(retryEveryMs(), flushEveryMs(opts.peerTtlMs)) }, ...(opts.inspect ? { inspect: opts.inspect } : inspection()) })
  actor.on('tracker.listening', (e) => {
    const state = { state: 'listening', httpUrl: e.httpUrl, udpUrl: e.udpUrl, peerTtlMs: registry().peerTtlMs, intervalMs: registry().intervalMs }
    opts.nc.publish(actorEventSubject('tracker', id), JSON.stringify(state))
    log(`tracker ${id}: ${e.httpUrl} ${e.udpUrl}`)
  })
  actor.on('tracker.stopped', () => {
    if (!opts.nc.isClosed()) opts.nc.publish(actorEventSubject('tracker', id), JSON.stringify({ state: 'stopped' }))
  })
  actor.start()
  const snapshot = await waitFor(actor, (s) => s.matches('listening') || s.status === 'done', { timeout: Infinity })
  if (snapshot.status === 'done') throw trackerError(snapshot.context.failure!)
  const { httpUrl, udpUrl } = snapshot.context
  return {
    id,
    httpUrl: httpUrl!,
    udpUrl: udpUrl!,
    registry: registry(),
    close: async () => {
      actor.send({ type: 'stop' })
      await waitFor(actor, (s) => s.status === 'done', { timeout: Infinity })
    },
  }
}

/** A door's own error as it was thrown (it says what and where), else one naming the failed step. */
function trackerError(f: TrackerFailure): UpswarmError {
  if (f.cause instanceof UpswarmError && f.step.endsWith('Door')) return f.cause
  return new UpswarmError(f.code as ErrorCode, f.message, { cause: f.cause })
}

export interface TrackerCliOptions extends NatsAuth {
  httpPort?: number
  udpPort?: number
  nats?: string | string[]
  host?: string
  id?: string
  /** Paths of a TLS certificate and key: serve HTTPS. */
  cert?: string
  key?: string
  peerTtl?: number
  interval?: number
  /** Issue 12: publish the tracker's inspection on upswarm.inspect.tracker.<identity> (`--inspect`, UPSWARM_INSPECT=1). */
  inspect?: boolean
  /** Issue 16 item 5: serve Prometheus metrics on 127.0.0.1 at this port (0: any free port). */
  metricsPort?: number
}

/**
 * `upswarm tracker`: starts the tracker, prints one `READY {json}` line on stdout once every door
 * listens, and stops cleanly on SIGTERM or SIGINT.
 */
export async function runTrackerCli(o: TrackerCliOptions): Promise<void> {
  if ((o.cert === undefined) !== (o.key === undefined)) throw new UpswarmError('UPSWARM_E_CONFIG', 'tracker: --cert and --key go together')
  const https = o.cert && o.key ? { cert: await readFile(o.cert), key: await readFile(o.key) } : undefined
  const nc = await connectNats(o.nats, `upswarm-tracker${o.id ? `-${o.id}` : ''}`, o)
  if (o.inspect) startInspection('tracker', nc)
  let tracker: Tracker
  try {
    tracker = await startTracker({
      nc,
      ...(o.httpPort !== undefined ? { httpPort: o.httpPort } : {}),
      ...(o.udpPort !== undefined ? { udpPort: o.udpPort } : {}),
      ...(o.host !== undefined ? { host: o.host } : {}),
      ...(o.id !== undefined ? { id: o.id } : {}),
      ...(https ? { https } : {}),
      ...(o.peerTtl !== undefined ? { peerTtlMs: o.peerTtl } : {}),
      ...(o.interval !== undefined ? { intervalMs: o.interval } : {}),
      log: (m) => process.stderr.write(`${m}\n`),
    })
  } catch (err) {
    await stopInspection()
    await nc.close()
    throw err
  }
  let metrics: MetricsListener | undefined
  if (o.metricsPort !== undefined) {
    metrics = await serveMetrics(trackerMetrics(tracker), o.metricsPort)
    process.stderr.write(`tracker: metrics at ${metrics.url}\n`)
  }
  const ready = { role: 'tracker', pid: process.pid, id: tracker.id, trackerHttp: tracker.httpUrl, trackerUdp: tracker.udpUrl, ...(metrics ? { metrics: metrics.url } : {}) }
  process.stdout.write(`READY ${JSON.stringify(ready)}\n`)
  await Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')])
  await metrics?.close()
  await tracker.close()
  await stopInspection()
  await nc.drain()
}
